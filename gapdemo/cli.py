"""Command line: python -m gapdemo params | data | train | runs | classify | export | claims | evaluate | sweep.

Each sub-command lives in gapdemo/commands/<name>.py with register(subparsers) and
run(args) -> exit status, so commands stay small and import TensorFlow only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import gapdemo
from gapdemo import settings
from gapdemo.commands import CommandError
from gapdemo.quiet import allow_tensorflow_logs, install_hook

COMMANDS = ("params", "data", "train", "runs", "classify", "export", "claims", "evaluate", "sweep", "worker")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage; one line is what we promise
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_verbose_argument(parser) -> None:
    """--verbose, before or after the sub-command (SUPPRESS: a sub-command's default never hides the other)."""
    parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's own log lines (start-up notes, CUDA probing); "
                             "GAPDEMO_TF_LOGS=1 does the same")


class VersionAction(argparse.Action):
    """--version: prints gapdemo's version, read only then (argparse's own action wants it up front)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"gapdemo {gapdemo.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gapdemo", description=__doc__.splitlines()[0])
    add_verbose_argument(parser)
    parser.add_argument("--version", action=VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"gapdemo.commands.{name}").register(subparsers)
    for command_parser in subparsers.choices.values():
        add_verbose_argument(command_parser)
    return parser


def main(argv=None) -> int:
    try:
        settings.check_all()  # a bad GAPDEMO_* value stops here, in one sentence, before any work
    except settings.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    # Commands import TensorFlow later, when they run: its start-up lines are kept off the terminal unless asked.
    if getattr(args, "verbose", False):
        allow_tensorflow_logs()
    else:
        install_hook()
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
