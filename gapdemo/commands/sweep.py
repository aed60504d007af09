"""python -m gapdemo sweep: run settings x seeds as trials on Ray; progress on stderr, summary at the end."""

from __future__ import annotations

import json
import signal
import sys
import threading

from gapdemo.cluster.connection import EngineError
from gapdemo.commands import CommandError
from gapdemo.commands.options import add_run_options, run_config
from gapdemo.config import DEFAULT_SEEDS, RunConfig
from gapdemo.serving import operator_says_served
from gapdemo.sweep.grid import SWEEPABLE, parse_grid, plan_trials


def register(subparsers):
    parser = subparsers.add_parser("sweep", help="train a grid of settings x seeds on Ray (this machine or a cluster)")
    add_run_options(parser)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=V1,V2",
                        help=f"a setting to sweep and its values (repeatable); NAME is one of: {', '.join(SWEEPABLE)}")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per grid point (seed, seed + 1, ...)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (host:port); default $GAPDEMO_RAY_ADDRESS, else a local Ray")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as CPUs allow)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0,
                        help="CPUs per trial; TensorFlow's thread pools are sized to match (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractions allowed")
    parser.add_argument("--plan", dest="plan_file", default=None, metavar="FILE",
                        help="train exactly the trials of a sweep plan (the JSON the Sweeps tab hands its sweep); "
                             "the run options, --config, --set and --seeds are then ignored")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: the sweep's store and summary load pandas, which no other command needs at the CLI's start
    from gapdemo.sweep import store
    from gapdemo.sweep.execution import run_plan

    if args.plan_file:
        plan = store.read_plan(args.plan_file)
    else:
        plan = plan_trials(base_config(args), parse_grid(args.assignments), args.seeds)
    stop_event = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_event.set())
    try:
        result = run_plan(plan, address=args.address, max_concurrent=args.max_concurrent,
                          cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                          stop_event=stop_event, on_update=_progress_printer(), served=operator_says_served())
    except EngineError as error:
        raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print_summary(result)
    if result["state"] == "stopped":
        return 130
    return 1 if any(trial["state"] != "finished" for trial in result["trials"]) else 0


def base_config(args) -> RunConfig:
    """The run options, or the settings stored in --config FILE (with --runs-dir applied)."""
    return run_config(args)


def _progress_printer():
    """on_update(snapshot) that prints a line to stderr when a trial's state or epoch changes."""
    shown = {}

    def show(snapshot: dict) -> None:
        for run_id, entry in sorted(snapshot.items()):
            progress = entry.get("progress") or {}
            line = f"{entry.get('state', 'pending')}" + (
                f", epoch {progress['epoch']}/{progress['epochs']}" if "epoch" in progress else "")
            if shown.get(run_id) != line:
                shown[run_id] = line
                print(f"trial {run_id}: {line}", file=sys.stderr, flush=True)

    return show


def print_summary(result: dict) -> None:
    finished = sum(trial["state"] == "finished" for trial in result["trials"])
    print(f"sweep {result['sweep_id']}: {result['state']}, {finished}/{len(result['trials'])} trials finished "
          f"on {result['nodes']} Ray node(s)")
    for row in result["summary"]:
        print(f"  {row['label']:<28} {row['backend']:<16} n={row['n']}  val acc {row['val_accuracy_mean']:.3f} "
              f"± {row['val_accuracy_std']:.3f}  gap {row['gap_mean']:+.3f} ± {row['gap_std']:.3f}")
