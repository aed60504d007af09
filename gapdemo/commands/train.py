"""python -m gapdemo train: train back-ends in lockstep, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from gapdemo.commands import parse_backends
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
from gapdemo.precision import PRECISION_LABELS, PRECISIONS, bfloat16_support


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
    # benchmarks only (benchmarks/cli_run.py): the engine before the idle gaps between epochs were removed
    parser.add_argument("--engine-baseline", action="store_true", help=argparse.SUPPRESS)
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
                        help=f"arithmetic of the layers. {bfloat16_support()[1]}")
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
    from gapdemo.job import TrainingJob
    from gapdemo.serving import operator_says_served

    job = TrainingJob(config_from_args(args), served=operator_says_served(), engine_baseline=args.engine_baseline)
    thread = threading.Thread(target=job.run, name="gapdemo-training", daemon=True)
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: job.stop())
    thread.start()
    print_progress_until_done(job)
    thread.join()
    snapshot = job.snapshot()
    if snapshot.state == "failed":
        print(f"error: {snapshot.message}", file=sys.stderr)
    final = final_metrics(snapshot.epoch_metrics)
    precision = snapshot.config.train.precision
    if args.json:
        print(json.dumps({"run_id": job.run_id, "run_dir": str(job.run_dir), "status": snapshot.state,
                          "precision": precision,
                          "epochs_completed": max((r["epoch"] for r in snapshot.epoch_metrics), default=0),
                          "backends": final}))
    else:
        print(f"run {job.run_id}: {snapshot.state} ({job.run_dir}), {PRECISION_LABELS[precision]}")
        for backend, values in final.items():
            print(f"  {backend:<16} train acc {values['accuracy']:.3f}  val acc {values['val_accuracy']:.3f}")
    return 1 if snapshot.state == "failed" else 0


def final_metrics(epoch_rows: list[dict]) -> dict:
    final = {}
    for row in epoch_rows:  # rows come in epoch order, so the last one per back-end wins
        final[row["backend"]] = {k: row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    return final


NO_BATCH_ROWS = 2**62  # a snapshot's batch_start past every row: the progress bar needs none of them


def print_progress_until_done(job, width: int = 30) -> None:
    """One progress bar per epoch on stderr (epoch, images/s, time left); each epoch ends with its accuracies."""
    from gapdemo.commands.progress import ProgressLine, bar, format_time_left

    line, shown_rows, cache_note_shown = ProgressLine(), 0, False
    while not job.wait(0.5):
        snapshot = job.snapshot(batch_start=NO_BATCH_ROWS)
        shown_rows = print_finished_epochs(snapshot.epoch_metrics, shown_rows, line)  # above the next bar
        progress = snapshot.progress
        if snapshot.dataset_info.get("cache_note") and not cache_note_shown:  # where the images came from
            line.end()
            sys.stderr.write(f"{snapshot.dataset_info['cache_note']}\n")
            cache_note_shown = True
        if progress.get("phase") == "loading data":
            line.show(f"loading data: {progress.get('message', '')[:60]}")
        elif progress.get("phase") == "compiling":
            line.show(f"epoch 1/{progress['epochs']} {bar(0.0, width)} compiling the training step")
        elif "epoch" in progress:
            done = progress["batch"] / max(progress["batches_per_epoch"], 1)
            line.show(f"epoch {progress['epoch']}/{progress['epochs']} {bar(done, width)} "
                      f"{progress['images_per_second']:.0f} img/s {format_time_left(progress.get('eta_seconds'))}")
    print_finished_epochs(job.snapshot(batch_start=NO_BATCH_ROWS).epoch_metrics, shown_rows, line)
    line.end()


def print_finished_epochs(rows: list[dict], shown_rows: int, line) -> int:
    for row in rows[shown_rows:]:
        line.end()
        sys.stderr.write(f"  epoch {row['epoch']} {row['backend']}: acc {row['accuracy']:.3f} "
                         f"val_acc {row['val_accuracy']:.3f}\n")
    return len(rows)
