"""The page's training worker against training in the server's own process (the page before the worker).

  before   the app of a git revision before gapdemo/jobs (default ddf9615: a run trains in a thread of
           the Streamlit server), checked out in a temporary git worktree and served the same way
  worker   the app as it is: the run trains in `python -m gapdemo worker`, the page follows its folder

Per variant, on fresh servers, in alternating order:
  first point   the page painted and its script idle -> Start clicked at the defaults -> the live chart
                holds a point (Playwright, as app_latency.py), the run then ends with its server
  watched       a default run started from one tab and watched by 3 (app_watching.watched_run): the run's
                own seconds against the same run from the CLI, and the server process's own CPU seconds
                (psutil, its threads only, not its children) over the run, with its resident memory at the end
Targets: first point <= 10 s; a run watched by 3 tabs <= 1.10 x the CLI.
Usage: python -m benchmarks.worker [--quick] [--baseline REV] [--repeats N] [--results PATH]
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks import app_latency, app_watching, common

KEY, TITLE = "worker", "5b. The training worker against training in the server"
BASELINE_REVISION = "ddf9615"  # the last commit whose page trained in the server's own process
FIRST_POINT_TARGET_S, WATCHED_TARGET = 10.0, 1.10


def add_arguments(parser) -> None:
    parser.add_argument("--baseline", default=BASELINE_REVISION, help="git revision of the page before the worker")
    parser.add_argument("--repeats", type=int, default=1, help="first points and watched runs per variant")


def baseline_checkout(revision: str, folder: str) -> Path:
    """A worktree of revision under folder (removed by remove_checkout)."""
    path = Path(folder) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision], cwd=common.REPO_ROOT, check=True,
                   capture_output=True)
    return path


def remove_checkout(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=common.REPO_ROOT, capture_output=True)


def serve(app_root: Path, runs_dir: str, log_path: Path):
    """`streamlit run app.py` in app_root; (process, url) once it answers."""
    process, url, _ = app_latency.start_server(runs_dir, log_path, cwd=app_root)
    app_latency.wait_healthy(url, process, log_path)
    return process, url


def first_point(browser, app_root: Path, folder: str, name: str, quick: bool) -> float:
    process, url = serve(app_root, f"{folder}/runs_{name}", Path(folder) / f"{name}.log")
    try:
        page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        seconds = app_latency.time_first_point(page, url, quick)
        page.context.close()
        return seconds
    finally:
        app_latency.stop_server(process)


def watched(browser, app_root: Path, folder: str, name: str, quick: bool) -> dict:
    """A run watched by 3 tabs: its own seconds, the server's CPU seconds over it and its memory at the end."""
    runs_dir = f"{folder}/runs_{name}"
    process, url = serve(app_root, runs_dir, Path(folder) / f"{name}.log")
    try:
        server = psutil.Process(process.pid)
        cpu_before, started = common.process_cpu_seconds(process.pid), time.perf_counter()
        run = app_watching.watched_run(browser, url, runs_dir, 3, quick,
                                       (app_latency.wait_script_idle, app_latency.choose_tiny_settings))
        cpu = common.process_cpu_seconds(process.pid) - cpu_before
        return {**run, "server_cpu": cpu, "server_share": cpu / (time.perf_counter() - started),
                "server_mb": server.memory_info().rss / 2**20}
    finally:
        app_latency.stop_server(process)


def measure(args, browser, folder: str) -> dict:
    variants = {"worker": common.REPO_ROOT}
    if not args.quick:  # the smoke test runs the app as it is only
        variants["before"] = baseline_checkout(args.baseline, folder)
    results = {name: {"first_points": [], "watched": []} for name in variants}
    results["cli"] = []
    try:
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(variants)[::-1]
            for name in order:
                results[name]["first_points"].append(
                    first_point(browser, variants[name], folder, f"{name}_first_{repeat}", args.quick))
                print(f"  {name}: first point {results[name]['first_points'][-1]:.2f} s", flush=True)
            if args.quick:  # the smoke test stops here: app_latency's smoke test already drives watched runs
                continue
            results["cli"].append(app_watching.cli_run(f"{folder}/runs_cli_{repeat}", args.quick))
            for name in order:
                results[name]["watched"].append(watched(browser, variants[name], folder, f"{name}_{repeat}", args.quick))
                print(f"  {name}: watched run {results[name]['watched'][-1]['job']:.1f} s, server CPU "
                      f"{results[name]['watched'][-1]['server_cpu']:.1f} s", flush=True)
    finally:
        if "before" in variants:
            remove_checkout(variants["before"])
    return results


def build_report(results: dict, baseline: str) -> tuple[str, list[str]]:
    cli = common.median([run["job"] for run in results["cli"]]) if results["cli"] else None
    rows = []
    for name, label in (("worker", "worker (as shipped)"), ("before", f"in the server ({baseline})")):
        if name not in results:
            continue
        point = common.median(results[name]["first_points"])
        rows.append([label, f"{point:.2f} s", common.verdict(point, FIRST_POINT_TARGET_S),
                     *watched_cells(results[name]["watched"], cli)])
    table = common.format_table(
        ["page", "Start -> first point", "<= 10 s", "3 tabs / CLI", "<= 1.10", "server CPU over the run",
         "of a core", "server memory"], rows)
    notes = [f"The CLI's run at the same settings: {cli:.1f} s (its own elapsed seconds, as the watched runs')."
             if cli else "Quick: first points only, no watched runs.",
             "Server CPU counts the Streamlit process's own threads: before the worker they include the training "
             "itself, with the worker only the page's polls, reads of the run folder and the worker's events."]
    return table, notes


def watched_cells(runs: list[dict], cli: float | None) -> list[str]:
    """The watched runs' columns: their time against the CLI's, the server's CPU and memory ('' when none)."""
    if not runs or not cli:
        return ["", "", "", "", ""]
    ratio = common.median([run["job"] for run in runs]) / cli
    return [f"{ratio:.2f}", common.verdict(ratio, WATCHED_TARGET),
            f"{common.median([run['server_cpu'] for run in runs]):.1f} s",
            f"{100 * common.median([run['server_share'] for run in runs]):.1f}%",
            f"{common.median([run['server_mb'] for run in runs]):,.0f} MiB"]


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    from playwright.sync_api import sync_playwright

    load_before = common.load_average()
    with tempfile.TemporaryDirectory(prefix="gapdemo-worker-") as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=app_latency.CHROMIUM_PATH, args=app_latency.CHROMIUM_ARGS)
        try:
            results = measure(args, browser, folder)
        finally:
            browser.close()
    table, notes = build_report(results, args.baseline)
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
