"""Shared fixtures. Tests are offline, seeded and tiny (32x32 images, a few steps)."""

import os
import shutil
import sys
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Decoded-image caches of the tests' folders go to a temporary folder, never the user's ~/.cache/gapdemo.
os.environ.setdefault("GAPDEMO_CACHE_DIR", tempfile.mkdtemp(prefix="gapdemo-test-cache-"))
# Ray's single-machine mode (loopback only) for every Ray this process starts, whichever test imports Ray
# first: gapdemo.cluster.connection sets it before its own first import, which a test module may have done already.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Pages under test start their training worker at the first Start, not as they load: dozens of AppTest pages
# would otherwise each import TensorFlow in a worker of their own. Tests of the warm start set it to 1.
os.environ.setdefault("GAPDEMO_WARM_WORKER", "0")
# AppTest sessions carry no request headers, which a page counts as served (it fails closed). Tests of served
# pages say GAPDEMO_SERVED=1 or bind beyond loopback; one test removes this word to see the page fail closed.
os.environ.setdefault("GAPDEMO_SERVED", "0")
# The operator links of the tests' pages go to a temporary folder, never the user's ~/.gapdemo.
os.environ.setdefault("GAPDEMO_OPERATOR_DIR", tempfile.mkdtemp(prefix="gapdemo-test-operator-"))
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def pytest_collection_modifyitems(config, items):
    """Browser tests skip without Chromium, but fail under GAPDEMO_REQUIRE_BROWSER=1 (CI); POSIX tests skip on Windows."""
    if os.name != "posix":
        skip_posix = pytest.mark.skip(reason="sends POSIX signals (SIGKILL, SIGTERM) or relies on zombie processes, "
                                             "which Windows does not have")
        for item in items:
            if "posix" in item.keywords:
                item.add_marker(skip_posix)
    if os.path.exists(CHROMIUM_PATH) or os.environ.get("GAPDEMO_REQUIRE_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM_PATH} (set GAPDEMO_REQUIRE_BROWSER=1 to fail instead)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def error_details_shown_again():
    """A served page turns tracebacks off for its whole server (client.showErrorDetails); in the tests'
    one process that would outlast the test, so each test starts with streamlit's default again."""
    yield
    streamlit_config = sys.modules.get("streamlit.config")
    if streamlit_config is not None:
        streamlit_config.set_option("client.showErrorDetails", "full")


@pytest.fixture(autouse=True)
def training_rate_of_this_machine_alone():
    """Each test's gate estimates training time from the matmul peak alone, not from the tiny runs earlier
    tests trained (their images/s feed the page's rate in this one process)."""
    yield
    duration = sys.modules.get("gapdemo.budget.duration")
    if duration is not None:
        duration.TRAINING_RATE.forget_runs()


@pytest.fixture
def runs_dir(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def artifacts_dir():
    """Where tests keep screenshots and exports for a person to look at."""
    path = os.path.join(os.path.dirname(__file__), "..", "test-artifacts")
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path)


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM_PATH) or shutil.which("chromium") is not None


def close_page_scheduler() -> None:
    """Stop every job of the page's scheduler, wait for them, end its workers, and forget it (st.cache_resource),
    so the next page of a test starts afresh and no worker outlives its test."""
    import streamlit as st

    from dashboard.common import job_manager

    scheduler = job_manager()
    for job in scheduler.jobs():
        job.stop()
    assert all(job.wait(120) for job in scheduler.jobs())
    scheduler.close()
    st.cache_resource.clear()
