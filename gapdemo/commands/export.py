"""python -m gapdemo export: a run's charts and metrics as files."""

import warnings

from gapdemo.commands import CommandError
from gapdemo.commands.options import add_runs_dir_option


def register(subparsers):
    parser = subparsers.add_parser("export", help="write a run's charts (HTML, PNG) and metrics (CSV) to a folder")
    parser.add_argument("run_id", metavar="RUN_ID_OR_DIR", nargs="?", default=None,
                        help="run id or run directory (default: the newest run with saved models)")
    add_runs_dir_option(parser)
    parser.add_argument("--to", required=True, dest="target", help="folder to write into (created if needed)")
    parser.add_argument("--formats", default="html,png,csv", help="comma-separated: html, png, csv")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: plotly, pandas, numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.export.bundle import EXPORT_FORMATS, export_run
    from gapdemo.runs import resolve_run

    formats = tuple(part.strip() for part in args.formats.split(",") if part.strip())
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown or not formats:
        raise CommandError(f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(EXPORT_FORMATS)}")
    run_dir = resolve_run(args.run_id, args.runs_dir)
    if args.run_id is None:
        print(f"note: exporting run {run_dir.name}, the newest run with saved models")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        written = export_run(run_dir, args.target, formats)
    for warning in caught:
        print(f"note: {warning.message}")
    for path in written:
        print(path)
    return 0
