"""The page never trains: its runs, claims jobs and sweeps train in processes of their own, through one queue.

Real processes throughout: the training worker (`python -m gapdemo worker`), `gapdemo claims` and `gapdemo
sweep` children with their local Ray, killed with SIGKILL where a test says so.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import close_page_scheduler
from gapdemo import runs
from gapdemo.budget.limits import max_training, warm_worker
from gapdemo.budget.memory import estimate_peak_bytes, memory_budget_bytes, process_tree_bytes
from gapdemo.config import tiny_config
from gapdemo.jobs.endings import ending_sentence, over_budget_sentence
from gapdemo.jobs.page import PageScheduler
from gapdemo.jobs.scheduler import Scheduler

APP = "../app.py"
PROJECT = Path(__file__).resolve().parents[1]


def until(condition, timeout=180, what="the condition"):
    """Wait for an outcome (never a fixed sleep); fail with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def open_page(runs_dir, seed=0, epochs=2, train_size=48) -> AppTest:
    page = AppTest.from_file(APP, default_timeout=120)
    page.run()
    page.slider(key="image_size").set_value(32)
    page.number_input(key="train_size").set_value(train_size)
    page.slider(key="epochs").set_value(epochs)
    page.select_slider(key="batch_size").set_value(16)
    page.number_input(key="seed").set_value(seed)
    page.run()
    assert not page.exception and not page.sidebar.error, (page.exception, page.sidebar.error)
    return page


def status_line(page) -> str:
    page.run()
    assert not page.exception, page.exception
    lines = [m.value for m in page.markdown if m.value.startswith("**Run `")]
    return " ".join(lines[:1] + [bar.proto.text for bar in page.get("progress")] + [e.value for e in page.error])


@pytest.fixture
def page_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    yield tmp_path / "runs"
    close_page_scheduler()


def writer_pid(run_dir) -> int:
    return int(runs.read_stored_status(run_dir)["process"].split("@")[0])


# ----- the worker -----

def test_start_trains_in_a_worker_process_not_the_servers(page_runs):
    from dashboard.common import job_manager

    page = open_page(page_runs)
    page.button(key="start").click().run()
    job = job_manager().latest()
    until(lambda: job.is_done(), what="the run to end")
    assert "finished" in status_line(page)
    pid = writer_pid(job.run_dir)
    assert pid != os.getpid()
    assert "worker" in psutil.Process(pid).cmdline()  # the page's training worker, kept for the next run
    assert len(runs.read_epoch_metrics(job.run_dir)) == 2 * 3  # 2 epochs x 3 back-ends, read from its folder
    snapshot = job.snapshot(0)
    assert len(snapshot.batch_metrics) == len(runs.read_batch_metrics(job.run_dir)) > 0
    assert snapshot.probes and snapshot.probes_epoch == 2


@pytest.mark.posix
def test_a_killed_worker_leaves_the_page_up_and_the_next_run_trains(page_runs):
    from dashboard.common import job_manager

    alice = open_page(page_runs, seed=1, epochs=50, train_size=320)  # trains until killed
    alice.button(key="start").click().run()
    bob = open_page(page_runs, seed=2, epochs=2)
    bob.button(key="start").click().run()  # queued behind alice's run, before the kill
    scheduler = job_manager()
    first, second = scheduler.jobs("run")[1], scheduler.jobs("run")[0]
    assert second.state == "queued"
    until(lambda: len(first.snapshot(10**9).epoch_metrics) >= 3, what="alice's run to finish an epoch")
    worker = writer_pid(first.run_dir)
    os.kill(worker, signal.SIGKILL)
    until(lambda: first.is_done(), what="the run to end")
    sentence = "The training process was killed (SIGKILL); finished epochs are kept."
    assert first.state == "failed" and first.snapshot().message == sentence
    assert sentence in status_line(alice)  # the page draws, with the sentence, no exception
    stored = runs.read_status(first.run_dir)
    assert stored["state"] == "failed" and stored["message"] == sentence and stored["epochs_completed"] >= 1
    assert len(runs.read_epoch_metrics(first.run_dir)) == 3 * stored["epochs_completed"]  # finished epochs kept
    until(lambda: second.is_done(), what="the queued run to train")
    assert second.state == "finished"
    assert writer_pid(second.run_dir) not in (worker, os.getpid())  # a new worker took the next run


def test_a_stopped_run_in_the_worker_keeps_its_epochs_and_the_worker_trains_the_next(page_runs):
    scheduler = PageScheduler(budget_bytes=2**34)
    config = tiny_config(str(page_runs), ("gap",))
    config.train.epochs, config.data.train_size, config.data.synthetic_size = 40, 320, 400
    try:
        job = scheduler.submit(config, served=False)
        until(lambda: len(job.snapshot(10**9).epoch_metrics) >= 2, what="two epochs")
        job.stop()
        assert job.wait(120) and job.state == "stopped"
        epochs = runs.read_status(job.run_dir)["epochs_completed"]
        assert 2 <= epochs < 40 and len(runs.read_epoch_metrics(job.run_dir)) == epochs
        worker = writer_pid(job.run_dir)
        again = scheduler.submit(tiny_config(str(page_runs), ("gap",)), served=False)
        assert again.wait(120) and again.state == "finished"
        assert writer_pid(again.run_dir) == worker  # the same warm worker: TensorFlow imported once
    finally:
        scheduler.close()


def test_a_run_past_its_memory_budget_is_stopped_with_one_sentence(page_runs):
    scheduler = PageScheduler(budget_bytes=2**34)
    scheduler.warm()
    assert scheduler.pool.wait_ready(120)
    (worker,) = scheduler.pool.all_workers()
    idle = process_tree_bytes(worker.pid)
    scheduler.budget_bytes = idle + 150 * 2**20  # a little above TensorFlow imported: any real run grows past it
    config = tiny_config(str(page_runs), ("fc", "gap"))
    config.data.image_size, config.data.train_size, config.data.synthetic_size = 96, 1600, 2000
    config.train.batch_size, config.train.epochs = 64, 3
    try:
        job = scheduler.submit(config, served=False)
        assert job.wait(180)
        message = job.snapshot().message
        assert job.state == "failed" and message.startswith("The training process grew past the memory budget")
        assert "finished epochs are kept" in message
        assert runs.read_status(job.run_dir)["state"] == "failed" and not worker.alive()
    finally:
        scheduler.close()


# ----- one queue for every kind -----

def training_runs(runs_dir: Path) -> int:
    """Run folders (claims and sweep trials included) whose status says running and whose writer is alive."""
    count = 0
    for status_file in runs_dir.rglob("status.json"):
        status = runs.read_json(status_file)
        count += status.get("state") in ("running", "stopping") and runs.writer_is_alive(status)
    return count


def test_a_run_a_claims_job_and_a_sweep_from_one_page_take_turns(page_runs, monkeypatch):
    from dashboard.common import job_manager

    monkeypatch.setenv("GAPDEMO_MAX_TRAINING", "1")
    page = open_page(page_runs, epochs=10)  # the run outlasts the presses: its worker imports TensorFlow first
    page.number_input(key="sweep_seeds").set_value(1)
    page.text_input(key="sweep_values_dropout_rate").set_value("0.3,0.6")  # two trials
    page.run()
    samples, sampling = [], threading.Event()

    def sample():
        while not sampling.is_set():
            samples.append(training_runs(page_runs))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    page.button(key="start").click().run()
    page.number_input(key="claims_seeds").set_value(1).run()
    page.button(key="claims_start").click().run()
    page.button(key="sweep_start").click().run()
    assert not page.exception
    scheduler = job_manager()
    jobs = [scheduler.latest(kind) for kind in ("run", "claims", "sweep")]
    assert all(job is not None for job in jobs)
    page.run()
    assert (jobs[0].state, jobs[1].state, jobs[2].state) == ("running", "queued", "queued")
    assert f"Waiting in the queue: claims job, 1st in line; sweep `{jobs[2].sweep_id}`, 2nd in line" in [
        caption.value for caption in page.caption]
    try:
        until(lambda: all(job.is_done() for job in jobs), timeout=600, what="all three jobs")
    finally:
        sampling.set()
        sampler.join()
    assert [job.state for job in jobs] == ["finished", "finished", "finished"], [j.status() if hasattr(j, "status")
                                                                                 else j.snapshot().message for j in jobs]
    assert max(samples) == 1  # never two at once, and something did train while sampled
    assert jobs[1].slots == jobs[2].slots == 1


SERVER_SIDE = """
import json, sys, time
from gapdemo.config import tiny_config
from gapdemo.jobs.page import PageScheduler
scheduler = PageScheduler(budget_bytes=2**34)
config = tiny_config(sys.argv[1], ("gap",))
config.train.epochs = 30
job = scheduler.submit_claims(config, 1, owner=None, served=False)
deadline = time.monotonic() + 180
while "runs on Ray:" not in job.status()["message"] and time.monotonic() < deadline and not job.is_done():
    time.sleep(0.1)  # until the claims job's own process has started Ray and its runs train there
print(json.dumps({"message": job.status()["message"], "ray": "ray" in sys.modules}))
scheduler.close()
"""


def test_the_server_never_imports_ray_while_a_claims_job_trains(tmp_path):
    """The page's side of a claims job, in a fresh process as the server is: Ray runs in the child only."""
    answer = subprocess.run([sys.executable, "-c", SERVER_SIDE, str(tmp_path / "runs")], capture_output=True,
                            text=True, timeout=300, cwd=PROJECT)
    result = json.loads(answer.stdout.strip().splitlines()[-1])
    assert "runs on Ray:" in result["message"] and result["ray"] is False, (result, answer.stderr[-2000:])


class FakeJob:
    """A job for the queue's rules alone: it 'runs' until released; slots as asked."""

    def __init__(self, kind, slots, owner=None):
        self.kind, self.slots, self.owner, self.state = kind, slots, owner, "queued"
        self.release, self.done = threading.Event(), threading.Event()

    def run(self):
        self.state = "running"
        self.release.wait(60)
        self.state = "finished"
        self.done.set()

    def stop(self):
        self.release.set()
        if self.state == "queued":
            self.state = "stopped"
            self.done.set()

    def is_done(self):
        return self.done.is_set()

    def wait(self, timeout=None):
        return self.done.wait(timeout)


def test_the_queue_head_waits_for_its_slots_and_nothing_overtakes_it():
    scheduler = Scheduler(max_training=2)
    run, sweep, claims, late_run = FakeJob("run", 1), FakeJob("sweep", 2), FakeJob("claims", 1), FakeJob("run", 1, "b")
    for job in (run, sweep, claims, late_run):
        scheduler.submit_job(job, served=False)
    until(lambda: run.state == "running")
    assert (sweep.state, claims.state, late_run.state) == ("queued", "queued", "queued")  # one slot free: not 2
    assert scheduler.queued() == [sweep, claims, late_run] and scheduler.place_in_line(claims) == 2
    with pytest.raises(ValueError, match="A sweep is already running or waiting"):
        scheduler.submit_job(FakeJob("sweep", 1), served=False)
    run.release.set()
    until(lambda: sweep.state == "running")
    assert claims.state == "queued"  # the sweep takes both slots
    sweep.release.set()
    until(lambda: claims.state == "running" and late_run.state == "running")  # 1 + 1 slots
    claims.release.set()
    late_run.release.set()
    assert all(job.wait(60) for job in scheduler.jobs())


# ----- small parts -----

@pytest.mark.parametrize("returncode, lines, low, expected", [
    (-9, [], False, "The training process was killed (SIGKILL); finished epochs are kept."),
    (-9, [], True, "The training process was killed (out of memory at about 9.1 GiB?); finished epochs are kept."),
    (-11, [], False, "The training process crashed (SIGSEGV); finished epochs are kept."),
    (0, [], False, "The training process ended without a word (exit code 0); finished epochs are kept."),
    (2, ["Traceback\n", "error: The folder /x does not exist.\n"], False, "The folder /x does not exist."),
])
def test_why_a_process_ended_in_one_sentence(returncode, lines, low, expected):
    assert ending_sentence(returncode, lines, peak_bytes=9_800_000_000, memory_was_low=low) == expected


def test_a_tail_reads_only_what_was_appended(tmp_path):
    from gapdemo.runs.tail import batch_metrics_tail

    def row(batch, loss=0.5):
        return {"backend": "gap", "epoch": 1, "batch": batch, "step": batch / 10, "loss": loss, "accuracy": 0.5}

    tail = batch_metrics_tail(tmp_path)
    assert tail.read_new() == []  # no file yet
    runs.append_batch_rows(tmp_path, [row(1), row(2)])
    assert [r["batch"] for r in tail.read_new()] == [1, 2] and tail.read_new() == []
    with open(tmp_path / "batch_metrics.csv", "a") as handle:
        handle.write("gap,1,3,0.3,0.4")  # a row still being written: no line break yet
    assert tail.read_new() == []
    with open(tmp_path / "batch_metrics.csv", "a") as handle:
        handle.write("5,0.5\n")
    assert tail.read_new() == [row(3, 0.45)]
    runs.append_batch_rows(tmp_path, [row(4, float("nan")), row(5)])  # a missing value is dropped, as pandas does
    assert [r["batch"] for r in tail.rows_from(3)] == [5]
    assert [r["batch"] for r in tail.rows_from(1)] == [2, 3, 5]  # a reader behind: read again from the start
    assert tail.rows_from(10) == []
    (tmp_path / "batch_metrics.csv").write_text("backend,epoch,batch,step,loss,accuracy\ngap,1,1,0.1,0.5,0.5\n")
    assert tail.read_new() == [row(1)] and tail.restarted  # a shorter file: a restart, read from its start


def test_the_budget_sentence_names_both_figures():
    assert over_budget_sentence(3_210_000_000, 2_000_000_000) == (
        "The training process grew past the memory budget of a run (1.9 GiB, at about 3 GiB) and was stopped; "
        "finished epochs are kept.")


def test_settings_of_the_jobs():
    assert max_training({}, cores=2) == 1 and max_training({}, cores=8) == 4 and max_training({}, cores=1) == 1
    assert max_training({"GAPDEMO_MAX_TRAINING": "3"}) == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="GAPDEMO_MAX_TRAINING must be a whole number of at least 1"):
            max_training({"GAPDEMO_MAX_TRAINING": bad})
    assert warm_worker({}) and not warm_worker({"GAPDEMO_WARM_WORKER": "0"})
    assert memory_budget_bytes({"GAPDEMO_MAX_RUN_MEMORY": "8G"}) == 8 * 2**30
    assert memory_budget_bytes({"GAPDEMO_MAX_RUN_MEMORY": "512 MiB"}) == 512 * 2**20
    with pytest.raises(ValueError, match="GAPDEMO_MAX_RUN_MEMORY must be a size such as 20GB, 8G or 512M"):
        memory_budget_bytes({"GAPDEMO_MAX_RUN_MEMORY": "lots"})


def test_the_memory_estimate_grows_with_what_the_run_holds():
    base = tiny_config("runs")
    base.data.image_size, base.train.batch_size = 100, 64
    estimate = estimate_peak_bytes(base)

    def changed(**changes):
        config = tiny_config("runs")
        config.data.image_size, config.train.batch_size = 100, 64
        for section, name, value in changes.values():
            setattr(getattr(config, section), name, value)
        return estimate_peak_bytes(config)

    assert changed(size=("data", "image_size", 200)) > 2 * estimate - 2**30
    assert changed(batch=("train", "batch_size", 128)) > estimate
    assert changed(images=("data", "synthetic_size", 20_000)) > estimate
    assert changed(backends=("model", "backends", ("gap",))) < estimate


def test_a_served_page_refuses_a_run_over_the_memory_budget(page_runs, monkeypatch):
    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    monkeypatch.setenv("GAPDEMO_MAX_RUN_MEMORY", "1.2G")
    page = AppTest.from_file(APP, default_timeout=120)
    page.run()  # the defaults: 100 px, 2,000 images, three back-ends: about 1.7 GiB
    errors = [error.value for error in page.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith("This run would need about 1.7 GiB of memory, more than the 1.2 GiB")
    assert page.button(key="start").disabled
    page.slider(key="image_size").set_value(32)
    page.number_input(key="train_size").set_value(48)
    page.select_slider(key="batch_size").set_value(16)
    page.run()
    assert not page.sidebar.error and not page.button(key="start").disabled
