"""python -m gapdemo claims: measure the tutorial's four claims over several seeds; progress on stderr."""

from __future__ import annotations

import json
import signal
import sys
import threading

from gapdemo.commands import parse_backends
from gapdemo.commands.progress import StepProgress
from gapdemo.commands.train import config_from_file
from gapdemo.config import DATASETS, DEFAULT_SEEDS, MAX_SEEDS, DataConfig, ModelConfig, RunConfig, TrainConfig
from gapdemo.serving import operator_says_served


def register(subparsers):
    defaults = RunConfig()
    parser = subparsers.add_parser("claims", help="measure the four claims (parameters, overfitting, "
                                                  "localisation, translation) over several seeds")
    parser.add_argument("--dataset", choices=DATASETS, default=defaults.data.dataset, help="where images come from")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (cats_vs_dogs) or PATH/<class>/* (folder)")
    parser.add_argument("--backends", default=",".join(defaults.model.backends), help="comma-separated back-end keys")
    parser.add_argument("--image-size", type=int, default=defaults.data.image_size, help="input size in pixels (32-256)")
    parser.add_argument("--epochs", type=int, default=defaults.train.epochs)
    parser.add_argument("--train-size", type=int, default=defaults.data.train_size, help="cap on training images (0 = all)")
    parser.add_argument("--synthetic-size", type=int, default=defaults.data.synthetic_size,
                        help="images the synthetic source draws, split 80/10/10")
    parser.add_argument("--batch-size", type=int, default=defaults.train.batch_size)
    parser.add_argument("--seed", type=int, default=0, help="first seed; seed i uses seed + i")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"independent repeats (1-{MAX_SEEDS})")
    parser.add_argument("--runs-dir", default=defaults.train.runs_dir, help="claims-<id>/ is written here")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    parser.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                        help="settings from a JSON file (a run's config.json will do; - reads standard input); "
                             "the run options above are then ignored, except --runs-dir")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="training runs at once on this machine's Ray (default: as CPUs allow)")
    parser.add_argument("--events", action="store_true",
                        help="progress as one JSON line per step on stdout (what the page's claims jobs read)")
    parser.set_defaults(run=run)


def config_from_args(args) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
                        train_size=args.train_size or None, synthetic_size=args.synthetic_size, seed=args.seed),
        model=ModelConfig(backends=parse_backends(args.backends), seed=args.seed),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, runs_dir=args.runs_dir),
    )


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.claims import CLAIMS, ClaimsFailed, ClaimsStopped, run_claims

    config = config_from_file(args) if args.config_file else config_from_args(args)
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


class EventProgress:
    """progress(message, fraction) as JSON lines on stdout, for the page's claims job (gapdemo.jobs.child_job)."""

    def __call__(self, message: str, fraction: float) -> None:
        print(json.dumps({"event": "progress", "message": message, "fraction": round(float(fraction), 4)}),
              flush=True)

    def end(self) -> None:
        """Nothing to close: every line is whole."""
