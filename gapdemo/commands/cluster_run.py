"""python -m gapdemo train --address HOST:PORT: the run as one task on a Ray cluster (gapdemo.cluster.single_run).

Progress goes to stderr as for a run in this process; --events adds one JSON line on stdout per update
(what the page's cluster jobs read); --json prints the result with "engine": "ray" and the node's id.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from gapdemo import runs
from gapdemo.cluster import connection, trials
from gapdemo.cluster.connection import EngineError
from gapdemo.cluster.single_run import train_remotely
from gapdemo.commands import CommandError
from gapdemo.commands.progress import RunProgress, final_metrics, rows_by_epoch
from gapdemo.config import RunConfig
from gapdemo.serving import operator_says_served
from gapdemo.validation import validate_run_config


def run_on_cluster(args, config: RunConfig, address: str) -> int:
    """Submit config as one Ray task at address, report while it trains, print the result; exit status."""
    problems = validate_run_config(config, served=operator_says_served())  # the gate, as in this process
    problems += runs.run_id_problems(args.run_id)
    if problems:
        raise CommandError(" ".join(problems))
    stop_event = threading.Event()  # from the start: a stop while Ray connects ends the run cleanly too
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_event.set())
    try:
        connection.connect(address)  # refused within seconds where no cluster answers, before anything is written
    except EngineError as error:
        raise CommandError(str(error)) from None
    except Exception as error:  # something answers at the address, but no Ray of ours
        raise CommandError(f"Could not join the Ray cluster at {address}: {error}") from None
    run_dir = runs.create_run_folder(config.train.runs_dir, args.run_id)
    runs.write_config(run_dir, config.to_dict())
    reporter = _Reporter(run_dir, args.events, config.train.epochs)
    reporter.event({"event": "submitted", "run_id": run_dir.name, "run_dir": str(run_dir)})
    try:
        outcome = train_remotely(trials.TrialSpec(run_dir.name, config.to_dict()), config.train.runs_dir,
                                 address=address, cpus=args.cpus_per_run, gpus=args.gpus_per_run,
                                 stop_event=stop_event, on_update=reporter.update)
    finally:
        reporter.display.close()  # an open bar would take the next line onto its own
    return _print_result(args, run_dir, outcome, reporter)


class _Reporter:
    """Turns the collector's view of the run into progress on stderr and (--events) JSON lines on stdout.

    The view is polled about once a second: each finished epoch is read from the run's metrics.csv
    and drawn full with its final rate, which the collector keeps per epoch. With --events a program reads
    stdout (the page's cluster runs); stderr then gets plain lines, never a bar redrawn in place.
    """

    def __init__(self, run_dir: Path, events: bool, epochs: int):
        self.run_dir, self.events, self.epoch_rows = run_dir, events, 0
        self.display = RunProgress(epochs, live=False if events else None)

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
            self.display.restart(f"the run starts again from epoch 1 (attempt {entry.get('attempts')})")
            self.epoch_rows = 0
        progress = {"phase": "waiting"} if state == "waiting" else entry.get("progress") or {}
        for epoch_end in entry.get("epoch_ends", {}).values():  # each epoch's final rate, however short it was
            self.display.remember(epoch_end)
        self.display.remember(progress)  # first: it may be the last word on an epoch whose rows are below
        for epoch_rows in rows_by_epoch(rows[self.epoch_rows:]):
            self.display.end_epoch(epoch_rows)
        self.epoch_rows = len(rows)
        self.display.show(progress)


def _print_result(args, run_dir: Path, outcome: dict, reporter: _Reporter) -> int:
    rows = runs.read_epoch_metrics(run_dir).to_dict("records")
    state = outcome["state"]
    for epoch_rows in rows_by_epoch(rows[reporter.epoch_rows:]):  # epochs that came home after the last update
        reporter.display.end_epoch(epoch_rows)
    epochs_completed = max((int(r["epoch"]) for r in rows), default=0)
    reporter.display.finish(state, outcome.get("message", ""), epochs_completed)
    if args.json:
        print(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir), "status": state, "engine": "ray",
                          "node": outcome.get("node"), "attempts": outcome.get("attempts"),
                          "epochs_completed": epochs_completed, "backends": final_metrics(rows)}), flush=True)
    else:
        print(f"run {run_dir.name}: {state} ({run_dir}) on Ray node {outcome.get('node')}")
    return 1 if state == "failed" else 0
