"""The CLI's default run as a newcomer types it: wall time, CPU busy and idle seconds, against the engine before #17.

  cli        python -m gapdemo train (synthetic, 100 px, 2,000 images, 10 epochs, fc + fc_dropout + gap)
  baseline   the same command and settings, its run trained by the engine before #17
             (benchmarks.baseline.BaselineTrainer: no compiled-model cache, Keras' step over the summed loss, tf.data's
             autotuning on, so deleting each autotuned iterator waits for the tuner's thread). The product
             has no such option: a child `python -m benchmarks.cli_run --baseline-child <train options>`
             runs gapdemo's own CLI (gapdemo.cli.main) with every job's trainer swapped for that baseline

Each run is a fresh process. Its CPU time is exact (the reaped child's rusage); while it trains, its
CPU is also read from /proc every 0.5 s, from the first progress line with images/s to its exit, so
seconds of idle cores (under a quarter of one core) show where the gaps were. Runs alternate
(cli, baseline, then baseline, cli, ...). Targets: the default run keeps >= 180% CPU busy of the 200%
two cores offer, and takes <= 0.85 x the baseline's wall time.
Usage: python -m benchmarks.cli_run [--quick] [--repeats N] [--results PATH]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks import common
from gapdemo import cli
from gapdemo.training.job import TrainingJob

KEY, TITLE = "cli_run", "1b. The CLI's default run: idle gaps and CPU busy"
BUSY_TARGET = 1.80  # CPU seconds per wall second over the training (2 cores = 2.00)
WALL_TARGET = 0.85  # wall(cli) / wall(baseline)
SAMPLE_SECONDS = 0.5
IDLE_BELOW = 0.25  # CPU seconds per second under which a sample counts as idle
BASELINE_CHILD = "--baseline-child"  # first argument of the child that trains through the baseline
QUICK_ARGUMENTS = ["--image-size", "32", "--train-size", "128", "--epochs", "3", "--batch-size", "16",
                   "--backends", "fc,gap"]


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=2, help="runs of each candidate (alternating order)")


class StderrWatcher(threading.Thread):
    """Reads the CLI's stderr; notes when the first progress line with images/s appeared."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.first_batch, self.tail = stream, None, b""

    def run(self) -> None:
        for chunk in iter(lambda: self.stream.read1(4096), b""):
            if self.first_batch is None and b"img/s" in self.tail[-200:] + chunk:
                self.first_batch = time.perf_counter()
            self.tail = (self.tail + chunk)[-4000:]


def run_cli(arguments: list[str], runs_dir: str, baseline: bool = False) -> dict:
    """One CLI run: wall and CPU seconds, CPU busy and idle seconds while training, the job's own time.

    baseline: the same command with its run trained by the engine before #17 (train_through_baseline).
    """
    command = ["benchmarks.cli_run", BASELINE_CHILD] if baseline else ["gapdemo", "train"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *command, *arguments, "--runs-dir", runs_dir, "--json"],
                               cwd=common.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = StderrWatcher(process.stderr)
    watcher.start()
    samples = []  # (time, CPU seconds) while training
    while process.poll() is None:
        time.sleep(SAMPLE_SECONDS)
        cpu = common.process_cpu_seconds(process.pid)
        if watcher.first_batch is not None and cpu is not None:
            samples.append((time.perf_counter(), cpu))
    wall = time.perf_counter() - started
    stdout = process.stdout.read().decode()
    watcher.join(5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode:
        raise RuntimeError(f"gapdemo train failed: {watcher.tail.decode(errors='replace')[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    rates = [(c2 - c1) / (t2 - t1) for (t1, c1), (t2, c2) in zip(samples[:-1], samples[1:], strict=True) if t2 > t1]
    training = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    status = json.loads(open(os.path.join(result["run_dir"], "status.json")).read())
    return {
        "wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "training_busy": (samples[-1][1] - samples[0][1]) / training if training else float("nan"),
        "idle_seconds": SAMPLE_SECONDS * sum(rate < IDLE_BELOW for rate in rates),
        "training_seconds": training, "job_seconds": float(status["elapsed_seconds"]),
    }


def measure(args) -> dict:
    arguments = QUICK_ARGUMENTS if args.quick else []
    repeats = 1 if args.quick else args.repeats
    runs = {"cli": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="gapdemo-cli-") as runs_dir:
        for repeat in range(repeats):
            for name in (["cli", "baseline"] if repeat % 2 == 0 else ["baseline", "cli"]):
                runs[name].append(run_cli(arguments, runs_dir, baseline=name == "baseline"))
                run = runs[name][-1]
                print(f"  {name}: {run['wall']:.1f} s wall, CPU busy {run['cpu'] / run['wall']:.0%} overall and "
                      f"{run['training_busy']:.0%} while training, {run['idle_seconds']:.1f} s idle "
                      f"(load {common.load_average()})", flush=True)
    return runs


def build_report(runs: dict, quick: bool):
    def median(name, field):
        return common.median([run[field] for run in runs[name]])

    ratios = [cli["wall"] / baseline["wall"] for cli, baseline in zip(runs["cli"], runs["baseline"], strict=True)]
    wall_ratio = common.median(ratios)
    busy = median("cli", "training_busy")
    rows = []
    for name, label in (("cli", "python -m gapdemo train (as shipped)"),
                        ("baseline", "the same, engine before #17 (no compiled-model cache, summed-loss step, "
                                     "tf.data autotuning on)")):
        overall = common.median([run["cpu"] / run["wall"] for run in runs[name]])
        rows.append([label, f"{median(name, 'wall'):.1f}", f"{median(name, 'job_seconds'):.1f}", f"{overall:.0%}",
                     f"{median(name, 'training_busy'):.0%}", f"{median(name, 'idle_seconds'):.1f}", "", ""])
    rows.append(["**CPU busy while training** (as shipped)", "", "", "", f"{busy:.0%}", "",
                 f">= {BUSY_TARGET:.0%}", common.verdict(busy, BUSY_TARGET, higher_is_better=True)])
    rows.append(["**wall time: as shipped / baseline**", f"{wall_ratio:.2f}", "", "", "", "",
                 f"<= {WALL_TARGET}", common.verdict(wall_ratio, WALL_TARGET)])
    table = common.format_table(["measure", "wall s", "job s", "CPU busy (whole process)", "CPU busy (training)",
                                 "idle s (training)", "target", "verdict"], rows)
    settings = " ".join(QUICK_ARGUMENTS) if quick else "the defaults"
    notes = [
        f"Setup: python -m gapdemo train at {settings}, a fresh process per run, {len(runs['cli'])} run(s) of each "
        "in alternating order; medians. 'job s' is the run's own elapsed_seconds (status.json: data, build, "
        "training, validation, saves), 'wall s' adds Python and TensorFlow start-up. CPU busy = CPU seconds per wall "
        "second (2 cores = 200%): over the whole process (exact, from the reaped child's rusage) and while training "
        f"(from /proc every {SAMPLE_SECONDS} s, first images/s line to exit). Idle s: samples under "
        f"{IDLE_BELOW:.0%} of one core while training.",
        "The whole-process figure includes importing TensorFlow, drawing the synthetic pets and tracing the "
        "training step, which use about one core.",
    ]
    if busy < BUSY_TARGET:
        idle, training = median("cli", "idle_seconds"), median("cli", "training_seconds")
        notes.append(f"CPU busy missed ({busy:.0%}): idle samples were {idle:.1f} s of {training:.0f} s of training; "
                     "the rest of the shortfall is inside the busy seconds (the training step's own use of the two "
                     "cores: benchmarks/RESULTS.md, section 3, and the baseline's row).")
    return table, notes


def train_through_baseline(arguments: list[str]) -> int:
    """python -m gapdemo train arguments, in this process, every job trained by benchmarks.baseline.BaselineTrainer."""
    # deferred: it imports TensorFlow, which only this child needs (the parent measures, never trains)
    from benchmarks.baseline import BaselineJob

    TrainingJob.new_trainer = BaselineJob.new_trainer  # the CLI's job (a TrainingJob) trains through the baseline
    return cli.main(["train", *arguments])


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BASELINE_CHILD]:
        sys.exit(train_through_baseline(argv[1:]))
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    load_before = common.load_average()
    runs = measure(args)
    table, notes = build_report(runs, args.quick)
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
