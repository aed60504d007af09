"""python -m gapdemo classify: one photo through every back-end of a run."""

import json
from pathlib import Path

from gapdemo.commands import CommandError
from gapdemo.commands.options import add_runs_dir_option


def register(subparsers):
    parser = subparsers.add_parser("classify", help="classify a photo with every trained back-end of a run")
    parser.add_argument("image", help="a photo: JPEG, PNG, WebP, BMP, GIF, HEIC/HEIF (iPhone) or AVIF "
                        "(AVIF when Pillow is built with libavif)")
    parser.add_argument("--run", dest="run_ref", default=None,
                        help="run id or run directory (default: the newest finished run trained on real photos, "
                             "else the newest run with models)")
    add_runs_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.images import ImageError, load_image
    from gapdemo.runs import describe_training_data, read_config

    try:
        image = load_image(Path(args.image).read_bytes())
    except OSError as error:
        raise CommandError(f"cannot read {args.image}: {error.strerror or error}") from None
    except ImageError as error:
        raise CommandError(f"{args.image}: {error}") from None
    run_dir, choice = _run_to_use(args.run_ref, args.runs_dir)
    result = classify_with_run(run_dir, image)
    config = read_config(run_dir)
    trained_on = describe_training_data(config)
    if args.json:
        print(json.dumps({"run_id": run_dir.name, "dataset": config.get("data", {}).get("dataset"),
                          "trained_on": trained_on, "choice": choice, "backends": result}))
        return 0
    print(choice or f"Using run {run_dir.name}, trained on {trained_on}.")
    for backend, values in result.items():
        print(f"  {backend:<16} {values['label']:<4} P(cat) {values['p_cat']:.3f}  P(dog) {values['p_dog']:.3f}")
    return 0


def _run_to_use(run_ref, runs_dir) -> tuple[Path, str | None]:
    """(run folder, the sentence saying why it was chosen); the sentence is None for a run the user named."""
    # deferred: numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.runs import choose_classifier_run, resolve_run

    if run_ref is not None:
        return resolve_run(run_ref, runs_dir), None
    chosen = choose_classifier_run(runs_dir)
    if chosen is None:
        raise FileNotFoundError(f"no run with saved models in {runs_dir}; train one first")
    return chosen[0].run_dir, chosen[1]


def classify_with_run(run_dir, image) -> dict:
    """{backend: {"p_cat", "p_dog", "label"}} for one uint8 image."""
    # deferred: TensorFlow, numpy and the run folder's code; every command is imported to build the parser
    from gapdemo.insight.maps import classify_image
    from gapdemo.runs import load_models
    from gapdemo.validation import stored_run_config

    image_size = stored_run_config(run_dir).data.image_size  # checked: a run folder may have been planted
    result = classify_image(load_models(run_dir), image, image_size)
    return {backend: {"p_cat": round(values["p_cat"], 6), "p_dog": round(values["p_dog"], 6),
                      "label": values["label"]} for backend, values in result.items()}
