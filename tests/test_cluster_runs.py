"""Single runs on a Ray cluster: `gapdemo train --address` and the page's Start with GAPDEMO_RAY_ADDRESS,
against real local clusters of several nodes (ray.cluster_utils), one CPU each."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "32", "--train-size", "48", "--batch-size", "16", "--backends", "fc,gap"]


@pytest.fixture
def cluster():
    """A head and a second node, one CPU each; the tests' own driver never joins it."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def node_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.list_all_nodes()}


def train(address: str, runs_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "gapdemo", "train", *TINY, "--address", address, "--runs-dir", str(runs_dir),
               "--json", *extra]
    return subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(process: subprocess.Popen, timeout: float = 600) -> dict:
    return result_and_progress(process, timeout)[0]


def result_and_progress(process: subprocess.Popen, timeout: float = 600) -> tuple[dict, list[str]]:
    """The run's JSON result (stdout) and its progress lines (stderr, piped: plain lines)."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1]), stderr.splitlines()


def assert_complete(run_dir: Path, epochs: int, backends=("fc", "gap")) -> None:
    from gapdemo.runs import has_models, read_epoch_metrics, read_status

    assert read_status(run_dir)["state"] == "finished"
    assert read_status(run_dir)["epochs_completed"] == epochs
    metrics = read_epoch_metrics(run_dir)
    assert sorted(metrics["epoch"].unique()) == list(range(1, epochs + 1))
    assert set(metrics["backend"]) == set(backends) and has_models(run_dir)


@pytest.mark.slow
def test_two_runs_at_once_train_side_by_side_on_different_nodes(cluster, tmp_path):
    runs_dir = tmp_path / "runs"
    # each holds its node for its start (seconds: a worker, TensorFlow, data) and 4 epochs: far longer than
    # the other driver takes to join, so both are on a node while the other trains, whichever comes first
    first, second = (train(cluster.address, runs_dir, "--epochs", "4") for _ in range(2))
    (results, progress) = zip(result_and_progress(first), result_and_progress(second), strict=True)
    for lines in progress:  # epochs of 3 batches end between two polls, yet each shows its final rate
        epoch_lines = [line for line in lines if line.startswith("epoch ") and "/4:" in line]
        assert [line.split(":")[0] for line in epoch_lines] == [f"epoch {epoch}/4" for epoch in range(1, 5)], lines
        assert all("100%" in line and "img/s" in line for line in epoch_lines), epoch_lines
    assert [r["status"] for r in results] == ["finished", "finished"]
    assert {r["engine"] for r in results} == {"ray"}
    assert {r["node"] for r in results} == node_ids(cluster)  # one run on each node: side by side
    assert results[0]["run_id"] != results[1]["run_id"]
    for result in results:
        assert Path(result["run_dir"]).parent == runs_dir
        assert_complete(Path(result["run_dir"]), 4)
    assert not list(runs_dir.glob(".*"))  # no half-written file left behind


def test_an_unreachable_address_is_refused_before_anything_is_queued(tmp_path):
    started = time.monotonic()
    process = train("127.0.0.1:1", tmp_path / "runs")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith("error: No Ray cluster answers at 127.0.0.1:1")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert time.monotonic() - started < 60  # "within seconds": a hang would meet the timeout above instead


@pytest.mark.slow
def test_a_run_asking_for_a_gpu_goes_to_the_node_that_declares_one(tmp_path):
    """Ray schedules on a declared GPU resource even where TensorFlow then finds no GPU (it trains on the CPU)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        result = result_of(train(cluster.address, tmp_path / "runs", "--epochs", "1", "--gpus-per-run", "1"))
        assert result["status"] == "finished" and result["node"] == gpu_node.node_id
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_a_lost_node_retries_the_run_on_another_from_the_start(tmp_path):
    from ray.cluster_utils import Cluster

    from gapdemo.runs import read_status

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head trains nothing
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        process = train(cluster.address, tmp_path / "runs", "--epochs", "30", "--events")
        first_node = follow_until_epoch(process, 1)["node"]  # it trains on a node: take that node away
        assert first_node in {worker.node_id for worker in workers}
        cluster.remove_node(next(worker for worker in workers if worker.node_id == first_node))
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["status"] == "finished" and result["node"] != first_node and result["attempts"] == 2
        assert_complete(Path(result["run_dir"]), 30)
        assert read_status(Path(result["run_dir"]))["state"] == "finished"
    finally:
        cluster.shutdown()


def follow_until_epoch(process: subprocess.Popen, epoch: int) -> dict:
    """Read the run's event lines until one shows it training epoch `epoch` or later; that event."""
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "update" and (event.get("progress") or {}).get("epoch", 0) >= epoch:
            return event
    raise AssertionError(f"the run ended before epoch {epoch}")


@pytest.mark.slow
def test_a_cluster_that_goes_away_ends_the_run_as_failed_with_its_epochs_kept(tmp_path):
    from ray.cluster_utils import Cluster

    from gapdemo.runs import read_epoch_metrics, read_status

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        process = train(cluster.address, tmp_path / "runs", "--epochs", "300", "--events")
        follow_until_epoch(process, 3)
    finally:
        cluster.shutdown()
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    result = json.loads(stdout.strip().splitlines()[-1])
    message = "The Ray cluster went away mid-run; the epochs already home are kept."
    assert result["status"] == "failed" and f"error: {message}" in stderr.splitlines()
    status = read_status(Path(result["run_dir"]))
    assert status["state"] == "failed" and status["message"] == message and status["epochs_completed"] >= 2
    assert result["epochs_completed"] == status["epochs_completed"]
    assert len(read_epoch_metrics(Path(result["run_dir"]))) == 2 * status["epochs_completed"]  # fc and gap


@pytest.mark.slow
@pytest.mark.posix
def test_ctrl_c_stops_a_cluster_run_after_the_batch_in_flight(cluster, tmp_path):
    import signal

    from gapdemo.runs import read_status

    process = train(cluster.address, tmp_path / "runs", "--epochs", "300", "--events")
    follow_until_epoch(process, 2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    status = read_status(Path(result["run_dir"]))
    assert result["status"] == status["state"] == "stopped" and 1 <= status["epochs_completed"] < 300


@pytest.mark.slow
def test_the_page_trains_on_the_cluster_with_live_curves(cluster, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.common import job_manager

    monkeypatch.setenv("GAPDEMO_RAY_ADDRESS", cluster.address)
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    page = AppTest.from_file("../app.py", default_timeout=120)
    page.run()
    page.slider(key="image_size").set_value(32)
    page.number_input(key="train_size").set_value(48)
    page.select_slider(key="batch_size").set_value(16)
    page.slider(key="epochs").set_value(3)
    page.run()
    page.button(key="start").click().run()
    assert not page.exception, page.exception
    job = job_manager().latest()
    assert type(job).__name__ == "ClusterJob"
    deadline = time.monotonic() + 600
    while not job.snapshot().epoch_metrics and time.monotonic() < deadline:  # the first epoch comes home
        time.sleep(1)
    page.run()
    assert not page.exception, page.exception
    live = job.snapshot()
    assert live.epoch_metrics and live.batch_metrics and live.probes
    assert len(page.get("plotly_chart")) >= 2  # accuracy and loss, drawn while it trains
    assert job.wait(600) and job.state == "finished", job.snapshot().message
    assert job.node in node_ids(cluster)
    assert_complete(job.run_dir, 3, ("fc", "fc_dropout", "gap"))
    page.run()
    assert not page.exception and any("finished" in m.value for m in page.markdown)


def test_what_each_page_run_asks_the_cluster_for():
    from gapdemo.cluster.resources import resources_per_run
    from gapdemo.jobs.cluster_job import ClusterJobManager

    assert resources_per_run({}) == (1.0, 0.0)
    assert resources_per_run({"GAPDEMO_CPUS_PER_RUN": "2", "GAPDEMO_GPUS_PER_RUN": "0.5"}) == (2.0, 0.5)
    for environ in ({"GAPDEMO_CPUS_PER_RUN": "0"}, {"GAPDEMO_GPUS_PER_RUN": "-1"}, {"GAPDEMO_CPUS_PER_RUN": "two"}):
        with pytest.raises(ValueError, match="must be a number of at least"):
            resources_per_run(environ)
    manager = ClusterJobManager("127.0.0.1:1", 2, 0.5)
    assert manager.engine_note == "Runs train on a Ray cluster, side by side as its resources allow: 2 CPU(s) and 0.5 GPU(s) each."
    from gapdemo.config import tiny_config

    with pytest.raises(ValueError, match="^No Ray cluster answers at 127.0.0.1:1"):  # refused before it is queued
        manager.submit(tiny_config("runs"), served=False)
    assert manager.jobs() == []


CHILD_THAT_SAYS_NONSENSE_THEN_FAILS = r"""
import json, sys
sys.stdin.read()
print("a library's stray line on stdout", flush=True)
print(json.dumps({"event": "update", "state": "running", "node": "n1", "progress": {"phase": "training"}}), flush=True)
sys.stderr.write("x" * 300_000 + "\n")  # far more than a pipe holds: it must not block the child
sys.stderr.write("error: The data went missing on the worker.\n")
sys.exit(2)
"""


class ScriptedClusterJob:
    """A ClusterJob whose child is a small script instead of `gapdemo train --address`."""

    @staticmethod
    def make(tmp_path, script: str):
        from gapdemo.config import tiny_config
        from gapdemo.jobs.cluster_job import ClusterJob

        class Scripted(ClusterJob):
            def command(self):
                return [sys.executable, "-c", script]

        return Scripted(tiny_config(str(tmp_path / "runs")), "127.0.0.1:1")


def test_a_cluster_job_survives_a_child_that_talks_nonsense_floods_stderr_and_fails(tmp_path):
    job = ScriptedClusterJob.make(tmp_path, CHILD_THAT_SAYS_NONSENSE_THEN_FAILS)
    finished = []
    thread = threading.Thread(target=lambda: finished.append(job.run()), daemon=True)
    thread.start()
    thread.join(120)
    assert finished == ["failed"] and job.is_done()
    assert job.snapshot().message == "The data went missing on the worker." and job.node == "n1"


def test_a_cluster_job_whose_child_cannot_start_ends_as_failed(tmp_path):
    from gapdemo.config import tiny_config
    from gapdemo.jobs.cluster_job import ClusterJob

    class Unstartable(ClusterJob):
        def command(self):
            return [str(tmp_path / "no-such-program")]

    job = Unstartable(tiny_config(str(tmp_path / "runs")), "127.0.0.1:1")
    assert job.run() == "failed" and job.is_done()
    assert "no-such-program" in job.snapshot().message


def test_a_served_cluster_page_gives_each_visitor_one_running_and_one_waiting_run(tmp_path):
    import socket

    from gapdemo.config import tiny_config
    from gapdemo.jobs.cluster_job import CLUSTER_LIMIT_MESSAGE, ClusterJobManager
    from gapdemo.jobs.scheduler import QUEUE_LIMIT_MESSAGE

    class Held(ClusterJobManager):  # runs are admitted but not started: the test sets their states
        def _start_ready_locked(self):
            pass

    with socket.socket() as listener:  # something answers at the address: the cluster "is reachable"
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        manager = Held(f"127.0.0.1:{listener.getsockname()[1]}")
        first = manager.submit(tiny_config(str(tmp_path)), owner="a", served=True)
        with pytest.raises(ValueError, match=QUEUE_LIMIT_MESSAGE):
            manager.submit(tiny_config(str(tmp_path)), owner="a", served=True)
        first.publish(state="running")  # it found a node
        second = manager.submit(tiny_config(str(tmp_path)), owner="a", served=True)
        second.publish(state="running")  # so did the second: a third would take a third node
        with pytest.raises(ValueError) as refused:
            manager.submit(tiny_config(str(tmp_path)), owner="a", served=True)
        assert str(refused.value) == CLUSTER_LIMIT_MESSAGE
        manager.submit(tiny_config(str(tmp_path)), owner="b", served=True)  # another visitor still gets in
        assert [job for job in manager.jobs("run") if job.state == "running"] == [second, first]  # newest first
        assert len(manager.queued()) == 1


@pytest.mark.slow
@pytest.mark.posix
def test_ctrl_c_while_waiting_for_a_free_cpu_ends_the_run_at_once(tmp_path):
    import signal

    from ray.cluster_utils import Cluster

    from gapdemo.runs import read_status

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})  # room for one run at a time
    try:
        busy = train(cluster.address, tmp_path / "runs", "--epochs", "300", "--events")
        follow_until_epoch(busy, 1)
        waiting = train(cluster.address, tmp_path / "runs", "--epochs", "1", "--events")
        states = []
        for line in waiting.stdout:  # it reports every second while it waits for the CPU the first run holds
            if json.loads(line).get("event") == "update":
                states.append(json.loads(line)["state"])
                if len(states) == 8:
                    break
        # never running beside the first: a task that gave its CPU back while it waited in ray.get let the
        # next run start on the same one-CPU node (before runs had placement groups)
        assert states == ["waiting"] * 8
        waiting.send_signal(signal.SIGINT)
        stdout, stderr = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, stderr[-2000:]
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["status"] == "stopped" and result["epochs_completed"] == 0
        assert read_status(Path(result["run_dir"]))["state"] == "stopped"
        assert busy.poll() is None  # the running run was not touched
        busy.send_signal(signal.SIGINT)
        busy.communicate(timeout=300)
    finally:
        cluster.shutdown()
