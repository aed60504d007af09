"""Memory: peak resident memory of a TrainingJob, measured and as gapdemo.budget.memory estimates it.

Each setting runs in its own process on the synthetic set, for 1 epoch by default: the peak is reached
in the first epoch (data arrays + the pipeline's copy + activations of a batch + the first saves).
A setting is SIZE or SIZE/BATCH/TRAINING IMAGES/BACK-ENDS (back-ends joined by +); the rest are the
defaults (2000 training images, fc/fc_dropout/gap, batch 64). The default four: 100 and 200 px at the
defaults, 64 px with batch 128, 8,000 images and GAP alone, and 150 px with batch 32, 4,000 images, FC
and GAP: the settings gapdemo.budget.memory's estimate was fitted to, each row showing its error. The peak is the child's ru_maxrss (os.wait4), cross-checked with its own /proc
VmHWM. Target: < 3 GB at 100x100. Usage: python -m benchmarks.memory [--quick] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import common

KEY, TITLE = "memory", "6. Peak memory of a three-back-end run"
TARGET_MB = 3 * 1024  # at 100x100


def add_arguments(parser) -> None:
    parser.add_argument("--settings", default="100,200,64/128/8000/gap,150/32/4000/fc+gap",
                        help="comma-separated settings: SIZE or SIZE/BATCH/TRAINING IMAGES/BACK-ENDS")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one setting, trained in-process


def setting_config(setting: str, runs_dir: str, epochs: int = 1):
    """The RunConfig of one setting (see the module's docstring)."""
    from gapdemo.config import RunConfig

    config = RunConfig()
    parts = setting.split("/")
    config.data.image_size = int(parts[0])
    if len(parts) > 1:
        config.train.batch_size, config.data.train_size = int(parts[1]), int(parts[2])
        config.data.synthetic_size = max(config.data.synthetic_size, int(config.data.train_size / 0.8))
        config.model.backends = tuple(parts[3].split("+"))
    config.train.runs_dir, config.train.epochs = runs_dir, epochs
    return config


def child_config(args, runs_dir: str):
    from gapdemo.config import tiny_config

    if args.quick:
        return tiny_config(runs_dir, ("gap",))  # the smoke test: one small back-end
    return setting_config(args.child, runs_dir, args.epochs)


def child_main(args) -> None:
    """Train once in this process; print one JSON line with RSS at each stage (MiB)."""
    import keras  # noqa: F401  the import floor counts: TensorFlow alone is several hundred MiB

    from gapdemo.data.sources import load_data
    from gapdemo.training.job import TrainingJob

    stages = {"after importing TensorFlow": common.current_rss_mb()}
    data_bytes = {}

    def measured_loader(config, batch_size, progress=None):
        data = load_data(config, batch_size, progress)
        stages["after loading data"] = common.current_rss_mb()
        # .nbytes of the split itself: np.asarray would read a cached split's images into a copy
        data_bytes["validation+test"] = int(data.validation_images.nbytes + data.test_images.nbytes)
        data_bytes["train"] = int(data.info.splits["train"] * config.image_size ** 2 * 3)
        return data

    with tempfile.TemporaryDirectory(prefix="gapdemo-memory-") as runs_dir:
        config = child_config(args, runs_dir)
        job = TrainingJob(config, data_loader=measured_loader)
        state = job.run()
        if state != "finished":
            raise SystemExit(f"run ended {state}: {job.snapshot().message}")
    stages["end of run"] = common.current_rss_mb()
    peak = common.peak_rss_mb()
    activations = activation_bytes(config)
    print("RESULT " + json.dumps({"stages": stages, "peak_mb": peak, "data_bytes": data_bytes,
                                  "activation_bytes": activations,
                                  "image_size": config.data.image_size,
                                  "train_images": config.data.train_size, "epochs": config.train.epochs}))


def activation_bytes(config) -> int:
    """Float32 bytes of every layer output of one training batch (what backprop keeps), all heads."""
    from gapdemo.model.backends import build_lockstep_models

    model = build_lockstep_models(config.model.backends, config.data.image_size).training_model
    values = 0
    for layer in model.layers[1:]:  # not the input
        values += sum(int(np.prod(output.shape[1:])) for output in _outputs(layer))
    return 4 * values * config.train.batch_size


def _outputs(layer) -> list:
    output = layer.output
    return list(output) if isinstance(output, (list, tuple)) else [output]


def run_child(setting: str, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.memory", "--child", setting, "--epochs", str(args.epochs),
               "--results", str(args.results)] + (["--quick"] if args.quick else [])
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=output, stderr=errors, text=True, cwd=common.REPO_ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        lines = [line for line in output.read().splitlines() if line.startswith("RESULT ")]
        if process.returncode or not lines:
            sys.stderr.write(errors.read()[-3000:])
            raise RuntimeError(f"memory child at {setting} failed (exit {process.returncode})")
    result = json.loads(lines[-1][len("RESULT "):])
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024.0  # KiB on Linux
    return result


def setting_label(setting: str) -> str:
    parts = setting.split("/")
    label = f"{parts[0]}x{parts[0]}"
    return label if len(parts) == 1 else f"{label}, batch {parts[1]}, {int(parts[2]):,} images, {parts[3]}"


def measured_row(setting: str, args) -> tuple[list[str], str, float]:
    """One setting's table row, its note, and the estimate's error (estimated / measured - 1)."""
    from gapdemo.budget.memory import estimate_peak_bytes

    result = run_child(setting, args)
    peak = max(result["ru_maxrss_mb"], result["peak_mb"])
    estimate = estimate_peak_bytes(child_config(argparse.Namespace(quick=args.quick, child=setting,
                                                                   epochs=args.epochs), "runs")) / 2**20
    stages, error = result["stages"], estimate / peak - 1
    is_default = setting == "100" and not args.quick
    row = [setting_label(setting) if not args.quick else "32x32 (quick)", f"{peak:,.0f}", f"{estimate:,.0f}",
           f"{100 * error:+.1f}%", f"{stages['after importing TensorFlow']:,.0f}",
           f"{stages['after loading data']:,.0f}", f"{sum(result['data_bytes'].values()) / 2 ** 20:,.0f}",
           f"{result['activation_bytes'] / 2 ** 20:,.0f}", f"< {TARGET_MB:,} MiB" if is_default else "",
           common.verdict(peak, TARGET_MB) if is_default else ""]
    note = (f"{row[0]}: {result['train_images']} training images, {result['epochs']} epoch(s); ru_maxrss "
            f"{result['ru_maxrss_mb']:,.0f} MiB, VmHWM {result['peak_mb']:,.0f} MiB, RSS at the end "
            f"{stages['end of run']:,.0f} MiB.")
    return row, note, error


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    if args.child is not None:
        child_main(args)
        return
    load_before = common.load_average()
    settings = ["32"] if args.quick else args.settings.split(",")
    rows, notes, errors = [], [], []
    for setting in settings:
        print(f"memory: {setting} ...", flush=True)
        row, note, error = measured_row(setting, args)
        rows.append(row)
        notes.append(note)
        errors.append(abs(error))
    table = common.format_table(["setting", "peak MiB", "estimated MiB", "estimate's error", "after TF import",
                                 "after data", "image arrays MiB", "layer outputs / batch MiB", "target",
                                 "verdict"], rows)
    notes.append(f"The estimate (gapdemo.budget.memory.estimate_peak_bytes, what a served page checks against "
                 f"GAPDEMO_MAX_RUN_MEMORY before a run starts) was fitted, by least squares rounded up, to two runs "
                 f"of these four settings on 2026-12-07 (a floor of 1,000 MiB, the image arrays 1.65 times, 0.6 of "
                 f"a batch's layer outputs): no setting here is held out. Its largest error here is "
                 f"{100 * max(errors):.1f}%; it errs high, so a served page refuses a little early rather than late.")
    notes.append("'Layer outputs / batch' adds up every layer's float32 output for one training batch over all heads "
                 "(the activations backprop keeps): it grows with image size squared, and the first block's "
                 "full-resolution conv, BN and ReLU outputs dominate it. The peak beyond TensorFlow's import "
                 "floor follows it, not the image arrays.")
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
