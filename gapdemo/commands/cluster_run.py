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


def run_on_cluster(args, config: RunConfig, address: str) -> int:
    """Submit config as one Ray task at address, report while it trains, print the result; exit status."""
    from gapdemo.sweep import engine
    from gapdemo.sweep.cluster import EngineError, check_reachable
    from gapdemo.sweep.single import train_remotely

    problems = validate_run_config(config, served=operator_says_served())  # the gate, as in this process
    if args.run_id and not RUN_ID_PATTERN.fullmatch(args.run_id):  # a folder name on every system
        problems.append(f"A run id holds only letters, digits, '.', '_' and '-', not {args.run_id!r}.")
    if problems:
        raise CommandError(" ".join(problems))
    try:
        check_reachable(address)  # within seconds, before anything is queued or written
    except EngineError as error:
        raise CommandError(str(error)) from None
    run_dir = runs.create_run_folder(config.train.runs_dir, args.run_id)
    runs.write_config(run_dir, config.to_dict())
    spec = engine.TrialSpec(run_dir.name, config.to_dict())
    stop_event = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_event.set())
    reporter = _Reporter(run_dir, args.events)
    reporter.event({"event": "submitted", "run_id": run_dir.name, "run_dir": str(run_dir)})
    try:
        outcome = train_remotely(spec, config.train.runs_dir, address=address, cpus=args.cpus_per_run,
                                 gpus=args.gpus_per_run, stop_event=stop_event, on_update=reporter.update)
    except EngineError as error:
        raise CommandError(str(error)) from None
    finally:
        reporter.line.end()
    return _print_result(args, run_dir, outcome)


class _Reporter:
    """Turns the collector's view of the run into a progress line, epoch lines and (--events) JSON lines."""

    def __init__(self, run_dir: Path, events: bool):
        self.run_dir, self.events, self.line, self.epoch_rows = run_dir, events, ProgressLine(), 0

    def event(self, values: dict) -> None:
        if self.events:
            print(json.dumps(values), flush=True)

    def update(self, entry: dict) -> None:
        state = entry.get("state", "waiting")
        self.event({"event": "update", "state": state, "node": entry.get("node"), "progress": entry.get("progress")})
        rows = runs.read_epoch_metrics(self.run_dir).to_dict("records")
        self.epoch_rows = print_finished_epochs(rows, self.epoch_rows, self.line, entry.get("progress"))
        text = WAITING_TEXT if state == "waiting" else progress_text(entry.get("progress") or {})
        if text:
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
