"""Command line: python -m gapdemo params | data | train | runs | classify | export | claims | evaluate | sweep.

Each sub-command lives in gapdemo/commands/<name>.py with register(subparsers) and
run(args) -> exit status, so commands stay small and import TensorFlow only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gapdemo.commands import CommandError

COMMANDS = ("params", "data", "train", "runs", "classify", "export", "claims", "evaluate", "sweep")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage; one line is what we promise
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gapdemo", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"gapdemo.commands.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """Entry point of the installed `gapdemo` command: the same as python -m gapdemo."""
    sys.exit(main())
