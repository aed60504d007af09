"""python -m gapdemo claims: measure the tutorial's four claims over several seeds; progress on stderr."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from gapdemo.commands import CommandError, parse_backends
from gapdemo.commands.options import add_run_options, parse_train_size, run_config
from gapdemo.commands.progress import StepProgress
from gapdemo.config import DEFAULT_SEEDS, MAX_SEEDS
from gapdemo.serving import operator_says_served


def register(subparsers):
    parser = subparsers.add_parser("claims", help="measure the four claims (parameters, overfitting, "
                                                  "localisation, translation) over several seeds")
    # asked_only: the run options default to None so that --pool can tell which settings were asked for
    # (config_from_args fills in RunConfig's defaults for a claims job).
    add_run_options(parser, asked_only=True)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"independent repeats (1-{MAX_SEEDS})")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="training runs at once on this machine's Ray (default: as CPUs allow)")
    parser.add_argument("--events", action="store_true",
                        help="progress as one JSON line per step on stdout (what the page's claims jobs read)")
    parser.add_argument("--pool", action="store_true",
                        help="pool the finished runs of --runs-dir that share their settings (only the seed "
                             "differs) instead of training: measure those not measured yet, then print the table; "
                             "the run options above choose the group (default: the largest)")
    parser.add_argument("--group", default=None, metavar="KEY", help="with --pool: the group's settings key")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.claims import CLAIMS, ClaimsFailed, ClaimsStopped, run_claims

    if args.pool:
        return run_pool(args)
    config = run_config(args)
    stop_event = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_event.set())
    # a live bar on a terminal, a line per step when piped; JSON lines for the page
    progress = EventProgress() if args.events else StepProgress()
    try:
        result = run_claims(config, args.seeds, progress=progress, stop_event=stop_event,
                            served=operator_says_served(), max_concurrent=args.max_concurrent)
    except ClaimsStopped:
        progress.end()  # the message on a line of its own, not after the progress bar
        print("stopped: no claims were saved", file=sys.stderr)
        return 130
    except ClaimsFailed as error:
        progress.end()
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        progress.end()
    if args.events:
        print(json.dumps({"event": "result", "result": {"id": result["id"], "claims_dir": result["claims_dir"]}}),
              flush=True)
    if args.json:
        keys = ("id", "claims_dir", "seeds", *CLAIMS, "verdicts")
        print(json.dumps({key: result[key] for key in keys}))
        return 0
    print(f"Claims over {result['seeds']} seed(s), saved in {result['claims_dir']}/claims.json")
    for claim in CLAIMS.values():
        print(f"\n{claim.heading}\n  {result['verdicts'][claim.key]}")
    return 0


# --pool's options that choose a group: (argument name, the shared setting it must equal)
POOL_FILTERS = (("dataset", "dataset"), ("image_size", "image_size"), ("epochs", "epochs"),
                ("train_size", "train_size"), ("synthetic_size", "synthetic_size"), ("batch_size", "batch_size"),
                ("backends", "backends"), ("data_dir", "data_dir"))


def asked_settings(args) -> dict:
    """The shared settings the run options ask for (only those given): {setting: value as groups store it}."""
    asked = {}
    for name, setting in POOL_FILTERS:
        value = getattr(args, name)
        if value is None:
            continue
        if name == "backends":
            value = list(parse_backends(value))
        elif name == "train_size":
            value = parse_train_size(value)
        elif name == "data_dir":
            value = str(Path(value).resolve())
        asked[setting] = value
    return asked


def choose_group(scan, args):
    """The group --group or the run options name (the largest that matches), and a line saying which."""
    if args.group:
        group = scan.find(args.group)
        return group, f"Pooling group {group.key}: {group.description()} ({group.runs} finished runs)."
    asked = asked_settings(args)
    matching = [group for group in scan.groups if all(group.settings.get(k) == v for k, v in asked.items())]
    if not matching:
        raise CommandError("no group of at least 2 finished runs has the settings asked for; "
                           f"the groups are: {'; '.join(g.key + ': ' + g.description() for g in scan.groups)}")
    which = "the largest group" + (" with those settings" if asked else "")
    others = f"{len(scan.groups) - 1} other group(s) of 2 or more (--group KEY to choose)"
    alone = f"{scan.single_runs} finished run(s) share their settings with no other" if scan.single_runs else ""
    return matching[0], (f"Pooling {which}: {matching[0].description()} ({matching[0].runs} finished runs, key "
                         f"{matching[0].key}); " + "; ".join(part for part in (others, alone) if part) + ".")


def run_pool(args) -> int:
    """claims --pool: measure the chosen group's unmeasured runs, then print its table (or JSON)."""
    from gapdemo.claims.groups import scan_pool  # deferred, as in run
    from gapdemo.claims.pool import pooled_claims
    from gapdemo.claims.pool_table import table_lines

    scan = scan_pool(args.runs_dir)
    if not scan.groups:
        raise CommandError(f"no settings have at least 2 finished runs in {args.runs_dir} yet, so there is nothing "
                           "to pool")
    group, which = choose_group(scan, args)
    print(which, file=sys.stderr)
    progress = EventProgress() if args.events else StepProgress()
    try:
        pooled = pooled_claims(args.runs_dir, group.key, measure_missing=True, served=operator_says_served(),
                               progress=progress, scan=scan)
    finally:
        progress.end()
    for line in pooled.skipped:
        print(line, file=sys.stderr)
    if pooled.runs == 0:
        print("error: no run of the group could be measured", file=sys.stderr)
        return 1
    public = pooled.to_public()
    if args.json:
        print(json.dumps({**public, "run_ids": pooled.run_ids}))  # the command is the operator's: ids are shown
    else:
        print("\n".join(table_lines(public)))
    return 0


class EventProgress:
    """progress(message, fraction) as JSON lines on stdout, for the page's claims job (gapdemo.jobs.child_job)."""

    def __call__(self, message: str, fraction: float) -> None:
        print(json.dumps({"event": "progress", "message": message, "fraction": round(float(fraction), 4)}),
              flush=True)

    def end(self) -> None:
        """Nothing to close: every line is whole."""
