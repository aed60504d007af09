"""A sweep on Ray vs the same trials one after another in one process, side by side.

Small convolutions scale badly across threads: one two-thread process trains slower than two
one-thread processes side by side. A sweep runs its trials as one-CPU Ray trials, two at a time on
two cores, so it should beat training the same runs in turn, Ray's start-up included.

  in turn   TrainingJob.run() for each trial's config, in one fresh process, TensorFlow's default threads
  sweep     gapdemo.sweep.execution.run_sweep: a local Ray started on demand, one CPU per trial

Trials: dropout 0.3 and 0.6 x 4 seeds = 8 (--seeds 2 gives the 4 of the first version).
Targets: sweep wall time <= 0.87 x in turn; Ray start-up to the first running trial < 10 s.
Usage: python -m benchmarks.sweep [--quick] [--repeats 2] [--seeds 4] [--results PATH]
"""

from __future__ import annotations

import tempfile
import time

from benchmarks import common

KEY, TITLE = "sweep", "8. Sweeps on Ray vs the same trials in turn"
RATIO_TARGET = 0.87
STARTUP_TARGET_S = 10.0


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=2,
                        help="pairs of measurements, in alternating order (in turn, sweep; sweep, in turn; ...)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=4,
                        help="seeds per dropout rate: 4 gives 8 trials, 4 per worker (a mean ± std needs "
                             "more than 2 seeds); 2 gives the 4 trials of this benchmark's first version")


def sizes(args) -> dict:
    if args.quick:
        return {"image_size": 32, "train_size": 48, "batch_size": 16, "epochs": 1, "backends": ("gap",), "seeds": 2}
    return {"image_size": args.image_size, "train_size": args.train_size, "batch_size": 64,
            "epochs": args.epochs, "backends": ("fc", "fc_dropout", "gap"), "seeds": args.seeds}


def base_config(size: dict, runs_dir: str):
    from gapdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    return RunConfig(data=DataConfig(image_size=size["image_size"], train_size=size["train_size"]),
                     model=ModelConfig(backends=size["backends"]),
                     train=TrainConfig(epochs=size["epochs"], batch_size=size["batch_size"], runs_dir=runs_dir))


GRID = {"dropout_rate": [0.3, 0.6]}  # x seeds: 2 grid points x 4 seeds = 8 trials by default


def train_in_turn(size: dict) -> float:
    """Seconds to train every trial in turn, in a fresh process (TensorFlow imported before the clock
    starts): in this one, a later repeat would reuse the compiled models and drawn data of the first."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as process:
        return process.submit(_train_in_turn_here, size).result()


def _train_in_turn_here(size: dict) -> float:
    import tensorflow  # noqa: F401  outside the clock: in the sweep, the workers' import is inside it

    from gapdemo.sweep.grid import expand_trials, trial_config
    from gapdemo.training.job import TrainingJob

    with tempfile.TemporaryDirectory() as runs_dir:
        base = base_config(size, runs_dir)
        start = time.perf_counter()
        for trial in expand_trials(GRID, size["seeds"]):
            job = TrainingJob(trial_config(base, trial, runs_dir))
            if job.run() != "finished":
                raise RuntimeError(f"trial failed: {job.snapshot().message}")
        return time.perf_counter() - start


def train_as_sweep(size: dict) -> tuple[float, float, int]:
    """(wall seconds, seconds from the call to the first running trial, trials finished)."""
    from gapdemo.sweep.execution import run_sweep

    first_running = []
    with tempfile.TemporaryDirectory() as runs_dir:
        start = time.perf_counter()

        def note_first_running(snapshot: dict) -> None:
            if not first_running and any(entry.get("state") == "running" for entry in snapshot.values()):
                first_running.append(time.perf_counter() - start)

        result = run_sweep(base_config(size, runs_dir), GRID, size["seeds"], max_concurrent=2, cpus_per_trial=1,
                           on_update=note_first_running)
        wall = time.perf_counter() - start
    finished = sum(trial["state"] == "finished" for trial in result["trials"])
    return wall, (first_running or [float("nan")])[0], finished


def measure_pairs(size: dict, repeats: int) -> list[dict]:
    """Per repeat: in-turn and sweep seconds, measured next to each other, the order alternating."""
    pairs = []
    for repeat in range(repeats):
        pair = {}
        for candidate in ("in_turn", "sweep") if repeat % 2 == 0 else ("sweep", "in_turn"):
            if candidate == "in_turn":
                pair["in_turn"] = train_in_turn(size)
            else:
                pair["sweep"], pair["startup"], pair["finished"] = train_as_sweep(size)
            print(f"  repeat {repeat + 1}: {candidate} {pair.get(candidate):.1f} s (load {common.load_average()})",
                  flush=True)
        pairs.append(pair)
    return pairs


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    size = sizes(args)
    load_before = common.load_average()
    pairs = measure_pairs(size, 1 if args.quick else args.repeats)
    in_turn, sweep_wall = (common.median([p[key] for p in pairs]) for key in ("in_turn", "sweep"))
    ratio = common.median([p["sweep"] / p["in_turn"] for p in pairs])
    startup = common.median([p["startup"] for p in pairs])
    each = "; ".join(f"{p['sweep']:.1f} / {p['in_turn']:.1f} = {p['sweep'] / p['in_turn']:.2f}" for p in pairs)
    trials = len(GRID["dropout_rate"]) * size["seeds"]
    rows = [
        [f"{trials} trials in turn, one process", f"{in_turn:.1f}", "1.00", ""],
        [f"{trials} trials as a sweep on Ray (2 at a time, 1 CPU each)", f"{sweep_wall:.1f}", f"{ratio:.2f}",
         f"target <= {RATIO_TARGET}: {common.verdict(ratio, RATIO_TARGET)}"],
        ["Ray start-up to the first running trial", f"{startup:.1f}", "",
         f"target < {STARTUP_TARGET_S:.0f} s: {common.verdict(startup, STARTUP_TARGET_S)}"],
    ]
    table = common.format_table(["candidate", "wall s (median)", "ratio", "verdict"], rows)
    notes = [f"Trials: {size['image_size']} px, {size['train_size']} training images, {size['epochs']} epochs, "
             f"back-ends {', '.join(size['backends'])}; grid dropout_rate 0.3, 0.6 x {size['seeds']} seeds; "
             f"{min(p['finished'] for p in pairs)}/{trials} trials finished in every sweep. The sweep's time includes "
             "starting Ray, each trial's process importing TensorFlow, and sending every epoch's new files home.",
             f"{len(pairs)} pair(s) in alternating order; the ratio is the median of each pair's sweep / in turn "
             f"({each}). Every trial after a process's first reuses its compiled model (gapdemo.model.compiled_cache; the "
             "dropout rate is a variable, so the grid's two rates share one trace): in turn the first trial "
             "traces, in the sweep each worker's first. Each in-turn measurement runs in a fresh process, its "
             "clock started after importing TensorFlow (so nothing carries over from an earlier repeat)."]
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
