"""Watching must not slow training: a run watched by browser tabs against the same run from the CLI.

Used by app_latency.py (section 5); not a benchmark of its own. Each watched run starts from one tab
and the other tabs open the page while it trains, as people watching a shared server would; Chromium
renders every tab on the same two cores as the training. A run's time is its own elapsed_seconds
(status.json), from the job's start to its end, in the app and in the CLI alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from benchmarks import common

# the CLI's flags for the page's tiny settings (app_latency.choose_tiny_settings): 64 images, 32 px, 1 epoch
TINY_CLI_ARGUMENTS = ["--image-size", "32", "--train-size", "64", "--epochs", "1"]
RUN_ID_JS = r"() => (document.body.innerText.match(/Run (\d{8}-\d{6}-[0-9a-f]{4})/) || [null, null])[1]"
# a new run (its id differs from the one before) whose live chart holds a point; a chart left from
# the run before stays on the page, marked stale, until the script run that replaces it ends
NEW_RUN_POINT_JS = r"""(before) => {
  const match = document.body.innerText.match(/Run (\d{8}-\d{6}-[0-9a-f]{4})/);
  return match !== null && match[1] !== before && Array.from(document.querySelectorAll('.js-plotly-plot')).some(
    plot => plot.offsetParent !== null && plot.closest('[data-stale="true"]') === null
      && (plot._fullData || []).some(trace => trace.y && trace.y.length > 0));
}"""
STATE_JS = r"""(states) => states.some(state => document.body.innerText.includes('— ' + state))"""
ENDED_STATES = ("finished", "failed", "stopped", "interrupted")


def newest_status(runs_dir: str) -> dict:
    """status.json of the newest run under runs_dir ({} while it has none: the page's worker makes the
    folder a moment after Start)."""
    folders = [path for path in Path(runs_dir).iterdir() if path.is_dir()] if Path(runs_dir).is_dir() else []
    if not folders:
        return {}
    newest = max(folders, key=lambda path: path.name)
    try:
        return json.loads((newest / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def newest_run_seconds(runs_dir: str) -> float:
    """elapsed_seconds of the newest run under runs_dir."""
    return float(newest_status(runs_dir)["elapsed_seconds"])


def wait_for_run_end(runs_dir: str, timeout_s: float) -> None:
    """Wait for the newest run's status.json to say it ended: read on disk, so the waiting costs the
    watching tabs nothing (querying the page's text every 250 ms made Chromium lay it out each time)."""
    deadline = time.perf_counter() + timeout_s
    while newest_status(runs_dir).get("state") not in ENDED_STATES:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the run in {runs_dir} did not end within {timeout_s:.0f} s")
        time.sleep(1.0)


def cli_run(runs_dir: str, quick: bool) -> dict:
    """The same run from the CLI: the job's seconds and the process's wall seconds."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "gapdemo", "train", *(TINY_CLI_ARGUMENTS if quick else []),
                                "--runs-dir", runs_dir, "--json"], cwd=common.REPO_ROOT, capture_output=True, text=True)
    if completed.returncode:
        raise RuntimeError("gapdemo train failed: " + completed.stderr[-2000:])
    return {"job": newest_run_seconds(runs_dir), "wall": time.perf_counter() - started}


def open_tab(browser, url: str, wait_script_idle):
    """A fresh browser context (its own Streamlit session) on the page, its first script run done."""
    page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    page.goto(url)
    page.get_by_text("Run settings").wait_for(timeout=120_000)
    wait_script_idle(page)
    return page


def wait_for_state(page, states, timeout_s: float) -> None:
    page.wait_for_function(STATE_JS, arg=list(states), timeout=timeout_s * 1000, polling=250)


def watched_run(browser, url: str, runs_dir: str, tabs: int, quick: bool, helpers) -> dict:
    """Start a run from one tab, open tabs - 1 more while it trains, wait until it finishes."""
    wait_script_idle, choose_tiny_settings = helpers
    first = open_tab(browser, url, wait_script_idle)
    if quick:
        choose_tiny_settings(first)
    before = first.evaluate(RUN_ID_JS)
    first.get_by_role("button", name="Start").click()
    clicked = time.perf_counter()
    first.wait_for_function(f"(before) => ({RUN_ID_JS})() !== before", arg=before, timeout=120_000, polling=100)
    others = [open_tab(browser, url, wait_script_idle) for _ in range(tabs - 1)]  # they join the running job
    wait_for_run_end(runs_dir, 3600)
    wall = time.perf_counter() - clicked
    for page in [first, *others]:
        page.context.close()
    return {"job": newest_run_seconds(runs_dir), "wall": wall}


def warm_first_point(browser, url: str, quick: bool, helpers) -> float:
    """Seconds from Start to the new run's first curve point on a server that has TensorFlow loaded.

    The server has trained before (a watched run), so TensorFlow is imported; the run is stopped after
    its first point.
    """
    wait_script_idle, choose_tiny_settings = helpers
    page = open_tab(browser, url, wait_script_idle)
    if quick:
        choose_tiny_settings(page)
    before = page.evaluate(RUN_ID_JS)
    page.get_by_role("button", name="Start").click()
    clicked = time.perf_counter()
    page.wait_for_function(NEW_RUN_POINT_JS, arg=before, timeout=300_000, polling=50)
    seconds = time.perf_counter() - clicked
    stop = page.get_by_role("button", name="Stop")
    if stop.is_enabled():  # a tiny (quick) run may have finished already: then Stop is disabled
        try:
            stop.click(timeout=5_000)
        except PlaywrightTimeoutError:
            pass  # it finished between the check and the click
    wait_for_state(page, ["stopped", "finished", "failed"], 600)
    page.context.close()
    return seconds


def watching_measurements(browser, folder: str, quick: bool, repeats: int, server, helpers) -> dict:
    """CLI, 1 tab and 3 tabs in rotating order (full: a fresh server per app run, as a fresh CLI
    process; quick: one server for everything), then Start -> first point on a server with TF loaded."""
    start_server, wait_healthy, stop_server = server
    runs = {"cli": [], "tabs_1": [], "tabs_3": []}
    warm = []
    shared = None
    if quick:
        shared = start_server(f"{folder}/runs_watch", Path(folder) / "watch.log")
        wait_healthy(shared[1], shared[0], Path(folder) / "watch.log")
    try:
        for repeat in range(repeats):
            names = list(runs)[repeat % 3:] + list(runs)[:repeat % 3]
            for name in names:
                runs_dir = f"{folder}/runs_{name}_{repeat}" if not quick else f"{folder}/runs_watch"
                if name == "cli":
                    runs[name].append(cli_run(f"{folder}/runs_cli_{repeat}", quick))
                else:
                    process, url = _server(shared, start_server, wait_healthy, runs_dir, folder, name, repeat)
                    try:
                        runs[name].append(watched_run(browser, url, runs_dir, int(name[-1]), quick, helpers))
                        if name == "tabs_1" and not warm:  # this server has TensorFlow loaded now
                            warm.append(warm_first_point(browser, url, quick, helpers))
                            print(f"  first curve point, TensorFlow loaded: {warm[-1]:.2f} s", flush=True)
                    finally:
                        if shared is None:
                            stop_server(process)
                print(f"  {name}: run {runs[name][-1]['job']:.1f} s (wall {runs[name][-1]['wall']:.1f} s, "
                      f"load {common.load_average()})", flush=True)
    finally:
        if shared is not None:
            stop_server(shared[0])
    return {"runs": runs, "warm_first_point": warm}


def _server(shared, start_server, wait_healthy, runs_dir, folder, name, repeat):
    if shared is not None:
        return shared[0], shared[1]
    log_path = Path(folder) / f"{name}_{repeat}.log"
    process, url, _ = start_server(runs_dir, log_path)
    wait_healthy(url, process, log_path)
    return process, url


def watching_rows(watching: dict, targets: dict) -> list[list[str]]:
    """Table rows: each watched variant's run time against the CLI's, with targets and verdicts."""
    runs = watching["runs"]
    cli = common.median([run["job"] for run in runs["cli"]])
    rows = [["the same run from the CLI (job seconds)", f"{cli:.1f} s", "", ""]]
    for name, label in (("tabs_1", "watched by 1 browser tab"), ("tabs_3", "watched by 3 browser tabs")):
        ratio = common.median([run["job"] for run in runs[name]]) / cli
        rows.append([f"run time {label} / from the CLI", f"{ratio:.2f}", f"<= {targets[name]:.2f}",
                     common.verdict(ratio, targets[name])])
    return rows
