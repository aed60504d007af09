"""The tutorial's outcome on our default data: accuracy and train-validation gap over several seeds.

Each seed trains RunConfig() defaults (synthetic, 100x100, 2000 training images, 10 epochs, batch 64,
fc / fc_dropout / gap) with that seed for data, weights and batch order. Expected shape: fc overfits
clearly (gap >= 5 points); gap's train-val gap < half of fc's; gap's val accuracy >= fc's.
Slow (minutes per seed on 2 cores): the section is rewritten after every seed, so a cut-short run
still leaves its seeds, and --resume runs only the seeds it lacks.
Usage: python -m benchmarks.outcome [--quick] [--seeds N] [--resume] [--results PATH]
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time

from benchmarks import common
from gapdemo.sweep.seeds import spread

KEY, TITLE = "outcome", "7. The tutorial's outcome on our default data"
CLEAR_OVERFIT = 0.05  # fc's train - val accuracy must reach this to count as overfitting clearly


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds already in the RESULTS section (same settings) and run only the others")


def seed_config(seed: int, runs_dir: str, quick: bool):
    from gapdemo.config import RunConfig, tiny_config

    config = tiny_config(runs_dir, ("fc", "gap")) if quick else RunConfig()
    config.train.runs_dir = runs_dir
    config.data.seed = config.model.seed = config.train.seed = seed
    return config


def train_seed(seed: int, runs_dir: str, quick: bool) -> tuple[dict, float, object]:
    """backend -> final-epoch row (accuracy, val_accuracy, ...) for one seed, its wall time and config."""
    from gapdemo.training.job import TrainingJob

    config = seed_config(seed, runs_dir, quick)
    job = TrainingJob(config)  # the real path: load_data draws the synthetic set for this seed
    start = time.perf_counter()
    state = job.run()
    elapsed = time.perf_counter() - start
    if state != "finished":
        raise RuntimeError(f"seed {seed} ended {state}: {job.snapshot().message}")
    rows = job.snapshot().epoch_metrics
    last_epoch = max(row["epoch"] for row in rows)
    common.fresh_keras()
    return {row["backend"]: row for row in rows if row["epoch"] == last_epoch}, elapsed, config


def mean_and_spread(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    over_seeds = spread(values)
    return f"{over_seeds['mean']:.3f} ± {over_seeds['std']:.3f}"


def summarize(per_seed: list[dict]) -> dict:
    backends = list(per_seed[0])
    summary = {}
    for backend in backends:
        train = [seed[backend]["accuracy"] for seed in per_seed]
        val = [seed[backend]["val_accuracy"] for seed in per_seed]
        summary[backend] = {"train": train, "val": val, "gap": [t - v for t, v in zip(train, val, strict=True)]}
    return summary


def build_report(per_seed: list[dict], seeds: list[int], seconds: list[float], config, planned: int):
    summary = summarize(per_seed)
    rows = [[backend, mean_and_spread(values["train"]), mean_and_spread(values["val"]),
             mean_and_spread(values["gap"]), ", ".join(f"{gap:+.3f}" for gap in values["gap"])]
            for backend, values in summary.items()]
    table = common.format_table(["back-end", "final train acc", "final val acc", "train − val gap",
                                 "gap per seed"], rows)
    notes = [f"Seeds {', '.join(map(str, seeds))} ({len(seeds)} of {planned} planned); mean ± standard deviation "
             f"over seeds. Settings: {config.data.dataset}, {config.data.image_size}x{config.data.image_size}, "
             f"{config.data.train_size} training images, {config.train.epochs} epochs, batch "
             f"{config.train.batch_size}, Adam {config.train.learning_rate:g}; {common.median(seconds):.0f} s per "
             "seed (median; the three back-ends train in lockstep)."]
    if "fc" in summary and "gap" in summary:
        mean = {b: {k: statistics.mean(v) for k, v in values.items()} for b, values in summary.items()}
        checks = [
            ("fc overfits clearly (train − val >= 0.05)", mean["fc"]["gap"] >= CLEAR_OVERFIT,
             f"{mean['fc']['gap']:+.3f}"),
            ("gap's train − val gap < half of fc's", mean["gap"]["gap"] < mean["fc"]["gap"] / 2,
             f"{mean['gap']['gap']:+.3f} vs {mean['fc']['gap'] / 2:+.3f}"),
            ("gap's val accuracy >= fc's", mean["gap"]["val"] >= mean["fc"]["val"],
             f"{mean['gap']['val']:.3f} vs {mean['fc']['val']:.3f}"),
        ]
        notes.append(common.format_table(["expected shape", "measured (means)", "verdict"],
                                         [[name, value, "met" if ok else "**missed**"] for name, ok, value in checks]))
    return table, notes


def settings_signature(config) -> str:
    """The config without its seeds and runs_dir: seeds run under equal signatures may be pooled."""
    values = config.to_dict()
    for part in ("data", "model", "train"):
        values[part].pop("seed", None)
    values["train"].pop("runs_dir", None)
    return json.dumps(values, sort_keys=True)


def stored_seeds(results_path, signature: str) -> dict:
    """Seeds an earlier run left in the section's data comment, when its settings match (for --resume)."""
    try:
        text = results_path.read_text()
    except OSError:
        return {}
    found = re.search(r"<!-- outcome-seeds (.*?) -->", text)
    if not found:
        return {}
    stored = json.loads(found.group(1))
    return {int(seed): values for seed, values in stored["seeds"].items()} if stored["settings"] == signature else {}


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    load_before = common.load_average()
    seeds = [args.first_seed] if args.quick else list(range(args.first_seed, args.first_seed + args.seeds))
    config = seed_config(seeds[0], "runs", args.quick)
    signature = settings_signature(config)
    done = stored_seeds(args.results, signature) if args.resume else {}
    with tempfile.TemporaryDirectory(prefix="gapdemo-outcome-") as runs_dir:
        for seed in seeds:
            if seed in done:
                print(f"outcome: seed {seed} kept from {args.results}", flush=True)
                continue
            print(f"outcome: seed {seed} ...", flush=True)
            final_rows, elapsed, config = train_seed(seed, runs_dir, args.quick)
            done[seed] = {"rows": {b: {k: row[k] for k in ("accuracy", "val_accuracy")}
                                   for b, row in final_rows.items()}, "seconds": elapsed}
            print("  " + ", ".join(f"{b}: train {r['accuracy']:.3f} val {r['val_accuracy']:.3f}"
                                   for b, r in final_rows.items()) + f" ({elapsed:.0f} s)", flush=True)
            order = sorted(done)
            table, notes = build_report([done[s]["rows"] for s in order], order,
                                        [done[s]["seconds"] for s in order], config, len(set(seeds) | set(done)))
            data = json.dumps({"settings": signature, "seeds": {str(s): done[s] for s in order}})
            common.report(args, KEY, TITLE, table, [*notes, f"<!-- outcome-seeds {data} -->"], load_before)


if __name__ == "__main__":
    main()
