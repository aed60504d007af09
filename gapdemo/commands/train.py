"""python -m gapdemo train: train back-ends in lockstep, with a progress bar on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gapdemo.cluster.connection import resolve_address
from gapdemo.commands import CommandError, parse_backends
from gapdemo.commands.data import add_cache_argument
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


def add_data_arguments(parser) -> None:
    defaults = DataConfig()
    parser.add_argument("--dataset", choices=DATASETS, default=defaults.dataset, help="where images come from")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (cats_vs_dogs) or PATH/<class>/* (folder)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size,
                        help=f"input size in pixels ({MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE})")
    parser.add_argument("--train-size", type=int, default=defaults.train_size or 0,
                        help=f"cap on training images (0 = all; synthetic: at most {MAX_SYNTHETIC_TRAIN_SIZE:,})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for data, weights and batch order")
    add_cache_argument(parser)


def register(subparsers):
    parser = subparsers.add_parser("train", help="train back-ends side by side")
    add_run_arguments(parser)
    parser.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                        help="settings from a JSON file (a run's config.json will do; - reads standard input); "
                             "the run options above are then ignored, except --runs-dir")
    parser.add_argument("--address", default=None,
                        help="train as one task on the Ray cluster at host:port (default $GAPDEMO_RAY_ADDRESS; "
                             "neither: in this process)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0,
                        help="on a cluster: CPUs the run asks for; TensorFlow's thread pools match (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="on a cluster: GPUs the run asks for")
    parser.add_argument("--run-id", default=None,
                        help="on a cluster: the run's folder name (another is chosen when it is taken)")
    parser.add_argument("--events", action="store_true",
                        help="on a cluster: one JSON line per update on stdout (state, node, progress)")
    parser.set_defaults(run=run)


def add_run_arguments(parser) -> None:
    """Every run setting, shared by train and sweep; config_from_args turns them into a RunConfig."""
    model_defaults, train_defaults = ModelConfig(), TrainConfig()
    add_data_arguments(parser)
    parser.add_argument("--backends", default=",".join(model_defaults.backends), help="comma-separated back-end keys")
    parser.add_argument("--epochs", type=int, default=train_defaults.epochs)
    parser.add_argument("--dropout", type=float, default=model_defaults.dropout_rate, help="dropout rate of fc_dropout")
    parser.add_argument("--bn-momentum", type=float, default=model_defaults.bn_momentum,
                        help="batch-norm momentum (0.99 = Keras default)")
    parser.add_argument("--no-bn-recalibration", action="store_true",
                        help=f"validate with batch norm's moving statistics as they are, not re-averaged over "
                             f"{train_defaults.recalibration_batches} training batches first")
    parser.add_argument("--batch-size", type=int, default=train_defaults.batch_size)
    parser.add_argument("--steps-per-execution", type=int, default=train_defaults.steps_per_execution,
                        help="batches per call into TensorFlow (progress and stop act once per call)")
    parser.add_argument("--learning-rate", type=float, default=train_defaults.learning_rate)
    parser.add_argument("--precision", choices=PRECISIONS, default=train_defaults.precision,
                        help=f"arithmetic of the layers (default float32: mixed bfloat16 trained 1.16x the images "
                             f"per second but ended a default run only 1.11x sooner). {bfloat16_support()[1]}")
    parser.add_argument("--runs-dir", default=train_defaults.runs_dir)
    parser.add_argument("--json", action="store_true", help="print the final result as one JSON object")


def config_from_args(args) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
                        train_size=args.train_size or None, seed=args.seed, cache_dir=args.cache_dir),
        model=ModelConfig(backends=parse_backends(args.backends), dropout_rate=args.dropout,
                          bn_momentum=args.bn_momentum, seed=args.seed),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                          seed=args.seed, runs_dir=args.runs_dir, recalibrate_bn=not args.no_bn_recalibration,
                          steps_per_execution=args.steps_per_execution, precision=args.precision),
    )


def run(args) -> int:
    config = config_from_file(args) if args.config_file else config_from_args(args)
    address = resolve_address(args.address)
    # deferred, both: they load numpy and the run folder's code, and every command is imported to build the parser
    if address:
        from gapdemo.commands.cluster_run import run_on_cluster

        return run_on_cluster(args, config, address)
    from gapdemo.commands.local_run import run_here

    return run_here(args, config)


def config_from_file(args) -> RunConfig:
    """The settings stored in --config FILE, with --runs-dir applied (train and sweep)."""
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
