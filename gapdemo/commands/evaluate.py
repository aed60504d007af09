"""python -m gapdemo evaluate: where each back-end of a finished run goes wrong on its test split."""

import json

from gapdemo.commands import CommandError
from gapdemo.commands.options import add_runs_dir_option
from gapdemo.serving import operator_says_served

MISTAKES_SHOWN = 5  # most confident mistakes listed per back-end in the text output


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="confusion matrix, per-class accuracy, precision/recall and mistakes per back-end")
    parser.add_argument("run_id", metavar="RUN", help="run id or run directory")
    add_runs_dir_option(parser)
    parser.add_argument("--consistency", action="store_true",
                        help="also measure shift consistency: predictions unchanged by 1-16 pixel shifts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.insight.evaluation import check_evaluable, evaluate_run
    from gapdemo.runs import load_models, resolve_run

    run_dir = resolve_run(args.run_id, args.runs_dir)
    try:
        check_evaluable(run_dir)
        models = load_models(run_dir)  # once, for the evaluation and the shifted copies
        evaluation = evaluate_run(run_dir, models, served=operator_says_served())  # held to the data roots
    except ValueError as error:  # still training, no models, data gone: one line, exit 2
        raise CommandError(str(error)) from None
    result = evaluation.to_dict()
    if args.consistency:
        result["consistency"] = consistency_of(models, evaluation)
    if args.json:
        print(json.dumps(result))
        return 0
    print_report(result)
    return 0


def consistency_of(models: dict, evaluation) -> dict:
    """{backend: {shift: fraction}} on the run's test split (gapdemo.insight.evaluation.shift_consistency)."""
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.insight.evaluation import CONSISTENCY_SHIFTS, model_predictor, shift_consistency

    predictors = {backend: model_predictor(model, compiled=True) for backend, model in models.items()}
    fractions = shift_consistency(predictors, evaluation.images, CONSISTENCY_SHIFTS)
    return {backend: {str(shift): round(float(value), 6) for shift, value in zip(CONSISTENCY_SHIFTS, values, strict=True)}
            for backend, values in fractions.items()}


def _percent(value) -> str:
    return "  n/a" if value is None else f"{value:5.1%}"


def print_report(result: dict) -> None:
    names = result["class_names"]
    epochs = result["epochs_completed"]
    print(f"run {result['run_id']} ({result['state']}, {epochs} epoch{'' if epochs == 1 else 's'}): "
          f"{result['test_size']} test images; rows = true class, columns = predicted")
    for backend, values in result["backends"].items():
        print(f"\n{backend}: accuracy {_percent(values['accuracy'])}")
        print(f"  {'':>12}" + "".join(f"{'→ ' + name:>10}" for name in names)
              + "   per-class acc (recall)  precision")
        for row, name in zip(values["confusion"], names, strict=True):
            print(f"  {name:>12}" + "".join(f"{count:>10}" for count in row)
                  + f"   {_percent(values['per_class_accuracy'][name]):>22}  {_percent(values['precision'][name]):>9}")
        mistakes = values["misclassified"][:MISTAKES_SHOWN]
        if mistakes:
            listed = ", ".join(f"#{m['index']} {m['true']}→{m['predicted']} {m['probability']:.0%}" for m in mistakes)
            print(f"  most confident mistakes: {listed}")
    for backend, fractions in result.get("consistency", {}).items():
        print(f"\n{backend} shift consistency: " + " ".join(f"{shift}px {value:.0%}" for shift, value in fractions.items()))
