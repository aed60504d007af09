"""python -m gapdemo train --address HOST:PORT: the run as one task on a Ray cluster (gapdemo.sweep.single).

Progress goes to stderr as for a run in this process; --events adds one JSON line on stdout per update
(what the page's cluster jobs read); --json prints the result with "engine": "ray" and the node's id.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from pathlib import Path

from gapdemo import runs
from gapdemo.commands import CommandError
from gapdemo.commands.progress import ProgressLine, final_metrics, print_finished_epochs, progress_text
from gapdemo.config import RunConfig
from gapdemo.serving import operator_says_served
from gapdemo.validation import validate_run_config

WAITING_TEXT = "waiting for the cluster's resources"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
WINDOWS_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}


def run_on_cluster(args, config: RunConfig, address: str) -> int:
    """Submit config as one Ray task at address, report while it trains, print the result; exit status."""
    from gapdemo.sweep import engine
    from gapdemo.sweep.cluster import EngineError
    from gapdemo.sweep.single import train_remotely

    problems = validate_run_config(config, served=operator_says_served())  # the gate, as in this process
    problems += run_id_problems(args.run_id)
    if problems:
        raise CommandError(" ".join(problems))
    stop_event = threading.Event()  # from the start: a stop while Ray connects ends the run cleanly too
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_event.set())
    try:
        engine.connect(address)  # refused within seconds where no cluster answers, before anything is written
    except EngineError as error:
        raise CommandError(str(error)) from None
    except Exception as error:  # something answers at the address, but no Ray of ours
        raise CommandError(f"Could not join the Ray cluster at {address}: {error}") from None
    run_dir = runs.create_run_folder(config.train.runs_dir, args.run_id)
    runs.write_config(run_dir, config.to_dict())
    reporter = _Reporter(run_dir, args.events)
    reporter.event({"event": "submitted", "run_id": run_dir.name, "run_dir": str(run_dir)})
    try:
        outcome = train_remotely(engine.TrialSpec(run_dir.name, config.to_dict()), config.train.runs_dir,
                                 address=address, cpus=args.cpus_per_run, gpus=args.gpus_per_run,
                                 stop_event=stop_event, on_update=reporter.update)
    finally:
        reporter.line.end()
    return _print_result(args, run_dir, outcome)


def run_id_problems(run_id: str | None) -> list[str]:
    """Why run_id cannot name a run folder on every system (Windows' device names and trailing dots too)."""
    if run_id is None:
        return []
    if not RUN_ID_PATTERN.fullmatch(run_id) or run_id.endswith(".") or \
            run_id.split(".")[0].upper() in WINDOWS_DEVICE_NAMES:
        return [f"A run id holds letters, digits, '.', '_' and '-', is no device name and ends in no dot; "
                f"{run_id!r} does not."]
    return []


class _Reporter:
    """Turns the collector's view of the run into a progress line, epoch lines and (--events) JSON lines.

    With --events a program reads stdout; the progress line, redrawn every second, is then left out.
    """

    def __init__(self, run_dir: Path, events: bool):
        self.run_dir, self.events, self.line, self.epoch_rows = run_dir, events, ProgressLine(), 0

    def event(self, values: dict) -> None:
        if self.events:
            print(json.dumps(values), flush=True)

    def update(self, entry: dict) -> None:
        state = entry.get("state", "waiting")
        self.event({"event": "update", "state": state, "node": entry.get("node"), "progress": entry.get("progress")})
        try:
            rows = runs.read_epoch_metrics(self.run_dir).to_dict("records")
        except (OSError, ValueError):  # metrics.csv arriving as it is read: the next update reads it
            return
        if len(rows) < self.epoch_rows:  # a lost node: the run started again from epoch 1 on another
            self.line.end()
            print(f"the run starts again from epoch 1 (attempt {entry.get('attempts')})", file=sys.stderr)
            self.epoch_rows = 0
        self.epoch_rows = print_finished_epochs(rows, self.epoch_rows, self.line, entry.get("progress"))
        text = WAITING_TEXT if state == "waiting" else progress_text(entry.get("progress") or {})
        if text and not self.events:
            self.line.show(text)


def _print_result(args, run_dir: Path, outcome: dict) -> int:
    rows = runs.read_epoch_metrics(run_dir).to_dict("records")
    state = outcome["state"]
    if state == "failed":
        print(f"error: {outcome['message']}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir), "status": state, "engine": "ray",
                          "node": outcome.get("node"), "attempts": outcome.get("attempts"),
                          "epochs_completed": max((int(r["epoch"]) for r in rows), default=0),
                          "backends": final_metrics(rows)}), flush=True)
    else:
        print(f"run {run_dir.name}: {state} ({run_dir}) on Ray node {outcome.get('node')}")
    return 1 if state == "failed" else 0
