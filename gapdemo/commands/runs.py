"""python -m gapdemo runs: list the runs in a runs directory."""

import json

from gapdemo.commands.options import add_runs_dir_option


def register(subparsers):
    parser = subparsers.add_parser("runs", help="list earlier runs")
    add_runs_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.runs import list_runs

    summaries = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps({"runs_dir": str(args.runs_dir), "runs": [s.to_dict() for s in summaries]}))
        return 0
    if not summaries:
        print(f"No runs in {args.runs_dir}.")
        return 0
    print(f"{'run':<22}{'state':<13}{'data':<14}{'epochs':>8}  best validation accuracy")
    for summary in summaries:
        best = ", ".join(f"{b} {v:.3f}" for b, v in summary.best_val_accuracy.items()) or "-"
        epochs = f"{summary.epochs_completed}/{summary.epochs}"
        print(f"{summary.run_id:<22}{summary.state:<13}{summary.dataset:<14}{epochs:>8}  {best}")
        if summary.state in ("failed", "interrupted") and summary.message:
            print(f"{'':<22}{summary.message}")
    return 0
