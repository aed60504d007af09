"""A page served to a class: one gate for every tab and job, a bounded queue, owners of sweeps and claims,
served behind a proxy, run folders never shared, code-carrying model files refused."""

import os
import threading
import time
from pathlib import Path

import pytest
from in_thread import InThreadScheduler, use_in_thread_runs
from test_serving import bind_page_to, open_page

from conftest import close_page_scheduler
from gapdemo.config import tiny_config
from gapdemo.jobs.scheduler import QUEUE_FULL_MESSAGE
from gapdemo.serving import (
    host_name,
    max_queued_runs,
    may_stop,
    page_counts_as_served,
    request_came_from_afar,
)

listening_everywhere = bind_page_to("0.0.0.0")  # a fixture: the page as if served with --server.address 0.0.0.0


# ----- what counts as served -----
LOCAL_BROWSER = {"Host": "localhost:8501", "Origin": "http://localhost:8501"}


@pytest.mark.parametrize("bind, headers, environ, expected", [
    ("127.0.0.1", LOCAL_BROWSER, {}, False),
    ("127.0.0.1", {"Host": "127.0.0.1:8501", "Origin": "http://127.0.0.1:8501"}, {}, False),
    ("127.0.0.1", {"Host": "127.0.0.1:8501"}, {}, True),  # no Origin: no browser (a script through a proxy)
    ("127.0.0.1", {**LOCAL_BROWSER, "X-Forwarded-For": ""}, {}, True),  # a proxy's header, even empty
    ("127.0.0.1", {"Host": "[::1]:8501", "Origin": "http://[::1]:8501"}, {}, False),
    ("127.0.0.1", {}, {}, True),  # no headers at all: fail closed
    ("127.0.0.1", {"Origin": "http://localhost:8501"}, {}, True),  # no Host
    ("0.0.0.0", LOCAL_BROWSER, {}, True),  # listens on every interface
    ("", LOCAL_BROWSER, {}, True),  # streamlit's "every interface"
    ("127.0.0.1", {**LOCAL_BROWSER, "X-Forwarded-For": "203.0.113.9"}, {}, True),  # nginx in front
    ("127.0.0.1", {"host": "pets.school.example", "x-forwarded-proto": "https"}, {}, True),  # Caddy in front
    ("127.0.0.1", {"Host": "pets.school.example"}, {}, True),  # a proxy that adds no header still names the host
    ("127.0.0.1", {**LOCAL_BROWSER, "Forwarded": "for=198.51.100.7"}, {}, True),
    # A bare nginx proxy_pass: Host names loopback, no forwarding header, but the browser's Origin is public.
    ("127.0.0.1", {"Host": "127.0.0.1:8501", "Origin": "https://pets.school.example"}, {}, True),
    ("127.0.0.1", {"Host": "127.0.0.1:8501", "Origin": "null"}, {}, True),  # a sandboxed frame names nothing
    ("127.0.0.1", LOCAL_BROWSER, {"GAPDEMO_SERVED": "1"}, True),  # the operator says so
    ("127.0.0.1", {}, {"GAPDEMO_SERVED": "0"}, False),  # alone behind a proxy, by the operator's word
    ("127.0.0.1", {"Host": "127.0.0.1:8501", "Origin": "https://pets.school.example"}, {"GAPDEMO_SERVED": "0"},
     False),
    ("0.0.0.0", LOCAL_BROWSER, {"GAPDEMO_SERVED": "0"}, True),  # listening beyond loopback stays served
])
def test_what_counts_as_served(bind, headers, environ, expected):
    assert page_counts_as_served(bind, headers, environ) is expected


def test_host_names_and_empty_headers():
    assert [host_name(h) for h in ("localhost:8501", "[::1]:8501", "10.0.0.5", "::1")] == [
        "localhost", "::1", "10.0.0.5", "::1"]
    assert request_came_from_afar(None) is True  # nothing names this machine
    assert request_came_from_afar({"Host": "localhost", "Origin": "http://localhost"}) is False
    assert request_came_from_afar({"Host": "localhost", "Origin": "http://localhost", "Via": ""}) is True


def test_queue_cap_setting():
    assert max_queued_runs({}) == 4 and max_queued_runs({"GAPDEMO_MAX_QUEUED": "2"}) == 2
    for bad in ("many", "0", "-1"):  # one rule for every count: a whole number of at least 1
        with pytest.raises(ValueError, match="GAPDEMO_MAX_QUEUED must be a whole number of at least 1"):
            max_queued_runs({"GAPDEMO_MAX_QUEUED": bad})


def test_who_may_stop():
    assert may_stop("a", "a", any_owner=False) and not may_stop("a", "b", any_owner=False)
    assert not may_stop(None, None, any_owner=False) and may_stop("a", "b", any_owner=True)


# ----- the queue -----
def held_loader(gate: threading.Event):
    def load(data_config, batch_size, progress=None):
        gate.wait(120)
        raise ValueError("released by the test")

    return load


def test_served_queue_holds_at_most_the_cap_of_waiting_runs(runs_dir, monkeypatch):
    monkeypatch.setenv("GAPDEMO_MAX_QUEUED", "2")
    gate, manager = threading.Event(), InThreadScheduler()

    def submit(owner, served=True):
        return manager.submit(tiny_config(str(runs_dir)), data_loader=held_loader(gate), owner=owner, served=served)

    try:
        submit("a")
        deadline = time.monotonic() + 60
        while not manager.running("run") and time.monotonic() < deadline:  # the worker takes the first run
            time.sleep(0.01)
        assert manager.running("run")
        submit("b"), submit("c")
        with pytest.raises(ValueError) as refused:
            submit("d")
        assert str(refused.value) == QUEUE_FULL_MESSAGE.format(waiting=2)
        assert len(manager.queued()) == 2
        submit("e", served=False)  # a local page (one user) has no global cap
        assert len(manager.queued()) == 3
    finally:
        gate.set()
        for job in manager.jobs():
            job.stop()
        assert all(job.wait(60) for job in manager.jobs())


def test_reloads_cannot_grow_the_queue_past_the_cap(listening_everywhere, monkeypatch, tmp_path):
    import streamlit as st

    import gapdemo.data.sources
    from dashboard.common import job_manager

    gate = threading.Event()
    monkeypatch.setattr(gapdemo.data.sources, "load_data", held_loader(gate))
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GAPDEMO_MAX_QUEUED", "2")
    use_in_thread_runs(monkeypatch)  # a worker process cannot be held by a patched loader
    st.cache_resource.clear()
    try:
        answers = []
        for _ in range(5):  # a reload is a new session: a new visitor id each time
            page = open_page()
            page.button(key="start").click().run()
            answers.append([error.value for error in page.sidebar.error])
        manager = job_manager()
        assert len(manager.queued()) == 2 and manager.running("run")
        assert answers[:3] == [[], [], []]
        assert answers[3] == answers[4] == [QUEUE_FULL_MESSAGE.format(waiting=2)]
    finally:
        gate.set()
        close_page_scheduler()


def failing_loader(data_config, batch_size, progress=None):
    raise ValueError("no data in this test")


def test_finished_jobs_leave_memory_and_their_folders_stay(runs_dir):
    manager = InThreadScheduler()
    jobs = []
    for _ in range(3):
        jobs.append(manager.submit(tiny_config(str(runs_dir)), data_loader=failing_loader, served=False))
        assert all(job.wait(60) for job in manager.jobs())
    assert manager.jobs() == [jobs[-1]] and manager.latest() is jobs[-1]
    assert all(job.state == "failed" and (job.run_dir / "status.json").is_file() for job in jobs)
    assert len({job.run_dir for job in jobs}) == 3


def test_a_run_never_takes_an_existing_folder(runs_dir):
    from gapdemo.training.job import TrainingJob

    job = TrainingJob(tiny_config(str(runs_dir)), data_loader=failing_loader)
    taken = runs_dir / job.run_id
    taken.mkdir()
    (taken / "config.json").write_text('{"someone": "else"}')
    job.run()
    assert job.run_id != taken.name and job.run_dir.parent == runs_dir and (job.run_dir / "config.json").is_file()
    assert (taken / "config.json").read_text() == '{"someone": "else"}'
    assert job.snapshot().run_id == job.run_id


# ----- the gate on every tab, and in the jobs behind them -----
@pytest.fixture
def outside_folder(tmp_path, monkeypatch):
    """A readable two-class folder outside GAPDEMO_DATA_ROOTS; fresh runners for the page."""
    import streamlit as st

    outside = tmp_path / "outside"
    for name in ("cat", "dog"):
        (outside / name).mkdir(parents=True)
    monkeypatch.setenv("GAPDEMO_DATA_ROOTS", str(tmp_path / "roots"))
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    return outside


def config_on(folder, runs_dir):
    config = tiny_config(str(runs_dir))
    config.data.dataset, config.data.data_dir = "folder", str(folder)
    return config


def test_every_start_button_is_disabled_for_an_outside_folder(listening_everywhere, outside_folder):
    page = open_page()
    page.selectbox(key="dataset").set_value("folder").run()
    page.text_input(key="folder_dir").set_value(str(outside_folder)).run()
    assert not page.exception, page.exception
    sentence = f"The folder {outside_folder} does not exist."
    assert [e.value for e in page.sidebar.error] == [sentence]
    for key in ("start", "claims_start", "sweep_start"):
        assert page.button(key=key).disabled, key
    assert sentence in [e.value for e in page.main.error]  # the Claims and Sweeps tabs say why too


def test_the_jobs_refuse_an_outside_folder_when_called_directly(outside_folder, tmp_path, monkeypatch):
    from gapdemo.claims import run_claims
    from gapdemo.jobs.page import PageScheduler
    from gapdemo.sweep.execution import plan_sweep

    config = config_on(outside_folder, tmp_path / "runs")
    sentence = f"The folder {outside_folder} does not exist."
    scheduler = PageScheduler(budget_bytes=2**34)
    with pytest.raises(ValueError, match=sentence):
        scheduler.submit_claims(config, 1, owner="a", served=True)
    with pytest.raises(ValueError, match=sentence):
        run_claims(config, 1, served=True)
    with pytest.raises(ValueError, match=sentence):
        plan_sweep(config, {"dropout_rate": [0.3, 0.6]}, 1, served=True)
    with pytest.raises(ValueError, match=sentence):
        scheduler.submit_sweep(config, {"dropout_rate": [0.3, 0.6]}, 1, owner="a", served=True)
    assert scheduler.jobs() == [] and not (tmp_path / "runs").exists()
    monkeypatch.delenv("GAPDEMO_DATA_ROOTS")  # without roots a local page reads any folder, a served one none
    assert plan_sweep(config, {"dropout_rate": [0.3]}, 1, served=False)
    with pytest.raises(ValueError, match="On a served page the folder data set is off until the operator lists "
                                         "data folders in GAPDEMO_DATA_ROOTS.$"):  # after the trial's name
        plan_sweep(config, {"dropout_rate": [0.3]}, 1, served=True)


def test_a_served_sweep_has_a_trial_cap(listening_everywhere, monkeypatch, tmp_path):
    import streamlit as st

    from gapdemo.sweep.execution import plan_sweep

    monkeypatch.setenv("GAPDEMO_MAX_TRIALS", "3")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    config = tiny_config(str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="at most 3 runs; this one asks for 4"):
        plan_sweep(config, {"dropout_rate": [0.3, 0.6]}, 2, served=True)
    assert len(plan_sweep(config, {"dropout_rate": [0.3, 0.6]}, 2, served=False).trials) == 4
    st.cache_resource.clear()
    page = open_page()
    page.number_input(key="sweep_seeds").set_value(2).run()
    assert any("at most 3 runs; this one asks for 4" in e.value for e in page.main.error)
    assert page.button(key="sweep_start").disabled


def child_processes_running(word: str) -> list:
    """This process's children whose command line holds word (a `gapdemo claims` or `gapdemo sweep`)."""
    import psutil

    return [child for child in psutil.Process().children() if word in child.cmdline()]


@pytest.mark.parametrize("kind", ["claims", "sweep"])
def test_only_the_owner_stops_a_served_claims_job_or_sweep_and_its_process_knows_it_is_served(kind, tmp_path):
    from gapdemo.jobs.page import PageScheduler

    scheduler = PageScheduler(budget_bytes=2**34)
    config = tiny_config(str(tmp_path / "runs"), ("gap",))
    config.train.epochs = 30  # trains until stopped
    if kind == "claims":
        job = scheduler.submit_claims(config, 1, owner="visitor-a", served=True)
    else:
        job = scheduler.submit_sweep(config, {"dropout_rate": [0.3]}, 1, owner="visitor-a", served=True)
    try:
        deadline = time.monotonic() + 60  # the scheduler's thread starts the child
        while not (children := child_processes_running(kind)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children) == 1 and children[0].environ().get("GAPDEMO_SERVED") == "1"
        assert scheduler.job_to_stop("visitor-b", any_owner=False, kind=kind) is None
        assert scheduler.job_to_stop("visitor-a", any_owner=False, kind=kind) is job
        job.stop()
        assert job.wait(180), "never stopped"
        assert job.state == "stopped" and not children[0].is_running()
    finally:
        scheduler.close()


# ----- code-carrying model files -----
def test_a_model_file_with_code_is_refused_and_runs_nothing(tmp_path):
    import keras

    from gapdemo.runs import UnsafeModelError, load_models, write_config

    marker = tmp_path / "code_ran.txt"
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x, path: (open(path, "w").write("ran"), x)[1],
                                  arguments={"path": str(marker)})(inputs)
    run_dir = tmp_path / "runs" / "planted"
    (run_dir / "models").mkdir(parents=True)
    write_config(run_dir, {"model": {"backends": ["gap"]}})
    keras.Model(inputs, outputs).save(run_dir / "models" / "gap.keras")
    marker.unlink()  # building the model above ran the lambda once
    with pytest.raises(UnsafeModelError) as refused:
        load_models(run_dir)
    assert str(refused.value) == ("The model file gap.keras of run planted carries code (a Lambda layer or similar) "
                                  "and was refused: gapdemo loads only plain layers, so nothing in the runs folder "
                                  "runs code here.")
    assert not marker.exists()
    keras.models.load_model(run_dir / "models" / "gap.keras", safe_mode=False)  # the file really carries code
    assert marker.read_text() == "ran"


def test_the_mistakes_tab_reads_no_run_data_outside_the_roots(outside_folder, tmp_path):
    """A run folder in the shared runs folder may name any data folder: evaluating it on a served page
    is held to the data roots like Start (evaluate_run calls load_test_split, which asks the gate)."""
    from gapdemo.insight.evaluation import load_test_split
    from gapdemo.runs import write_config

    run_dir = tmp_path / "runs" / "planted"
    run_dir.mkdir(parents=True)
    write_config(run_dir, config_on(outside_folder, tmp_path / "runs").to_dict())
    with pytest.raises(ValueError, match=f"^The folder {outside_folder} does not exist.$"):
        load_test_split(run_dir, served=True)
    with pytest.raises(ValueError, match=f"^The folder {outside_folder} does not exist.$"):
        load_test_split(run_dir, served=False)  # GAPDEMO_DATA_ROOTS is set: the command line is held too


# ----- the sidebar's limits, held on the server -----

@pytest.mark.parametrize("section, name, value, sentence", [
    ("train", "epochs", 1_000_000, "Epochs must be from 1 to 50 on a served page, got 1,000,000."),
    ("train", "batch_size", 257, "Batch size must be from 1 to 256 on a served page, got 257."),
    ("train", "learning_rate", 0.5, "Learning rate must be from 0.0001 to 0.01 on a served page, got 0.5."),
    ("model", "dropout_rate", 0.95, "Dropout rate must be from 0 to 0.9 on a served page, got 0.95."),
    ("data", "train_size", 100_001, "Training images must be from 0 to 100,000 on a served page, got 100,001."),
    ("data", "synthetic_size", 25_001,
     "The synthetic set's size must be from 10 to 25,000 on a served page, got 25,001."),
    ("data", "cache_dir", "/home/teacher/.ssh",
     "A served page keeps decoded images in its own cache folder; leave the cache folder unset."),
])
def test_a_served_gate_holds_the_sidebars_limits_whatever_is_sent(section, name, value, sentence, tmp_path):
    from gapdemo.validation import validate_run_config

    config = tiny_config(str(tmp_path))
    config.data.train_size = None if name == "synthetic_size" else config.data.train_size
    setattr(getattr(config, section), name, value)
    assert sentence in validate_run_config(config, served=True)
    assert not any("served page" in problem for problem in validate_run_config(config, served=False))


@pytest.mark.parametrize("command", [
    ["train", "--epochs", "100000"],
    ["sweep", "--set", "epochs=1000000", "--image-size", "32", "--train-size", "48", "--batch-size", "16"],
])
def test_served_commands_refuse_work_past_the_sidebars_limits_with_one_sentence(command, tmp_path):
    import subprocess
    import sys

    answer = subprocess.run([sys.executable, "-m", "gapdemo", *command, "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "GAPDEMO_SERVED": "1"},
                            cwd=Path(__file__).resolve().parents[1])
    assert answer.returncode == 2, answer.stderr[-2000:]
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and "Epochs must be from 1 to 50 on a served page, got 1" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_a_served_sweeps_tab_refuses_typed_values_past_the_limits(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    page = open_page()
    page.multiselect(key="sweep_settings").set_value(["epochs"]).run()
    page.text_input(key="sweep_values_epochs").set_value("2,1000000").run()
    assert any("Epochs must be from 1 to 50 on a served page, got 1,000,000." in error.value for error in page.main.error)
    assert page.button(key="sweep_start").disabled
