"""The command line end to end, in subprocesses, on tiny synthetic runs."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from gapdemo import runs

TINY = ["--image-size", "32", "--train-size", "48", "--batch-size", "16", "--backends", "fc,gap"]


def gapdemo(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "gapdemo", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("cli_runs")
    result = gapdemo("train", *TINY, "--epochs", "2", "--runs-dir", str(runs_dir), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    return runs_dir, json.loads(result.stdout.strip().splitlines()[-1])


def test_train_json_reports_final_epoch(trained_run):
    runs_dir, summary = trained_run
    assert summary["status"] == "finished" and summary["epochs_completed"] == 2
    assert set(summary["backends"]) == {"fc", "gap"}
    for values in summary["backends"].values():
        assert set(values) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert 0.0 <= values["val_accuracy"] <= 1.0
    metrics = runs.read_epoch_metrics(summary["run_dir"])
    final_gap = metrics[(metrics.backend == "gap") & (metrics.epoch == 2)].iloc[0]
    assert final_gap.val_accuracy == pytest.approx(summary["backends"]["gap"]["val_accuracy"])
    status = runs.read_status(summary["run_dir"])  # one run-level time: the back-ends train in lockstep
    assert status["elapsed_seconds"] > 0 and "durations" not in status


def test_train_and_params_defaults_are_the_config_defaults():
    from gapdemo.cli import build_parser
    from gapdemo.commands.options import config_from_args
    from gapdemo.config import RunConfig
    from gapdemo.model.backends import BACKENDS

    parser = build_parser()
    assert config_from_args(parser.parse_args(["train"])) == RunConfig()
    params = parser.parse_args(["params"])
    assert params.image_size == RunConfig().data.image_size and params.backends == ",".join(BACKENDS)


def test_train_flags_reach_the_run_config():
    from gapdemo.cli import build_parser
    from gapdemo.commands.options import config_from_args
    from gapdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    arguments = ["train", "--dataset", "folder", "--data-dir", "/photos", "--image-size", "64", "--train-size", "500",
                 "--synthetic-size", "3000", "--seed", "7", "--cache-dir", "/cache", "--backends", "gap,fc", "--epochs", "3", "--dropout", "0.3",
                 "--bn-momentum", "0.95", "--no-bn-recalibration", "--batch-size", "16", "--steps-per-execution", "8",
                 "--learning-rate", "0.003", "--precision", "mixed_bfloat16", "--runs-dir", "/elsewhere"]
    expected = RunConfig(  # every value differs from its default, so a flag that is dropped shows
        data=DataConfig(dataset="folder", data_dir="/photos", image_size=64, train_size=500, synthetic_size=3000, seed=7,
                        cache_dir="/cache"),
        model=ModelConfig(backends=("gap", "fc"), dropout_rate=0.3, bn_momentum=0.95, seed=7),
        train=TrainConfig(epochs=3, batch_size=16, learning_rate=0.003, seed=7, runs_dir="/elsewhere",
                          recalibrate_bn=False, steps_per_execution=8, precision="mixed_bfloat16"))
    assert config_from_args(build_parser().parse_args(arguments)) == expected
    defaults = RunConfig()
    unchanged = [(part, name) for part in ("data", "model", "train") for name, value in vars(getattr(expected, part)).items()
               if value == getattr(getattr(defaults, part), name)]
    assert unchanged == [("train", "recalibration_batches")]  # the one setting without a flag
    assert config_from_args(build_parser().parse_args(["train", "--train-size", "0"])).data.train_size is None


@pytest.mark.parametrize("command", ["train", "claims", "sweep"])
def test_every_training_command_shares_the_data_and_run_options(command):
    """One set of options (gapdemo.commands.options): claims once had no --cache-dir, train no --synthetic-size."""
    from gapdemo.cli import build_parser
    from gapdemo.commands.options import run_config
    from gapdemo.config import RunConfig

    parser = build_parser()
    assert run_config(parser.parse_args([command])) == RunConfig()  # not given: RunConfig's defaults
    args = parser.parse_args([command, "--cache-dir", "/cache", "--synthetic-size", "3000", "--train-size", "all",
                              "--learning-rate", "0.003"])
    config = run_config(args)
    assert (config.data.cache_dir, config.data.synthetic_size, config.data.train_size) == ("/cache", 3000, None)
    assert config.train.learning_rate == 0.003


def test_the_train_command_saves_the_config_its_flags_make(trained_run):
    from gapdemo.cli import build_parser
    from gapdemo.commands.options import config_from_args
    from gapdemo.config import RunConfig

    runs_dir, summary = trained_run
    stored = runs.read_config(summary["run_dir"])
    assert stored.pop("dataset_info")["splits"]["train"] == 48
    flags = build_parser().parse_args(["train", *TINY, "--epochs", "2", "--runs-dir", str(runs_dir), "--json"])
    assert RunConfig.from_dict(stored) == config_from_args(flags)


def test_runs_lists_the_run(trained_run):
    runs_dir, summary = trained_run
    listing = json.loads(gapdemo("runs", "--runs-dir", str(runs_dir), "--json").stdout)
    (row,) = [r for r in listing["runs"] if r["run_id"] == summary["run_id"]]
    assert row["state"] == "finished" and row["epochs_completed"] == 2 and set(row["best_val_accuracy"]) == {"fc", "gap"}
    text = gapdemo("runs", "--runs-dir", str(runs_dir)).stdout
    assert summary["run_id"] in text and "finished" in text


def photo_pixels():
    return (np.random.default_rng(0).random((60, 80, 3)) * 255).astype("uint8")


def photo_bytes(fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(photo_pixels()).save(buffer, format=fmt)
    return buffer.getvalue()


def test_classify_json_gives_each_saved_models_answer(trained_run, tmp_path):
    from gapdemo.data.decode import resize_bilinear

    runs_dir, summary = trained_run
    photo = tmp_path / "pet.png"
    photo.write_bytes(photo_bytes())  # PNG: lossless, so the command decodes photo_pixels() exactly
    result = gapdemo("classify", str(photo), "--runs-dir", str(runs_dir), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["run_id"] == summary["run_id"] and answer["dataset"] == "synthetic"
    assert answer["choice"].startswith(f"Using run {summary['run_id']}, the newest run with models")
    models = runs.load_models(summary["run_dir"])
    seen = resize_bilinear(photo_pixels(), 32)[np.newaxis].astype(np.float32) / 255.0  # as training fed the models
    assert list(answer["backends"]) == list(models) == ["fc", "gap"]
    for backend, values in answer["backends"].items():
        p_dog = float(models[backend](seen, training=False).numpy()[0, 0])
        assert values["p_dog"] == pytest.approx(p_dog, abs=2e-6), backend  # the JSON keeps 6 decimals
        assert values["p_cat"] == pytest.approx(1.0 - p_dog, abs=2e-6), backend
        assert values["label"] == ("dog" if p_dog >= 0.5 else "cat")


@pytest.mark.parametrize("content, run_arg", [(b"", None), (b"not an image", None), (None, "no-such-run")])
def test_classify_errors_exit_2_with_one_line(trained_run, tmp_path, content, run_arg):
    runs_dir, _ = trained_run
    photo = tmp_path / "pet.jpg"
    photo.write_bytes(content if content is not None else photo_bytes("JPEG"))
    args = ["classify", str(photo), "--runs-dir", str(runs_dir)] + (["--run", run_arg] if run_arg else [])
    result = gapdemo(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().splitlines()[-1].startswith("error:")


def test_export_csv_and_html(trained_run, tmp_path):
    runs_dir, summary = trained_run
    target = tmp_path / "export"
    result = gapdemo("export", summary["run_id"], "--runs-dir", str(runs_dir), "--to", str(target), "--formats", "html,csv")
    assert result.returncode == 0, result.stderr[-2000:]
    written = [line for line in result.stdout.splitlines() if line.startswith(str(target))]
    assert written and all(os.path.exists(path) for path in written)
    assert any(path.endswith(".html") for path in written) and any(path.endswith(".csv") for path in written)


def test_export_without_a_run_takes_the_newest_run_with_models(trained_run, tmp_path):
    import shutil

    runs_dir, summary = trained_run
    runs_copy = tmp_path / "runs"
    shutil.copytree(summary["run_dir"], runs_copy / summary["run_id"])
    newer = runs_copy / "29990101-000000-0000"  # newer, but it saved no models
    newer.mkdir()
    shutil.copy(runs_copy / summary["run_id"] / "config.json", newer / "config.json")
    result = gapdemo("export", "--runs-dir", str(runs_copy), "--to", str(tmp_path / "out"), "--formats", "csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"run {summary['run_id']}, the newest run with saved models" in result.stdout
    assert (tmp_path / "out" / "metrics.csv").read_bytes() == (runs_copy / summary["run_id"] / "metrics.csv").read_bytes()
    empty = gapdemo("export", "--runs-dir", str(tmp_path / "nothing"), "--to", str(tmp_path / "o2"))
    assert empty.returncode == 2 and "train one first" in empty.stderr and "Traceback" not in empty.stderr


def test_export_errors_exit_2(trained_run, tmp_path):
    runs_dir, summary = trained_run
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for args in (["export", "missing-run", "--runs-dir", str(runs_dir), "--to", str(tmp_path / "o")],
                 ["export", summary["run_id"], "--runs-dir", str(runs_dir), "--to", str(blocker)],
                 ["export", summary["run_id"], "--runs-dir", str(runs_dir), "--to", str(tmp_path), "--formats", "gif"]):
        result = gapdemo(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr


def test_train_bad_arguments_exit_2():
    for args in (["train", "--image-size", "16"], ["train", "--backends", "svm"], ["train", "--dataset", "folder"],
                 ["train", "--dataset", "folder", "--data-dir", "/no/such/folder"]):
        result = gapdemo(*args, timeout=120)
        assert result.returncode == 2, (args, result.stderr[-500:])
        assert "Traceback" not in result.stderr


def wait_for_epochs(runs_dir, count, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for metrics_file in runs_dir.glob("*/metrics.csv"):
            if len(runs.read_epoch_metrics(metrics_file.parent)) >= count:
                return metrics_file.parent
        time.sleep(0.2)
    raise AssertionError("no epoch finished in time")


def test_sigkill_mid_run_leaves_an_interrupted_run(tmp_path):
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "gapdemo", "train", *TINY, "--epochs", "200",
                                "--runs-dir", str(runs_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait_for_epochs(runs_dir, 2 * 2)
        # metrics.csv gets an epoch's rows just before status.json counts it: wait for the count too
        deadline = time.time() + 120
        while runs.read_stored_status(run_dir).get("epochs_completed", 0) < 2 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()  # SIGKILL; TerminateProcess on Windows: no chance to write anything more
        process.wait(30)
    (summary,) = runs.list_runs(runs_dir)
    assert summary.state == "interrupted" and "ended before it finished" in summary.message
    assert summary.epochs_completed >= 2
    metrics = runs.read_epoch_metrics(run_dir)
    assert metrics.epoch.max() >= summary.epochs_completed
    models = runs.load_models(run_dir)
    assert models["gap"](np.zeros((1, 32, 32, 3), "float32")).shape == (1, 1)


@pytest.mark.posix
def test_sigterm_stops_cleanly(tmp_path):
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "gapdemo", "train", *TINY, "--epochs", "200", "--json",
                                "--runs-dir", str(runs_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_for_epochs(runs_dir, 2)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["status"] == "stopped" and summary["epochs_completed"] >= 1
    assert runs.list_runs(runs_dir)[0].state == "stopped"
