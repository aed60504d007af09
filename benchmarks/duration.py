"""Duration: a run's training time as gapdemo.budget.duration estimates it before Start, against the run itself.

Each setting trains in a fresh process on the synthetic set, as a served page's worker would: the
process first makes the estimate a page makes before any run has trained (this machine's matmul peak
times the share of it lockstep training reaches), then trains, then makes the estimate a page makes
once a run has reported its images/s. A setting is SIZE/BATCH/TRAINING IMAGES/BACK-ENDS/EPOCHS
(back-ends joined by +). 'job s' is the run's own elapsed_seconds (data, build, training, validation,
saves). Usage: python -m benchmarks.duration [--quick] [--settings ...] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from benchmarks import common

KEY, TITLE = "duration", "6b. Training time: the estimate a served page checks, against the runs"


def add_arguments(parser) -> None:
    parser.add_argument("--settings", default="100/64/2000/fc+fc_dropout+gap/2,64/64/4000/gap/2,150/32/1000/fc+gap/2",
                        help="comma-separated SIZE/BATCH/TRAINING IMAGES/BACK-ENDS/EPOCHS")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one setting, trained in-process


def setting_config(setting: str, runs_dir: str):
    from gapdemo.config import RunConfig, tiny_config

    if setting == "quick":
        return tiny_config(runs_dir, ("gap",))
    size, batch, images, backends, epochs = setting.split("/")
    config = RunConfig()
    config.data.image_size, config.train.batch_size, config.data.train_size = int(size), int(batch), int(images)
    config.data.synthetic_size = max(config.data.synthetic_size, int(config.data.train_size / 0.8))
    config.model.backends, config.train.epochs, config.train.runs_dir = tuple(backends.split("+")), int(epochs), runs_dir
    return config


def child_main(args) -> None:
    """Estimate, train, estimate again; print one JSON line."""
    from gapdemo.budget.duration import TrainingRate, estimate_training_seconds
    from gapdemo.training.job import TrainingJob

    with tempfile.TemporaryDirectory(prefix="gapdemo-duration-") as runs_dir:
        config = setting_config(args.child, runs_dir)
        before = estimate_training_seconds(config, TrainingRate())  # no run yet: the matmul peak
        job = TrainingJob(config)
        rates = []
        job.add_batch_rows = _recording(job.add_batch_rows, rates)
        if job.run() != "finished":
            raise SystemExit(f"run ended {job.state}: {job.snapshot().message}")
        observed = TrainingRate()
        observed.observe(job.run_id, config, common.median(rates[len(rates) // 2:]))  # the run's steady rate
        print("RESULT " + json.dumps({"before": before, "after": estimate_training_seconds(config, observed),
                                      "job_seconds": job.snapshot().elapsed_seconds}))


def _recording(add_batch_rows, rates: list):
    """add_batch_rows that also keeps the images/s each batch's progress reports (what a page's worker sends)."""
    def record(rows, progress):
        if progress.get("images_per_second"):
            rates.append(float(progress["images_per_second"]))
        return add_batch_rows(rows, progress)

    return record


def measured_row(setting: str, args) -> tuple[list[str], float, float]:
    command = [sys.executable, "-m", "benchmarks.duration", "--child", setting, "--results", str(args.results)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=common.REPO_ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        sys.stderr.write(completed.stderr[-3000:])
        raise RuntimeError(f"duration child at {setting} failed (exit {completed.returncode})")
    result = json.loads(lines[-1][len("RESULT "):])
    job = result["job_seconds"]
    before, after = result["before"] / job - 1, result["after"] / job - 1
    row = [setting, f"{job:,.1f}", f"{result['before']:,.1f}", f"{100 * before:+.0f}%",
           f"{result['after']:,.1f}", f"{100 * after:+.0f}%"]
    return row, before, after


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    if args.child is not None:
        child_main(args)
        return
    load_before = common.load_average()
    settings = ["quick"] if args.quick else args.settings.split(",")
    rows = []
    for setting in settings:
        print(f"duration: {setting} ...", flush=True)
        rows.append(measured_row(setting, args)[0])
    table = common.format_table(["setting (px/batch/images/back-ends/epochs)", "job s", "estimate before any run s",
                                 "its error", "estimate from the run's images/s s", "its error"], rows)
    notes = ["The estimate counts training images x epochs x back-ends x image size² (validation and batch-norm "
             "recalibration as forward passes over a tenth of the images each); 'before any run' prices that at "
             "the machine's numpy matmul peak (measured for 0.2 s) times the share lockstep training reached in "
             "section 3, 'from the run's images/s' at the median of the run's own reported rates over "
             "its second half. Neither counts loading the data, building the model or saving it, so short runs "
             "take longer than estimated; the 30-minute bound is about long runs, where those are a small share."]
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
