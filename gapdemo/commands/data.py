"""python -m gapdemo data: images per split and class, and the files that could not be read."""

import json
import sys

from gapdemo.commands import CommandError
from gapdemo.commands.options import add_data_options, data_config_from_args
from gapdemo.config import RunConfig
from gapdemo.serving import operator_says_served
from gapdemo.units import format_bytes
from gapdemo.validation import data_problems


def register(subparsers):
    parser = subparsers.add_parser("data", help="load a data set and count its images per split and class")
    add_data_options(parser)
    parser.add_argument("--clear-cache", action="store_true",
                        help="remove every cached data set from the cache directory, then exit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _show_progress(message: str, fraction: float) -> None:
    # Progress goes to stderr, and only to a terminal, so stdout stays clean for --json and pipes.
    if sys.stderr.isatty():
        print(f"\r{message} ({fraction:.0%})".ljust(60), end="" if fraction < 1 else "\n", file=sys.stderr)


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.data.sources import load_splits

    if args.clear_cache:
        return _clear_cache(args)
    config = data_config_from_args(args)
    problems = data_problems(RunConfig(data=config), served=operator_says_served())  # the gate, as train asks it
    if problems:
        raise CommandError(" ".join(problems))
    _, info = load_splits(config, progress=_show_progress)
    if args.json:
        print(json.dumps(info.to_dict()))
        return 0
    print(f"Data set {info.dataset} at {info.image_size}x{info.image_size}, classes: "
          + ", ".join(f"{index} = {name}" for index, name in enumerate(info.class_names)))
    print(f"{'split':<12}{'images':>8}" + "".join(f"{name:>10}" for name in info.class_names))
    for split, count in info.splits.items():
        counts = info.class_counts[split]
        print(f"{split:<12}{count:>8}" + "".join(f"{counts[name]:>10}" for name in info.class_names))
    if info.skipped:
        print(f"Skipped {len(info.skipped)} unreadable file(s):")
        for entry in info.skipped:
            print(f"  {entry['path']}: {entry['reason']}")
    else:
        print("No files skipped.")
    if info.cache_note:
        print(info.cache_note)
    return 0


def _clear_cache(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.data.cache import cache_root, clear_cache

    freed = clear_cache(args.cache_dir)
    if args.json:
        print(json.dumps({"cache_dir": str(cache_root(args.cache_dir)), "freed_bytes": freed}))
    else:
        print(f"Cleared the image cache in {cache_root(args.cache_dir)}: {format_bytes(freed)} freed.")
    return 0
