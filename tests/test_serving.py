"""Serving safely: the shipped configuration listens on loopback only."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of every socket listening on port."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.split(":")
                if state == TCP_LISTEN and int(port_hex, 16) == port:
                    addresses.add(address)
    return addresses


def is_loopback_hex(address: str) -> bool:
    if len(address) == 8:  # IPv4, little-endian: 0100007F is 127.0.0.1
        return bytes.fromhex(address)[::-1][0] == 127
    ipv6 = bytes.fromhex(address)
    words = b"".join(ipv6[i:i + 4][::-1] for i in range(0, 16, 4))  # the kernel prints 32-bit words in host order
    return words == bytes(15) + b"\x01" or (words[:12] == bytes(10) + b"\xff\xff" and words[12] == 127)


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
    addresses = listening_addresses(port)
    assert addresses, "nothing listens on the port"
    assert all(is_loopback_hex(address) for address in addresses), addresses
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
                 [SimpleNamespace(run_id="r2", owner=visitor_id()), SimpleNamespace(run_id="r3", owner="x")])


def test_served_queue_says_whose_run_is_whose(served):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(queue_page)
    app.run()
    assert not app.exception, app.exception
    assert app.markdown[0].value.startswith("**Run `r1`** (another visitor's) — ")
    assert [caption.value for caption in app.caption] == [
        "Waiting in the queue: `r2` (yours), another visitor's run"]


def test_local_queue_lists_run_ids(local):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(queue_page)
    app.run()
    assert not app.exception, app.exception
    assert app.markdown[0].value.startswith("**Run `r1`** — ")
    assert [caption.value for caption in app.caption] == ["Waiting in the queue: `r2`, `r3`"]
