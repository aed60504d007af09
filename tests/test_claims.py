"""The four claims: the command end to end, each measurement on hand-made inputs, verdicts, the panel."""

import json
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import close_page_scheduler
from gapdemo import runs
from gapdemo.claims import (
    CLAIMS,
    ClaimsFailed,
    ClaimsStopped,
    check_arguments,
    check_claim,
    latest_claims,
    measures,
    run_claims,
    summary,
    verdicts,
)
from gapdemo.claims.charts import claim_figure, claim_frame
from gapdemo.claims.measures import (
    score_localization,
    shift_accuracy,
    shifted_variants,
    unseen_position_loader,
    unseen_position_splits,
    val_loss_slope,
)
from gapdemo.cluster import connection, trials
from gapdemo.config import DataConfig, tiny_config
from gapdemo.sweep.grid import expand_trials, trial_config
from gapdemo.sweep.seeds import spread

APP = "../app.py"
TINY = ["--image-size", "32", "--train-size", "32", "--synthetic-size", "80", "--batch-size", "16",
        "--epochs", "1", "--backends", "fc,gap"]


@pytest.fixture(scope="module")
def claims_result(tmp_path_factory):
    """One tiny claims job through the command line: (runs_dir, the JSON on its last stdout line)."""
    runs_dir = tmp_path_factory.mktemp("claims_runs")
    command = [sys.executable, "-m", "gapdemo", "claims", *TINY, "--seeds", "2", "--runs-dir", str(runs_dir), "--json"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return runs_dir, json.loads(finished.stdout.strip().splitlines()[-1])


def test_command_writes_every_claim_with_spread_and_verdicts(claims_result):
    runs_dir, result = claims_result
    assert {"parameters", "overfitting", "localization", "translation", "verdicts"} <= set(result)
    assert set(result["verdicts"]) == set(CLAIMS) and all(result["verdicts"].values())
    assert result["parameters"]["ratio"] > 100  # fc's back-end dwarfs gap's
    step = result["parameters"]["backends"]["gap"]["step_seconds"]
    assert step["count"] == 2 and step["min"] <= step["mean"] <= step["max"]
    assert result["localization"]["available"] and result["localization"]["backends"]["gap"]["method"] == "CAM"
    assert [row["shift"] for row in result["translation"]["backends"]["fc"]["shift_accuracy"]] == [0, 4, 8, 16, 24]
    assert latest_claims(runs_dir)["id"] == result["id"]  # claims.json on disk is the same result
    assert len(list((runs_dir / result["id"] / "runs").iterdir())) == 4  # 2 seeds x (lockstep + unseen)
    for claim in CLAIMS:
        assert claim_figure(result, claim).data and not claim_frame(result, claim).empty


def test_translation_has_shift_consistency_per_backend_with_spread(claims_result):
    _, result = claims_result
    consistency = result["translation"]["consistency"]
    assert set(consistency) == {"fc", "gap"} and list(consistency["gap"]) == [str(shift) for shift in range(1, 17)]
    for by_shift in consistency.values():
        assert all(values["count"] == 2 and 0.0 <= values["min"] <= values["mean"] <= values["max"] <= 1.0
                   for values in by_shift.values())
    assert result["translation"]["backends"]["gap"]["consistency_stride_gain"]["count"] == 2
    assert "share of predictions unchanged by a 1 px shift" in result["verdicts"]["translation"]
    figure = claim_figure(result, "translation")
    drawn = [trace for trace in figure.data if (trace.meta or {}).get("measure") == "consistency"]
    assert len(drawn) == 4 and {trace.xaxis for trace in drawn} == {"x3"}  # line + band per back-end
    frame = claim_frame(result, "translation")
    assert (frame.test == "consistency, shift 8 px").sum() == 2 and "consistency_mean" in frame


def consistency_curve(bump):
    """A steady decline from 0.99 at 1 px, plus bump at 8 px."""
    return [0.99 - 0.005 * (shift - 1) + (bump if shift == 8 else 0.0) for shift in range(1, 17)]


@pytest.mark.parametrize("bumps, words", [
    ((0.02, 0.03), "higher in every seed for GAP: the period-8 pattern"),
    ((0.02, -0.01), "not higher in every seed, so no clear period-8 pattern"),
    ((0.004, 0.006), "higher in every seed for GAP but by less than 1 point, so at most a faint period-8 pattern"),
    ((0.02,), "1 seed, so no spread was measured"),
])
def test_consistency_verdict_reads_the_stride_bump_from_the_numbers(bumps, words):
    per_seed = [{"gap": consistency_curve(bump), "fc": consistency_curve(0.0)} for bump in bumps]
    shift_per_seed = [{"gap": [0.9, 0.8], "fc": [0.9, 0.7]} for _ in bumps]
    translation = summary.summarize_translation([0, 8], shift_per_seed, [{} for _ in bumps], per_seed)
    assert translation["backends"]["gap"]["consistency_stride_gain"]["mean"] == pytest.approx(np.mean(bumps))
    assert translation["backends"]["fc"]["consistency_stride_gain"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert translation["consistency"]["gap"]["16"]["mean"] == pytest.approx(0.915)
    sentence = verdicts.translation_verdict(translation, ("gap", "fc"))
    assert words in sentence and "share of predictions unchanged by a 1 px shift is 99.0%" in sentence
    assert "After 16 px: 91.5% vs 91.5%" in sentence


def test_command_refuses_bad_arguments_with_one_line(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "gapdemo", "claims", "--seeds", "0", "--runs-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2 and finished.stderr.strip().splitlines()[-1].startswith("error: seeds")


@pytest.mark.parametrize("dataset", ["synthetic", "folder"])
def test_claims_refuse_a_synthetic_set_their_unseen_position_run_cannot_draw(dataset, tmp_path):
    """Whatever the chosen data, the unseen-position run draws synthetic pets: its bounds are asked once."""
    config = tiny_config(str(tmp_path))
    config.data.dataset, config.data.data_dir, config.data.synthetic_size = dataset, str(tmp_path), 9
    with pytest.raises(ValueError, match=r"^The synthetic data set needs at least 10 images, got 9\.$"):
        check_arguments(config, 1)


def test_registry_numbers_the_four_claims_in_order_and_refuses_unknown_keys():
    assert list(CLAIMS) == ["parameters", "overfitting", "localization", "translation"]
    assert [claim.number for claim in CLAIMS.values()] == [1, 2, 3, 4]
    assert check_claim("overfitting").heading == "2. Less overfitting"
    assert all(claim.key == key and claim.method for key, claim in CLAIMS.items())
    with pytest.raises(ValueError, match="valid claims: parameters, overfitting"):
        check_claim("speed")


def test_shift_accuracy_sees_content_moved_by_exactly_the_shift():
    images = np.zeros((4, 16, 16, 3), np.uint8)
    labels = np.array([1, 1, 0, 0])
    images[:2, 5, 8] = 255  # dogs: one bright pixel at column 8

    def column_8_detector(batch):  # P(dog) = 1 exactly when column 8 of row 5 is bright
        return (batch[:, 5, 8, 0] > 0.5).astype(float)

    right, left = shifted_variants(images, 4)
    assert list(zip(*np.nonzero(right[:, :, :, 0]), strict=True)) == [(0, 5, 12), (1, 5, 12)]
    assert list(zip(*np.nonzero(left[:, :, :, 0]), strict=True)) == [(0, 5, 4), (1, 5, 4)]
    assert shift_accuracy(column_8_detector, images, labels, [0, 4]) == [1.0, 0.5]  # dogs lost, cats kept


def test_pointing_game_scores_perfect_maps_1_and_adversarial_maps_0():
    boxes = np.array([[0, 0, 16, 16], [16, 16, 32, 32]], float)  # top-left and bottom-right quarters
    perfect, adversarial = np.zeros((2, 4, 4)), np.zeros((2, 4, 4))
    perfect[0, 0, 0] = perfect[1, 3, 3] = 1.0
    adversarial[0, 3, 3] = adversarial[1, 0, 0] = 1.0
    scores = score_localization(perfect, boxes, 32)
    assert scores["pointing_game"] == 1.0 and scores["energy_in_box"] > 0.9 and scores["baseline"] == 0.25
    scores = score_localization(adversarial, boxes, 32)
    assert scores["pointing_game"] == 0.0 and scores["energy_in_box"] < 0.1


def test_unseen_position_split_keeps_objects_in_their_halves():
    config = DataConfig(image_size=32, synthetic_size=40, train_size=24, seed=3)
    splits = unseen_position_splits(config)
    assert {name: len(labels) for name, (_, labels, _) in splits.items()} == {"train": 24, "validation": 4, "test": 4}
    for name in ("train", "validation"):
        assert (splits[name][2][:, 2] <= 16).all() and (splits[name][2][:, 0] >= 0).all()
    assert (splits["test"][2][:, 0] >= 16).all() and (splits["test"][2][:, 2] <= 32).all()
    data = unseen_position_loader(config, batch_size=8)
    assert (data.test_boxes[:, 0] >= 16).all() and data.info.has_boxes
    assert data.info.splits == {"train": 24, "validation": 4, "test": 4} and data.info.dataset.startswith("synthetic")
    assert sum(len(labels) for _, labels in data.train) == 24


def spread_of(low, high):
    return spread([low, high])


def known_result() -> dict:
    """Two seeds' measures, made up so that every verdict has one sentence to give (see the next test)."""
    def overfitting(gap_final, gap_slope, fc_final, fc_slope):
        return {backend: {"epochs": [1, 2], "gap": [0.1, final], "final_gap": final, "final_val_accuracy": 0.8,
                          "val_loss_slope": slope}
                for backend, final, slope in (("gap", gap_final, gap_slope), ("fc", fc_final, fc_slope))}

    def localization(gap_hits, gap_energy, fc_hits, fc_energy):
        return {"available": True, "baseline": 0.25, "backends": {
            "gap": {"method": "CAM", "pointing_game": gap_hits, "energy_in_box": gap_energy},
            "fc": {"method": "Grad-CAM", "pointing_game": fc_hits, "energy_in_box": fc_energy}}}

    def unseen(gap_drop, fc_drop):
        return {backend: {"left_accuracy": 0.9, "right_accuracy": 0.9 - drop, "drop": drop}
                for backend, drop in (("gap", gap_drop), ("fc", fc_drop))}

    table = {"gap": {"backend_params": 65, "total_params": 29217}, "fc": {"backend_params": 37325, "total_params": 66477}}
    result = {
        "parameters": summary.summarize_parameters(table, {"gap": [0.010, 0.012], "fc": [0.020, 0.024]}, 32, 16),
        "overfitting": summary.summarize_overfitting([overfitting(0.02, -0.01, 0.15, 0.03),
                                                      overfitting(0.04, -0.03, 0.17, 0.05)]),
        "localization": summary.summarize_localization([localization(0.5, 0.4, 0.3, 0.2),
                                                        localization(0.7, 0.5, 0.55, 0.3)]),
        "translation": summary.summarize_translation(
            [0, 8, 24], [{"gap": [0.9, 0.85, 0.8], "fc": [0.9, 0.7, 0.6]},
                         {"gap": [0.92, 0.88, 0.78], "fc": [0.88, 0.75, 0.62]}],
            [unseen(0.10, 0.40), unseen(0.12, 0.38)]),
    }
    result["verdicts"] = verdicts.verdicts(result)
    return result


# Written out by hand from known_result's numbers, not with the code's own formatting.
KNOWN_VERDICTS = {
    "parameters": "FC's back-end has 574× the parameters of GAP's (37,325 vs 65) at 32×32; one training step on a "
                  "16-image batch takes 11.0 ms for GAP vs 22.0 ms for FC (median of repeats; 2 seeds; the ranges "
                  "do not overlap).",
    "overfitting": "GAP's final train–validation accuracy gap is 3.0 points (range 2.0 to 4.0) vs FC's 16.0 points "
                   "(range 15.0 to 17.0) — 2 seeds; the ranges do not overlap. Over the last half of training "
                   "validation loss changes by -0.020 per epoch for GAP and +0.040 for FC (rising = overfitting).",
    "localization": "GAP's CAM peaks inside the object box for 60.0% of test images (range 50.0 to 70.0) vs 42.5% "
                    "(range 30.0 to 55.0) for FC's Grad-CAM — within the spread over 2 seeds, so not a clear "
                    "difference. Share of map energy inside the box: 45.0% vs 25.0%; a uniform map scores 25.0% "
                    "on both.",
    "translation": "GAP's accuracy loss when test images move 24 px is 12.0 points (range 10.0 to 14.0) vs FC's 28.0 "
                   "points (range 26.0 to 30.0) — 2 seeds; the ranges do not overlap. Shifted by 24 px, GAP still "
                   "scores 79.0% vs FC's 61.0%. GAP's accuracy loss on right-half objects after training on "
                   "left-half ones is 11.0 points (range 10.0 to 12.0) vs FC's 39.0 points (range 38.0 to 40.0) — "
                   "2 seeds; the ranges do not overlap.",
}


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_each_verdict_sentence_from_known_measures(claim):
    assert known_result()["verdicts"][claim] == KNOWN_VERDICTS[claim]


def test_verdicts_without_a_pair_or_without_boxes_say_why():
    result = known_result()
    result["localization"] = summary.summarize_localization([{"available": False, "reason": "no boxes here"}])
    result["parameters"]["pair"] = None  # e.g. only pooling back-ends were trained
    sentences = verdicts.verdicts(result)
    assert sentences["localization"] == "Not measured: no boxes here"
    assert [sentences[claim] for claim in ("parameters", "overfitting", "translation")] == [
        "Train a global-pooling and a fully connected back-end to compare them."] * 3


@pytest.mark.parametrize("gap_values, fc_values, overlapping", [
    ((0.02, 0.05), (0.12, 0.18), False),
    ((0.02, 0.13), (0.12, 0.18), True),
    ((0.02, 0.12), (0.12, 0.18), True),  # ranges that share one value overlap
    ((0.12, 0.18), (0.02, 0.05), False),
])
def test_verdict_says_within_the_spread_only_when_ranges_overlap(gap_values, fc_values, overlapping):
    overfitting = {"backends": {
        "gap": {"final_gap": spread_of(*gap_values), "val_loss_slope": spread([0.01, 0.02])},
        "fc": {"final_gap": spread_of(*fc_values), "val_loss_slope": spread([0.05, 0.07])},
    }}
    sentence = verdicts.overfitting_verdict(overfitting, ("gap", "fc"))
    assert ("within the spread over 2 seeds, so not a clear difference" in sentence) == overlapping
    assert ("2 seeds; the ranges do not overlap" in sentence) == (not overlapping)


def test_one_seed_claims_no_spread():
    sentence = verdicts.comparison_sentence("gap", ("gap", "fc"), spread([0.1]), spread([0.1]))
    assert "1 seed, so no spread was measured" in sentence and "within the spread" not in sentence


def test_spread_and_val_loss_slope():
    values = spread([1.0, 2.0, None, float("nan"), 3.0])
    assert (values["mean"], values["min"], values["max"], values["count"]) == (2.0, 1.0, 3.0, 3)
    assert values["std"] == pytest.approx(1.0) and values["values"][2:4] == [None, None]
    assert val_loss_slope([1, 2, 3, 4], [0.9, 0.5, 0.6, 0.7]) == pytest.approx(0.1)  # last half only: rising
    assert val_loss_slope([1], [0.5]) is None


def test_a_stop_lands_between_phases(tmp_path, monkeypatch):
    """Stop while the last step is timed: the timing phase finishes, training never starts, nothing is saved."""
    stop_event, timed = threading.Event(), []
    original = measures.measure_step_seconds

    def timing_then_stop(backend, *args, **kwargs):
        seconds = original(backend, *args, **kwargs)
        timed.append(backend)
        if backend == "gap":  # the timing phase's last step: stop now, before the training phase
            stop_event.set()
        return seconds

    def no_training(*args, **kwargs):
        connected.append(args)
        raise RuntimeError("the training phase began after the stop")

    connected = []
    monkeypatch.setattr(measures, "measure_step_seconds", timing_then_stop)
    monkeypatch.setattr(connection, "connect", no_training)
    with pytest.raises(ClaimsStopped):
        run_claims(tiny_config(str(tmp_path)), seeds=1, stop_event=stop_event)
    assert timed == ["fc", "gap"]  # the phase in flight finished ...
    (claims_dir,) = tmp_path.glob("claims-*")
    assert connected == [] and list((claims_dir / "runs").iterdir()) == []  # ... and the next one never began
    assert latest_claims(tmp_path) is None


def test_a_stop_request_ends_the_training_run_and_saves_nothing(tmp_path):
    stop_event = threading.Event()

    def progress(message, fraction):
        if "epoch" in message:  # training has started: ask to stop
            stop_event.set()

    config = tiny_config(str(tmp_path))
    config.train.epochs = 30  # long enough that the stop lands mid-run (one tiny epoch could end before it)
    with pytest.raises(ClaimsStopped):
        run_claims(config, seeds=1, progress=progress, stop_event=stop_event)
    (claims_dir,) = tmp_path.glob("claims-*")
    run_dirs = list((claims_dir / "runs").iterdir())
    assert run_dirs  # training had started when the stop came
    assert {runs.read_status(run_dir)["state"] for run_dir in run_dirs} == {"stopped"}
    assert not (claims_dir / "claims.json").exists()
    assert latest_claims(tmp_path) is None


def test_claims_tab_shows_the_newest_result(claims_result, monkeypatch):
    runs_dir, result = claims_result
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(runs_dir))
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception
    headings = [element.value for element in app.subheader]
    assert "2. Less overfitting" in headings and "4. More robust to translation" in headings
    shown = " ".join(element.value for element in app.markdown)
    assert all(result["verdicts"][claim] in shown for claim in CLAIMS)
    assert not app.button(key="claims_start").disabled


def test_claims_and_sweeps_draw_each_seed_alike(tmp_path, monkeypatch):
    """Seed i of a claims job times, trains and tests with the seed a sweep's trial i of the same settings gets."""
    timed, trained = [], []

    def record_timing(backend, image_size, batch_size, seed, *args):
        timed.append(seed)
        return 0.01

    def record_training(specs, runs_dir, experiment_dir, **options):
        trained.extend(specs)
        return {}  # every run lost: the job ends before anything is scored

    monkeypatch.setattr(measures, "measure_step_seconds", record_timing)
    monkeypatch.setattr(connection, "connect", lambda address=None, num_cpus=None: False)  # no Ray
    monkeypatch.setattr(trials, "run_trials", record_training)
    config = tiny_config(str(tmp_path))
    config.data.seed = 5
    with pytest.raises(ClaimsFailed, match="lost"):
        run_claims(config, seeds=3)
    sweep_seeds = [trial_config(config, trial, tmp_path).data.seed for trial in expand_trials({}, 3, config.data.seed)]
    assert sweep_seeds == [5, 6, 7]
    assert timed == [5, 5, 6, 6, 7, 7]  # both back-ends of each seed
    assert [(spec.config["data"]["seed"], spec.config["model"]["seed"], spec.config["train"]["seed"])
            for spec in trained] == [(seed, seed, seed) for seed in (5, 5, 6, 6, 7, 7)]  # its two runs per seed
    assert [spec.tags["claims"]["seed"] for spec in trained] == [5, 5, 6, 6, 7, 7]


def junk_folder(root):
    """Two class folders whose files are all unreadable: a folder run fails while loading its data."""
    for name in ("Cat", "Dog"):
        (root / name).mkdir(parents=True)
        for index in range(2):
            (root / name / f"{index}.jpg").write_bytes(b"not a JPEG at all")
    return root


def test_a_failed_training_run_ends_the_claims_tab_with_its_message(tmp_path, monkeypatch):
    """The claims job's process fails one of its runs for real (unreadable photos); the tab says which and why."""
    photos = junk_folder(tmp_path / "photos")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.slider(key="image_size").set_value(32)
    app.selectbox(key="dataset").set_value("folder").run()
    app.text_input(key="folder_dir").set_value(str(photos)).run()
    app.number_input(key="claims_seeds").set_value(1).run()
    app.button(key="claims_start").click().run()
    try:
        deadline = time.monotonic() + 240
        while not app.error and time.monotonic() < deadline:
            time.sleep(0.5)
            app.run()
        assert not app.exception
        (claims_dir,) = (tmp_path / "runs").glob("claims-*")
        (message,) = [error.value for error in app.error]
        assert re.fullmatch(rf"The claims job failed: training run {re.escape(str(claims_dir))}/runs/\S+ failed: "
                            rf"None of the 4 image files in {re.escape(str(photos))} could be decoded.*", message), message
        assert not app.button(key="claims_start").disabled and latest_claims(tmp_path / "runs") is None
    finally:
        close_page_scheduler()


def test_a_failed_training_run_ends_the_command_with_exit_1(tmp_path):
    folder = junk_folder(tmp_path / "photos")
    command = [sys.executable, "-m", "gapdemo", "claims", *TINY, "--dataset", "folder", "--data-dir", str(folder),
               "--seeds", "1", "--runs-dir", str(tmp_path / "runs"), "--json"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 1, finished.stderr[-2000:]
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: training run {tmp_path / 'runs'}") and " failed: None of the 4 image files" in last
    assert finished.stdout.strip() == "" and "Traceback" not in finished.stderr
    assert latest_claims(tmp_path / "runs") is None


@pytest.mark.posix
def test_a_stopped_claims_command_exits_130_and_saves_nothing(tmp_path):
    command = [sys.executable, "-m", "gapdemo", "claims", *TINY, "--seeds", "1", "--runs-dir", str(tmp_path), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()

    def read_stderr():
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            seen.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while b"timing one training step" not in seen:  # the progress line, rewritten in place
            assert time.monotonic() < deadline and process.poll() is None, bytes(seen)[-2000:]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)  # what Ctrl-C (SIGINT) does too
        stdout = process.stdout.read()
        assert process.wait(120) == 130
    finally:
        process.kill()
        process.wait()
    reader.join(10)
    assert bytes(seen).decode().splitlines()[-1] == "stopped: no claims were saved" and stdout == b""
    assert latest_claims(tmp_path) is None


def test_claims_tab_without_results(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path))
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception
    assert any("No claims measured" in element.value for element in app.info)


def test_frames_are_tables_per_backend(claims_result):
    _, result = claims_result
    frame = claim_frame(result, "overfitting")
    assert isinstance(frame, pd.DataFrame) and set(frame.backend) == {"fc", "gap"} and "gap_max" in frame
    with pytest.raises(ValueError):
        claim_frame(result, "speed")
