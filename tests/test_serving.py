"""Serving safely: the shipped configuration listens on loopback only."""

import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from in_thread import use_in_thread_runs

from conftest import close_page_scheduler
from gapdemo.data.roots import FOLDER_OFF_SENTENCE

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(pid: int, port: int) -> set[str]:
    """Local IP addresses on which process pid (or a child of it) listens on port: psutil, on every platform."""
    import psutil

    addresses = set()
    for process in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
        connections = getattr(process, "net_connections", None) or process.connections  # psutil < 6: connections
        addresses |= {connection.laddr.ip for connection in connections(kind="tcp")
                      if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port}
    return addresses


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 address may carry %<interface>
    return (ip.ipv4_mapped or ip).is_loopback if ip.version == 6 else ip.is_loopback  # ::ffff:127.0.0.1 too


@pytest.fixture
def served_page(tmp_path):
    """`streamlit run app.py` from the project root with its own configuration; yields the port."""
    port = free_port()
    environment = {**os.environ, "GAPDEMO_RUNS_DIR": str(tmp_path / "runs")}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=PROJECT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("streamlit never answered on 127.0.0.1")
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_streamlit_run_listens_on_loopback_only(served_page):
    port, process = served_page
    addresses = listening_addresses(process.pid, port)
    assert addresses, "nothing listens on the port"
    assert all(is_loopback(address) for address in addresses), addresses
    process.terminate()
    output = process.communicate(timeout=20)[0]
    assert "Network URL" not in output and "External URL" not in output


def bind_page_to(address):
    """A fixture: the page as if started with --server.address address (AppTest runs in this process)."""

    @pytest.fixture
    def bound():
        from streamlit import config

        previous = config.get_option("server.address")
        config.set_option("server.address", address)
        yield
        config.set_option("server.address", previous)

    return bound


served = bind_page_to("0.0.0.0")
local = bind_page_to("127.0.0.1")


def queue_page():
    from types import SimpleNamespace

    from dashboard.training_panel import status_panel
    from dashboard.visitor import visitor_id

    status_panel(SimpleNamespace(run_id="r1", state="queued", elapsed_seconds=0.0, progress={}, message="",
                                 owner="someone else"),
                 [SimpleNamespace(kind="run", run_id="r2", owner=visitor_id()), SimpleNamespace(kind="claims", owner="x"),
                  SimpleNamespace(kind="sweep", sweep_id="s1", owner=visitor_id()), SimpleNamespace(kind="pool", owner=None)])


def test_served_queue_says_whose_run_is_whose(served):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(queue_page)
    app.run()
    assert not app.exception, app.exception
    assert app.markdown[0].value.startswith("**Run `r1`** (another visitor's) — ")
    assert [caption.value for caption in app.caption] == [  # every kind, with its place in line
        "Waiting in the queue: run `r2` (yours), 1st in line; another visitor's claims job, 2nd in line; "
        "sweep `s1` (yours), 3rd in line; measuring of pooled runs, 4th in line"]  # the page's own: nobody's


def test_local_queue_lists_run_ids(local):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(queue_page)
    app.run()
    assert not app.exception, app.exception
    assert app.markdown[0].value.startswith("**Run `r1`** — ")
    assert [caption.value for caption in app.caption] == [
        "Waiting in the queue: run `r2`, 1st in line; claims job, 2nd in line; sweep `s1`, 3rd in line; "
        "measuring of pooled runs, 4th in line"]


@pytest.fixture
def held_training(monkeypatch, tmp_path):
    """Every run the page starts waits in 'loading data' until the test releases it; a fresh job manager."""
    import threading

    import streamlit as st

    import gapdemo.data.sources

    gate = threading.Event()

    def held_load_data(config, batch_size, progress=None):
        gate.wait(120)
        raise ValueError("released by the test")

    monkeypatch.setattr(gapdemo.data.sources, "load_data", held_load_data)
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    use_in_thread_runs(monkeypatch)  # a worker process cannot be held by a patched loader
    st.cache_resource.clear()
    yield gate
    gate.set()
    close_page_scheduler()


def open_page():
    """A new browser session on the page (AppTest), with small settings."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file("../app.py", default_timeout=120)
    app.run()
    app.slider(key="image_size").set_value(32)
    app.number_input(key="train_size").set_value(48)
    app.select_slider(key="batch_size").set_value(16)
    app.run()
    assert not app.exception and not app.sidebar.error
    return app


def press(app, key):
    app.button(key=key).click().run()
    assert not app.exception, app.exception
    return [error.value for error in app.sidebar.error]


def test_queue_limit_holds_across_two_sessions(served, held_training):
    from dashboard.common import job_manager
    from gapdemo.jobs.scheduler import QUEUE_LIMIT_MESSAGE

    alice, bob = open_page(), open_page()
    assert press(alice, "start") == []  # runs (held in loading data)
    assert press(alice, "start") == []  # waits
    assert press(alice, "start") == [QUEUE_LIMIT_MESSAGE]
    assert press(bob, "start") == []  # another visitor still gets a place
    assert press(bob, "start") == [QUEUE_LIMIT_MESSAGE]
    manager = job_manager()
    running, alice_waiting, bob_waiting = manager.latest(), *manager.queued()  # latest: the run training
    assert running.owner == alice_waiting.owner != bob_waiting.owner
    alice.run()
    assert [c.value for c in alice.caption if c.value.startswith("Waiting")] == [
        f"Waiting in the queue: run `{alice_waiting.run_id}` (yours), 1st in line; another visitor's run, 2nd in line"]
    bob.run()
    assert any(m.value.startswith(f"**Run `{running.run_id}`** (another visitor's)") for m in bob.markdown)
    press(bob, "stop")  # acts on bob's own waiting run, not on alice's running one
    assert bob_waiting.state == "stopped" and running.state == "running" and alice_waiting.state == "queued"
    carol = open_page()
    assert carol.button(key="stop").disabled  # nothing of carol's to stop
    assert not alice.button(key="stop").disabled


def test_served_sidebar_refuses_folders_outside_the_roots(served, held_training, tmp_path, monkeypatch):
    outside = tmp_path / "photos"
    outside.mkdir()
    monkeypatch.setenv("GAPDEMO_DATA_ROOTS", str(tmp_path / "data"))
    app = open_page()
    app.selectbox(key="dataset").set_value("folder").run()
    app.text_input(key="folder_dir").set_value(str(outside)).run()
    assert [e.value for e in app.sidebar.error] == [f"The folder {outside} does not exist."]
    assert app.button(key="start").disabled
    app.text_input(key="folder_dir").set_value(str(tmp_path / "data" / ".." / "photos")).run()
    assert [e.value for e in app.sidebar.error] == [f"The folder {tmp_path / 'data' / '..' / 'photos'} does not exist."]
    monkeypatch.setenv("GAPDEMO_DATA_ROOTS", str(tmp_path))
    app.run()
    assert not [e.value for e in app.sidebar.error]
    monkeypatch.delenv("GAPDEMO_DATA_ROOTS")  # no roots: a served page reads no folder, not even under HOME
    monkeypatch.setenv("HOME", str(tmp_path))
    app.text_input(key="folder_dir").set_value("~/photos").run()
    assert [e.value for e in app.sidebar.error] == [FOLDER_OFF_SENTENCE]
    assert app.button(key="start").disabled
