"""Sweeps: the grid, the summary maths, and real Ray clusters of two nodes on this machine."""

import dataclasses
import json
import os
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

from gapdemo import runs
from gapdemo.cli import build_parser, main
from gapdemo.cluster import connection, trials
from gapdemo.config import tiny_config
from gapdemo.jobs.page import PageScheduler
from gapdemo.sweep import store
from gapdemo.sweep.execution import plan_sweep, run_sweep, sweep_result
from gapdemo.sweep.grid import SWEEPABLE, Trial, expand_trials, parse_grid, plan_trials, sweep_id_for, trial_config
from gapdemo.sweep.seeds import repeat_seed, seeded_config
from gapdemo.sweep.summary import epoch_bands, summary_rows, trial_rows

ray = pytest.importorskip("ray")  # a requirement: CI installs it, so this never skips there


def test_grid_parses_values_and_names_the_problem():
    assert parse_grid(["dropout_rate=0.3,0.6", "epochs=1,2"]) == {"dropout_rate": [0.3, 0.6], "epochs": [1, 2]}
    with pytest.raises(ValueError, match="sweepable settings: dropout_rate"):
        parse_grid(["colour=red"])
    with pytest.raises(ValueError, match="int values"):
        parse_grid(["epochs=1,two"])
    with pytest.raises(ValueError, match="set twice"):
        parse_grid(["epochs=1", "epochs=2"])


def test_the_sweep_command_offers_every_sweepable_setting(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--help"])
    assert f"NAME is one of: {', '.join(SWEEPABLE)}" in " ".join(capsys.readouterr().out.split())


def test_trials_cover_grid_times_seeds_and_apply_their_settings(tmp_path):
    trials = expand_trials({"dropout_rate": [0.3, 0.6], "epochs": [1, 2]}, seeds=3, first_seed=5)
    assert len(trials) == 12 and [t.index for t in trials] == list(range(12))
    assert {t.seed for t in trials} == {5, 6, 7}
    config = trial_config(tiny_config(), trials[-1], str(tmp_path))
    assert config.model.dropout_rate == 0.6 and config.train.epochs == 2
    assert config.data.seed == config.model.seed == config.train.seed == 7
    assert config.train.runs_dir == str(tmp_path)


def test_a_repeat_draws_data_weights_and_order_from_one_seed(tmp_path):
    assert [repeat_seed(5, repeat) for repeat in range(3)] == [5, 6, 7]
    config = seeded_config(tiny_config("elsewhere"), 9, tmp_path)
    assert (config.data.seed, config.model.seed, config.train.seed) == (9, 9, 9)
    assert config.train.runs_dir == str(tmp_path) and config.data.image_size == 32  # the rest as it was


def test_sweep_id_is_stable_for_the_same_command_and_ignores_the_runs_folder():
    first, second = tiny_config("a"), tiny_config("b")
    assert sweep_id_for(first, {"epochs": [1, 2]}, 2) == sweep_id_for(second, {"epochs": [1, 2]}, 2)
    assert sweep_id_for(first, {"epochs": [1, 2]}, 2) != sweep_id_for(first, {"epochs": [1, 2]}, 3)


def test_summary_means_and_sample_spreads_match_numpy():
    sweep = {"base_config": {"model": {"backends": ["fc", "gap"]}},
             "trials": [{"run_id": f"r{i}", "settings": {"dropout_rate": rate}, "seed": i % 2, "state": "finished"}
                        for i, rate in enumerate([0.3, 0.3, 0.6, 0.6])]}
    train = {"fc": [0.99, 0.97, 0.95, 0.93], "gap": [0.80, 0.82, 0.84, 0.86]}
    val = {"fc": [0.70, 0.74, 0.76, 0.80], "gap": [0.78, 0.79, 0.80, 0.83]}
    metrics = pd.DataFrame([
        {"run_id": f"r{i}", "backend": b, "epoch": epoch, "loss": 0.1, "val_loss": 0.2,
         "accuracy": train[b][i] - (0.1 if epoch == 1 else 0), "val_accuracy": val[b][i] - (0.1 if epoch == 1 else 0),
         "seed": i % 2, "settings": f"dropout_rate={[0.3, 0.3, 0.6, 0.6][i]}"}
        for i in range(4) for b in ("fc", "gap") for epoch in (1, 2)])
    rows = summary_rows(sweep, trial_rows(sweep, metrics))
    fc_low = next(r for r in rows if r["backend"] == "fc" and r["settings"] == {"dropout_rate": 0.3})
    assert fc_low["n"] == 2
    assert fc_low["val_accuracy_mean"] == pytest.approx(np.mean([0.70, 0.74]))
    assert fc_low["val_accuracy_std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert fc_low["gap_mean"] == pytest.approx(np.mean([0.99 - 0.70, 0.97 - 0.74]))
    bands = epoch_bands(metrics)
    band = bands[(bands.settings == "dropout_rate=0.6") & (bands.backend == "gap") & (bands.epoch == 1)].iloc[0]
    assert band["mean"] == pytest.approx(np.mean([0.70, 0.73])) and band["n"] == 2
    last = bands[(bands.settings == "dropout_rate=0.3") & (bands.backend == "fc") & (bands.epoch == 2)].iloc[0]
    assert (last["mean"], last["std"]) == (fc_low["val_accuracy_mean"], fc_low["val_accuracy_std"])  # one spread
    one_seed = epoch_bands(metrics[metrics.seed == 0])
    assert set(one_seed["std"]) == {0.0} and set(one_seed["n"]) == {1}


def test_a_grid_point_with_invalid_settings_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        plan_sweep(tiny_config(str(tmp_path)), {"batch_size": [16, 4096]}, 1)


def test_a_plan_survives_its_json_and_resumes_only_the_same_trials(tmp_path):
    plan = plan_trials(tiny_config(str(tmp_path)), {"dropout_rate": [0.3, 0.6]}, 2)
    assert store.read_plan(store.write_plan(plan)) == plan
    first = store.create_or_resume(tmp_path, plan)
    assert store.create_or_resume(tmp_path, plan)["trials"] == first["trials"]  # resumed: the same run ids
    other = dataclasses.replace(plan, trials=[Trial(0, {"dropout_rate": 0.3}, 9)])
    (trial,) = store.create_or_resume(tmp_path, other)["trials"]
    assert trial["seed"] == 9 and trial["run_id"] not in {t["run_id"] for t in first["trials"]}
    (tmp_path / "broken.json").write_text('{"sweep_id": "sweep-x"}')
    with pytest.raises(ValueError, match="not a sweep plan"):
        store.read_plan(tmp_path / "broken.json")


def test_the_sweep_command_trains_exactly_the_trials_of_its_plan(tmp_path, monkeypatch, capsys):
    """The page hands its sweep's process the planned trials as JSON: the child trains those, with their
    seeds, and plans nothing again (here trial 2 of a 2 x 2 grid alone, seed 7 instead of 0)."""
    base = tiny_config(str(tmp_path / "runs"), ("gap",))
    plan = dataclasses.replace(plan_trials(base, {"epochs": [1, 2]}, 2), trials=[Trial(2, {"epochs": 2}, 7)])
    trained = []

    def record(specs, runs_dir, experiment_dir, **options):
        trained.extend(specs)
        for spec in specs:
            (runs_dir / spec.run_id).mkdir(parents=True)
            runs.write_status(runs_dir / spec.run_id, "finished", "", 2, 1.0)
        return {spec.run_id: {"state": "finished", "message": "", "attempts": 1} for spec in specs}

    monkeypatch.setattr(connection, "connect", lambda address=None, num_cpus=None: False)  # no Ray: the specs are the point
    monkeypatch.setattr(trials, "run_trials", record)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the command's handlers stay out of pytest
    assert main(["sweep", "--plan", str(store.write_plan(plan)), "--json"]) == 0
    (spec,) = trained
    assert spec.tags["sweep"] == {"sweep_id": plan.sweep_id, "index": 2, "settings": {"epochs": 2}, "seed": 7}
    assert spec.config["train"]["epochs"] == 2
    assert spec.config["data"]["seed"] == spec.config["model"]["seed"] == spec.config["train"]["seed"] == 7
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sweep_id"] == plan.sweep_id
    assert [(t["run_id"], t["settings"], t["seed"], t["state"]) for t in result["trials"]] == [
        (spec.run_id, {"epochs": 2}, 7, "finished")]


def test_an_unreachable_address_fails_within_seconds_with_one_sentence(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gapdemo", "sweep", "--image-size", "32", "--train-size", "48", "--batch-size", "16",
         "--epochs", "1", "--backends", "gap", "--set", "dropout_rate=0.3,0.6", "--seeds", "1",
         "--address", "127.0.0.1:9", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "No Ray cluster answers at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60  # TensorFlow is never imported on this path


def test_sweep_json_from_the_cli_on_a_local_ray(tmp_path):
    """The issue's command shape at 32 px: four finished trials and a summary with mean and std."""
    result = subprocess.run(
        [sys.executable, "-m", "gapdemo", "sweep", "--image-size", "32", "--train-size", "48", "--batch-size", "16",
         "--epochs", "1", "--backends", "fc,gap", "--set", "dropout_rate=0.3,0.6", "--seeds", "2",
         "--runs-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["engine"] == "ray" and output["nodes"] == 1
    assert len(output["trials"]) == 4 and {t["state"] for t in output["trials"]} == {"finished"}
    assert {(t["settings"]["dropout_rate"], t["seed"]) for t in output["trials"]} == {
        (0.3, 0), (0.3, 1), (0.6, 0), (0.6, 1)}
    for row in output["summary"]:
        assert {"settings", "backend", "n", "val_accuracy_mean", "val_accuracy_std", "gap_mean", "gap_std"} <= set(row)
        assert row["n"] == 2
    assert "Traceback" not in result.stderr


# ----- a real Ray cluster: two nodes of one CPU each, on this machine -----
@pytest.fixture(scope="module")
def two_node_cluster():
    from ray.cluster_utils import Cluster  # here: after the importorskip of ray above

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    connection.connect(cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def tiny_sweep_config(runs_dir):
    config = tiny_config(str(runs_dir), ("fc", "gap"))
    config.train.epochs = 2
    return config


@pytest.mark.slow
def test_trials_land_on_both_nodes_and_every_result_comes_home(two_node_cluster, tmp_path):
    runs_dir = tmp_path / "runs"
    result = run_sweep(tiny_sweep_config(runs_dir), {"dropout_rate": [0.3, 0.6]}, 2, max_concurrent=2)
    assert result["engine"] == "ray" and result["state"] == "finished"
    assert result["nodes"] == 2
    assert len(result["trials"]) == 4 and all(t["state"] == "finished" for t in result["trials"])
    for trial in result["trials"]:
        run_dir = runs_dir / trial["run_id"]
        assert sorted(p.name for p in (run_dir / "models").glob("*.keras")) == ["fc.keras", "gap.keras"]
        assert list(runs.read_epoch_metrics(run_dir).epoch.unique()) == [1, 2]
        # Each epoch sends only what changed: the appended batch rows and every epoch's probes still arrive.
        assert sorted(runs.read_batch_metrics(run_dir).epoch.unique()) == [1, 2]
        assert sorted(p.name for p in (run_dir / "probes").glob("epoch_*.npz")) == [
            "epoch_000.npz", "epoch_001.npz", "epoch_002.npz"]  # before training, then after each epoch
        config = runs.read_json(run_dir / "config.json")
        assert config["sweep"]["sweep_id"] == result["sweep_id"] and config["train"]["runs_dir"] == str(runs_dir)
        assert set(trial["final"]) == {"fc", "gap"}
    assert {(r["label"], r["backend"]): r["n"] for r in result["summary"]} == {
        (f"dropout_rate={rate}", backend): 2 for rate in (0.3, 0.6) for backend in ("fc", "gap")}
    assert [s.run_id for s in runs.list_runs(runs_dir)]  # the Runs tab lists the trials like any run

    # The same sweep again resumes: a trial that did not finish trains again, finished ones are kept.
    unfinished = result["trials"][1]["run_id"]
    kept = {t["run_id"]: (runs_dir / t["run_id"] / "metrics.csv").stat().st_mtime_ns for t in result["trials"]}
    runs.write_status(runs_dir / unfinished, "running", "", 1, 3.0)  # as if its driver had been killed
    again = run_sweep(tiny_sweep_config(runs_dir), {"dropout_rate": [0.3, 0.6]}, 2, max_concurrent=2)
    assert [t["run_id"] for t in again["trials"]] == list(kept)
    assert all(t["state"] == "finished" for t in again["trials"])
    retrained = [run_id for run_id, mtime in kept.items()
                 if (runs_dir / run_id / "metrics.csv").stat().st_mtime_ns != mtime]
    assert retrained == [unfinished]


@pytest.mark.slow
def test_a_killed_worker_node_loses_no_trial(two_node_cluster, tmp_path):
    cluster = two_node_cluster
    worker = cluster.add_node(num_cpus=1)  # the node this test kills
    cluster.wait_for_nodes()
    worker_id = worker.node_id
    runs_dir = tmp_path / "runs"
    config = tiny_sweep_config(runs_dir)
    config.train.epochs = 3
    killed = threading.Event()

    def kill_when_a_trial_runs_there(snapshot):
        if not killed.is_set() and any(entry.get("node") == worker_id and entry.get("state") == "running"
                                       for entry in snapshot.values()):
            killed.set()
            cluster.remove_node(worker, allow_graceful=False)

    result = run_sweep(config, {"dropout_rate": [0.3, 0.6]}, 2, max_concurrent=3,
                       on_update=kill_when_a_trial_runs_there)
    assert killed.is_set(), "no trial ever ran on the node to kill"
    assert result["state"] == "finished"
    assert all(t["state"] == "finished" for t in result["trials"]), [t["state"] for t in result["trials"]]
    for trial in result["trials"]:
        assert list(runs.read_epoch_metrics(runs_dir / trial["run_id"]).epoch.unique()) == [1, 2, 3]
    assert sum(r["n"] for r in result["summary"]) == 8  # 4 trials x 2 back-ends, none lost


@pytest.mark.slow
def test_stopping_a_sweep_keeps_finished_trials_and_says_how_to_resume(two_node_cluster, tmp_path):
    runs_dir = tmp_path / "runs"
    config = tiny_sweep_config(runs_dir)
    # long enough that the stop lands while later trials train: a worker's later trials reuse its
    # compiled model, and two-epoch ones could all finish before the once-a-second update saw the first
    config.train.epochs = 12
    stop = threading.Event()

    def stop_after_first_finished_trial(snapshot):
        if any(entry.get("state") == "finished" for entry in snapshot.values()):
            stop.set()

    result = run_sweep(config, {"dropout_rate": [0.3, 0.6]}, 3, max_concurrent=2, stop_event=stop,
                       on_update=stop_after_first_finished_trial)
    states = [t["state"] for t in result["trials"]]
    assert result["state"] == "stopped" and "resume" in result["message"]
    # trials that had not started stay pending (a resume trains them); none failed, none went on
    assert "finished" in states and set(states) <= {"finished", "stopped", "pending"}
    assert states.count("finished") < len(states)
    sweep = store.load(runs_dir, result["sweep_id"])
    assert sweep["state"] == "stopped"
    for trial in result["trials"]:
        if trial["state"] == "finished":
            assert (runs_dir / trial["run_id"] / "models" / "gap.keras").exists()


# ----- the page: a sweep folder with real (tiny) trained runs, and the launcher's child process -----
@pytest.fixture(scope="module")
def stored_sweep(tmp_path_factory):
    """A finished 2 x 2 sweep on disk, its runs trained in this process by the real trainer."""
    from gapdemo.training.trainer import Trainer  # TensorFlow, for this fixture only

    runs_dir = tmp_path_factory.mktemp("page_sweep") / "runs"
    base = tiny_sweep_config(runs_dir)
    grid = {"dropout_rate": [0.3, 0.6]}
    sweep = store.create_or_resume(runs_dir, plan_trials(base, grid, 2))
    for stored in sweep["trials"]:
        trial = Trial(stored["index"], stored["settings"], stored["seed"])
        run_dir = runs_dir / stored["run_id"]
        completed = Trainer(trial_config(base, trial, str(runs_dir)), run_dir).train()
        runs.write_status(run_dir, "finished", "", completed, 1.0)
    store.save(runs_dir, {**sweep, "state": "finished"})
    return runs_dir, sweep["sweep_id"]


def test_sweeps_tab_shows_trials_bands_and_summary(stored_sweep, monkeypatch):
    runs_dir, sweep_id = stored_sweep
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(runs_dir))
    st.cache_resource.clear()
    app = AppTest.from_file("../app.py", default_timeout=120)
    app.run()
    assert not app.exception
    shown = " ".join(element.value for element in app.markdown)
    assert f"Sweep `{sweep_id}`: **finished** · 4/4 trials finished" in shown
    tables = [element.value for element in app.dataframe]
    (trials,) = [table for table in tables if "seed" in table.columns]
    assert len(trials) == 4 and set(trials["state"]) == {"finished"}
    assert {"fc val acc", "gap val acc"} <= set(trials.columns)
    (summary,) = [table for table in tables if "val_accuracy_std" in table.columns]
    assert len(summary) == 4 and set(summary["n"]) == {2}
    charts = [chart for chart in app.get("plotly_chart") if f"sweep_bands_{sweep_id}" in str(chart.proto)]
    assert len(charts) == 2  # one per back-end
    assert not app.button(key="sweep_start").disabled and app.button(key="sweep_stop").disabled


def test_the_page_runs_a_sweep_in_a_child_process_within_its_training_slots(tmp_path):
    runs_dir = tmp_path / "runs"
    base = tiny_config(str(runs_dir), ("gap",))
    scheduler = PageScheduler(budget_bytes=2**34)
    job = scheduler.submit_sweep(base, {"epochs": [1, 2]}, 1, owner=None, served=False)
    sweep_id = job.sweep_id
    assert sweep_id == sweep_id_for(base, {"epochs": [1, 2]}, 1)
    with pytest.raises(ValueError, match="already running or waiting"):
        scheduler.submit_sweep(base, {"epochs": [1, 2]}, 1, owner=None, served=False)
    assert job.wait(300) and job.state == "finished", job.status()
    handed = store.read_plan(runs_dir / "sweeps" / sweep_id / "plan.json")  # what the child was given
    assert handed == plan_sweep(base, {"epochs": [1, 2]}, 1)
    assert "--max-concurrent" in job.command() and job.slots == scheduler.max_training  # trials count as runs
    result = sweep_result(runs_dir, sweep_id)
    assert result["state"] == "finished"
    assert [(t["settings"], t["seed"], t["epochs_completed"]) for t in result["trials"]] == [
        (trial.settings, trial.seed, trial.settings["epochs"]) for trial in handed.trials]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX SIGKILL")
def test_a_killed_driver_is_resumed_by_the_same_command(tmp_path):
    """SIGKILL the sweep command once a trial finished; the same command again keeps that trial."""
    command = [sys.executable, "-m", "gapdemo", "sweep", "--image-size", "32", "--train-size", "48",
               "--batch-size", "16", "--epochs", "1", "--backends", "gap", "--set", "epochs=1,2", "--seeds", "2",
               "--max-concurrent", "1", "--runs-dir", str(tmp_path)]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished_first = None
    deadline = time.monotonic() + 300
    while finished_first is None and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.5)
        for sweep in store.list_sweeps(tmp_path):
            done = [t for t in store.load(tmp_path, sweep["sweep_id"])["trials"] if t["state"] == "finished"]
            finished_first = done[0]["run_id"] if done else None
    assert finished_first is not None and driver.poll() is None, "no trial finished while the driver ran"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(30)
    (sweep,) = store.list_sweeps(tmp_path)
    assert store.load(tmp_path, sweep["sweep_id"])["state"] == "interrupted"
    kept = (tmp_path / finished_first / "metrics.csv").stat().st_mtime_ns
    again = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert result["sweep_id"] == sweep["sweep_id"] and {t["state"] for t in result["trials"]} == {"finished"}
    assert (tmp_path / finished_first / "metrics.csv").stat().st_mtime_ns == kept  # not trained again
    assert f"trial {finished_first}" not in again.stderr
