"""The options the commands share, declared once: the data options, the run options and --runs-dir.

train, claims, sweep, data and evaluate each add these, then only their own; config_from_args turns the
parsed options into a RunConfig for every command that trains. A command that must tell which options
were given (claims --pool picks a group by them) declares them with asked_only=True: every default is
then None, and config_from_args fills in RunConfig's defaults.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gapdemo import settings
from gapdemo.commands import CommandError, parse_backends
from gapdemo.config import (
    DATASETS,
    MAX_IMAGE_SIZE,
    MAX_SYNTHETIC_TRAIN_SIZE,
    MIN_IMAGE_SIZE,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from gapdemo.model.precision import PRECISIONS, bfloat16_support


def unless_asked(asked_only: bool, value):
    """A declared default, or None when the command must tell whether the option was given."""
    return None if asked_only else value


def add_runs_dir_option(parser, help_text: str = "folder holding runs/<run_id>/") -> None:
    """--runs-dir, by default GAPDEMO_RUNS_DIR, else runs: the folder the page reads too."""
    parser.add_argument("--runs-dir", default=settings.runs_dir(),
                        help=f"{help_text} (default $GAPDEMO_RUNS_DIR, else runs)")


def add_data_options(parser, asked_only: bool = False) -> None:
    """--dataset --data-dir --image-size --train-size --synthetic-size --seed --cache-dir."""
    defaults = DataConfig()

    parser.add_argument("--dataset", choices=DATASETS, default=unless_asked(asked_only, defaults.dataset),
                        help=f"where images come from (default {defaults.dataset})")
    parser.add_argument("--data-dir", default=None,
                        help="folder: PATH/<class>/*; cats_vs_dogs: TFDS data dir (default ~/tensorflow_datasets)")
    parser.add_argument("--image-size", type=int, default=unless_asked(asked_only, defaults.image_size),
                        help=f"input size in pixels, {MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE} (default {defaults.image_size})")
    parser.add_argument("--train-size", default=unless_asked(asked_only, str(defaults.train_size or 0)),
                        help=f"cap on training images, or 'all' / 0 (default {defaults.train_size}; "
                             f"synthetic: at most {MAX_SYNTHETIC_TRAIN_SIZE:,})")
    parser.add_argument("--synthetic-size", type=int, default=unless_asked(asked_only, defaults.synthetic_size),
                        help=f"images the synthetic source draws, split 80/10/10 (default {defaults.synthetic_size})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed for data, weights and batch order; over several seeds, seed i uses seed + i")
    parser.add_argument("--cache-dir", default=None,
                        help="where decoded folder / Cats vs Dogs images are cached "
                             "(default $GAPDEMO_CACHE_DIR, else ~/.cache/gapdemo)")


def add_run_options(parser, asked_only: bool = False) -> None:
    """The data options, then every model and training setting, --runs-dir, --json and --config."""
    model_defaults, train_defaults = ModelConfig(), TrainConfig()

    add_data_options(parser, asked_only)
    parser.add_argument("--backends", default=unless_asked(asked_only, ",".join(model_defaults.backends)),
                        help=f"comma-separated back-end keys (default {','.join(model_defaults.backends)})")
    parser.add_argument("--epochs", type=int, default=unless_asked(asked_only, train_defaults.epochs),
                        help=f"default {train_defaults.epochs}")
    parser.add_argument("--dropout", type=float, default=model_defaults.dropout_rate, help="dropout rate of fc_dropout")
    parser.add_argument("--bn-momentum", type=float, default=model_defaults.bn_momentum,
                        help="batch-norm momentum (0.99 = Keras default)")
    parser.add_argument("--no-bn-recalibration", action="store_true",
                        help=f"validate with batch norm's moving statistics as they are, not re-averaged over "
                             f"{train_defaults.recalibration_batches} training batches first")
    parser.add_argument("--batch-size", type=int, default=unless_asked(asked_only, train_defaults.batch_size),
                        help=f"default {train_defaults.batch_size}")
    parser.add_argument("--steps-per-execution", type=int, default=train_defaults.steps_per_execution,
                        help="batches per call into TensorFlow (progress and stop act once per call)")
    parser.add_argument("--learning-rate", type=float, default=train_defaults.learning_rate)
    parser.add_argument("--precision", choices=PRECISIONS, default=train_defaults.precision,
                        help=f"arithmetic of the layers (default float32: mixed bfloat16 trained 1.16x the images "
                             f"per second but ended a default run only 1.11x sooner). {bfloat16_support()[1]}")
    add_runs_dir_option(parser, "where runs (and claims-<id>/, sweep-<id>/) are written")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                        help="settings from a JSON file (a run's config.json will do; - reads standard input); "
                             "the run options above are then ignored, except --runs-dir")


def given(value, default):
    return default if value is None else value


def parse_train_size(text) -> int | None:
    """'all' or 0 -> None (no cap), else the whole number given: the gate (data_problems) names the range."""
    if isinstance(text, int) or text is None:
        return text or None
    if text.strip().lower() == "all" or text.strip() == "0":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"train size must be a whole number, or 'all' (0 means all too), got {text!r}") from None


def data_config_from_args(args) -> DataConfig:
    """The data options as a DataConfig; an option not given (None) takes DataConfig's default."""
    defaults = DataConfig()
    return DataConfig(dataset=given(args.dataset, defaults.dataset), data_dir=args.data_dir,
                      image_size=given(args.image_size, defaults.image_size),
                      train_size=parse_train_size(given(args.train_size, defaults.train_size)),
                      synthetic_size=given(args.synthetic_size, defaults.synthetic_size), seed=args.seed,
                      cache_dir=args.cache_dir)


def config_from_args(args) -> RunConfig:
    """The run options as a RunConfig; an option not given (None) takes RunConfig's default."""
    model, train = ModelConfig(), TrainConfig()
    return RunConfig(
        data=data_config_from_args(args),
        model=ModelConfig(backends=parse_backends(given(args.backends, ",".join(model.backends))),
                          dropout_rate=args.dropout, bn_momentum=args.bn_momentum, seed=args.seed),
        train=TrainConfig(epochs=given(args.epochs, train.epochs), batch_size=given(args.batch_size, train.batch_size),
                          learning_rate=args.learning_rate, seed=args.seed, runs_dir=args.runs_dir,
                          recalibrate_bn=not args.no_bn_recalibration,
                          steps_per_execution=args.steps_per_execution, precision=args.precision),
    )


def config_from_file(args) -> RunConfig:
    """The settings stored in --config FILE, with --runs-dir applied (train, claims and sweep)."""
    try:  # "-": from standard input (how the page hands a run to a child process)
        text = sys.stdin.read() if args.config_file == "-" else Path(args.config_file).read_text(encoding="utf-8")
        values = json.loads(text)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read settings from {args.config_file}: {error}") from None
    values = {section: values.get(section, {}) for section in ("data", "model", "train")}
    values["data"].pop("dataset_info", None)
    values["train"]["runs_dir"] = args.runs_dir
    try:
        return RunConfig.from_dict(values)
    except TypeError as error:
        raise CommandError(f"{args.config_file} is not a gapdemo run config ({error})") from None


def run_config(args) -> RunConfig:
    """The settings stored in --config FILE, else the run options."""
    return config_from_file(args) if args.config_file else config_from_args(args)
