"""The real dashboard in Debian's Chromium: start a tiny run from the page and read its curves."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import CHROMIUM_ARGS, CHROMIUM_PATH

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def streamlit_server(tmp_path):
    port = free_port()
    env = {**os.environ, "GAPDEMO_RUNS_DIR": str(tmp_path / "runs")}
    log = open(tmp_path / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=os.path.join(os.path.dirname(__file__), ".."), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        yield page
        browser.close()


def set_slider_to_minimum(page, label: str, steps_right: int = 0) -> None:
    thumb = page.get_by_role("slider", name=label)
    thumb.focus()
    thumb.press("Home")
    for _ in range(steps_right):
        thumb.press("ArrowRight")


VALIDATION_POINTS_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const counts = {};
  for (const plot of plots.slice(0, 1)) {
    for (const trace of plot._fullData || []) {
      if (trace.meta && trace.meta.split === 'validation') counts[trace.meta.backend] = trace.y.length;
    }
  }
  return counts;
}"""


RAW_TRACES_JS = """() => {
  const plot = document.querySelectorAll('.js-plotly-plot')[0];
  const faint = {};
  for (const trace of plot._fullData || []) {
    if (trace.meta && trace.meta.split === 'train_raw') faint[trace.meta.backend] = trace.opacity;
  }
  return faint;
}"""


def test_tiny_run_from_the_page(streamlit_server, page, artifacts_dir):
    page.goto(streamlit_server)
    page.get_by_text("Run settings").wait_for(timeout=60_000)
    train_size = page.get_by_role("spinbutton", name="Training images (0 = all)")
    train_size.fill("64")
    train_size.press("Enter")
    set_slider_to_minimum(page, "Image size (pixels)")
    set_slider_to_minimum(page, "Epochs", steps_right=1)
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Start").click()
    stop = page.get_by_role("button", name="■ Stop")
    deadline = time.time() + 30
    while not stop.is_enabled() and time.time() < deadline:  # a run is active: Stop must be usable
        page.wait_for_timeout(200)
    assert stop.is_enabled() or page.get_by_text("finished").count() > 0
    page.get_by_text("finished").first.wait_for(timeout=240_000)
    page.wait_for_timeout(2000)
    counts = page.evaluate(VALIDATION_POINTS_JS)
    assert counts == {"fc": 2, "fc_dropout": 2, "gap": 2}
    # per-batch values smoothed (TensorBoard's slider above the curves), the raw ones faint behind
    assert page.get_by_role("slider", name="Smoothing").first.is_visible()
    faint = page.evaluate(RAW_TRACES_JS)
    assert sorted(faint) == ["fc", "fc_dropout", "gap"] and all(opacity < 0.5 for opacity in faint.values())
    assert page.get_by_text("Results").count() >= 1
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=os.path.join(artifacts_dir, "dashboard_after_run.png"), full_page=True)


def test_bad_folder_shows_a_message_not_a_traceback(streamlit_server, page):
    page.goto(streamlit_server)
    page.get_by_text("Run settings").wait_for(timeout=60_000)
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="Image folder (PATH/<class>/*)").click()
    page.get_by_text("The folder data set needs a folder path.").wait_for(timeout=20_000)
    assert page.get_by_role("button", name="Start").is_disabled()
    folder = page.get_by_label("Image folder", exact=True)
    folder.fill("/no/such/folder")
    folder.press("Enter")
    page.get_by_text("does not exist").first.wait_for(timeout=20_000)
    assert page.get_by_text("Traceback").count() == 0


def test_the_toolbar_offers_no_deploy_button(streamlit_server, page):
    """.streamlit/config.toml's client.toolbarMode = "viewer": the page is not deployed from its own toolbar."""
    page.goto(streamlit_server)
    page.get_by_text("Run settings").wait_for(timeout=60_000)
    page.locator('[data-testid="stMainMenu"]').wait_for(timeout=20_000)  # the toolbar is drawn
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
    assert page.get_by_role("button", name="Deploy").count() == 0
