"""Mixed bfloat16 against float32 at the defaults: speed, final accuracy and the claims' overfitting verdict.

Each run is `python -m gapdemo train --json` at RunConfig() defaults (synthetic, 100x100, 2,000 training
images, 10 epochs, batch 64, fc / fc_dropout / gap) in a fresh process, with --precision float32 or
mixed_bfloat16 and --seed 0, 1, 2, ... (the same seed for both runs of a pair). Pairs alternate their order
(f32 bf16, bf16 f32, f32 bf16, ...), so a slow spell of a shared machine falls on both precisions.
Per run: wall seconds (process start to exit), training images/s (the rate the run reports at each epoch's
end, which leaves out the epoch's first call; median over epochs) and each back-end's final validation
accuracy. Per precision: the claims' overfitting verdict over its seeds, computed as a claims job computes
it (gapdemo.claims.measures.overfitting_measures on each run's metrics, summarize_overfitting, overfitting_verdict).
Rule: if bf16 is at least 1.15x faster and the two verdicts agree, make it the default where the CPU
supports it; otherwise keep float32. About 25 minutes with 3 seeds on a quiet 2-core machine.
Usage: python -m benchmarks.precision [--quick] [--seeds N] [--results PATH]
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from gapdemo import runs
from gapdemo.claims import measures, summary
from gapdemo.claims import verdicts as claim_verdicts
from gapdemo.config import ModelConfig
from gapdemo.model.backends import BACKENDS
from gapdemo.model.precision import PRECISION_LABELS, PRECISIONS, bfloat16_support

KEY, TITLE = "precision", "3b. Mixed bfloat16 against float32 at the defaults"
SPEED_RULE = 1.15  # bf16 must be at least this much faster (by images/s and by wall time) to become the default
QUICK_ARGUMENTS = ["--image-size", "32", "--train-size", "128", "--epochs", "2", "--batch-size", "16"]
EPOCH_RATE = re.compile(r"epoch \d+/\d+: 100% \([^)]*?([\d.]+) img/s\)")  # the CLI's line at each epoch's end
FLOAT32, BFLOAT16 = PRECISIONS
DEFAULT_BACKENDS = ModelConfig().backends


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; each trains once in each precision")


def run_order(seeds: int) -> list[tuple[int, str]]:
    """(seed, precision) of every run: pairs of one seed, in alternating order (f32 bf16, bf16 f32, ...)."""
    order = []
    for seed in range(seeds):
        pair = PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]
        order += [(seed, precision) for precision in pair]
    return order


def train_once(seed: int, precision: str, runs_dir: str, quick: bool) -> dict:
    """One CLI run in its own process: wall seconds, images/s, final validation accuracy per back-end, run folder."""
    arguments = [*(QUICK_ARGUMENTS if quick else []), "--precision", precision, "--seed", str(seed),
                 "--runs-dir", runs_dir, "--json"]
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "gapdemo", "train", *arguments], cwd=common.REPO_ROOT,
                               capture_output=True, text=True)
    wall = time.perf_counter() - started
    if completed.returncode:
        raise RuntimeError(f"gapdemo train --precision {precision} --seed {seed} failed: {completed.stderr[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    rates = [float(rate) for rate in EPOCH_RATE.findall(completed.stderr)]
    status = runs.read_json(f"{result['run_dir']}/status.json")
    return {"seed": seed, "precision": precision, "wall": wall, "job_seconds": float(status["elapsed_seconds"]),
            "images_per_second": common.median(rates) if rates else math.nan, "run_dir": result["run_dir"],
            "val_accuracy": {backend: values["val_accuracy"] for backend, values in result["backends"].items()}}


def measure(seeds: int, quick: bool) -> dict[str, list[dict]]:
    """precision -> its runs, in seed order."""
    measured = {precision: [] for precision in PRECISIONS}
    with tempfile.TemporaryDirectory(prefix="gapdemo-precision-") as runs_dir:
        for seed, precision in run_order(seeds):
            run = train_once(seed, precision, runs_dir, quick)
            run["overfitting"] = measures.overfitting_measures(runs.read_epoch_metrics(run["run_dir"]))
            measured[precision].append(run)
            print(f"  seed {seed} {precision}: {run['wall']:.1f} s wall, {run['images_per_second']:.0f} img/s, val acc "
                  + ", ".join(f"{b} {acc:.3f}" for b, acc in run["val_accuracy"].items())
                  + f" (load {common.load_average()})", flush=True)
    for precision_runs in measured.values():
        precision_runs.sort(key=lambda run: run["seed"])
    return measured


def overfitting_verdict(precision_runs: list[dict]) -> tuple[str, tuple]:
    """The claims' overfitting verdict over these runs' seeds (as gapdemo.claims.over_seeds.summarize words it), and
    its conclusion without numbers (verdict_conclusion), which is what the two precisions must agree on."""
    overfitting = summary.summarize_overfitting([run["overfitting"] for run in precision_runs])
    pair = summary.comparison_pair(DEFAULT_BACKENDS)
    return claim_verdicts.overfitting_verdict(overfitting, pair), verdict_conclusion(overfitting, pair)


def verdict_conclusion(overfitting: dict, pair) -> tuple:
    """(back-end with the smaller final train - validation gap, how the seeds' ranges compare: "clearly" when
    they are apart, "within the spread" when they overlap, "no spread measured" with one seed), as the
    verdict's own spread note (gapdemo.claims.verdicts.spread_note) tells them apart."""
    if pair is None:
        return ()
    first, second = (overfitting["backends"][backend]["final_gap"] for backend in pair)
    smaller = pair[0] if first["mean"] <= second["mean"] else pair[1]
    if min(first["count"], second["count"]) < 2:
        return smaller, "no spread measured"
    return smaller, "within the spread" if claim_verdicts.ranges_overlap(first, second) else "clearly"


def conclusion_words(conclusion: tuple) -> str:
    if not conclusion:
        return "no pooling and dense pair to compare"
    smaller, separation = conclusion
    return f"{BACKENDS[smaller].label} overfits less ({separation})"


def speed_ratios(measured: dict) -> dict[str, float]:
    """bf16 over f32, medians of the ratios within each seed's pair: by images/s, and by wall time (f32 / bf16)."""
    pairs = list(zip(measured[FLOAT32], measured[BFLOAT16], strict=True))
    return {"images/s": common.median([bf16["images_per_second"] / f32["images_per_second"] for f32, bf16 in pairs]),
            "wall time": common.median([f32["wall"] / bf16["wall"] for f32, bf16 in pairs])}


def decision(ratios: dict[str, float], agree: bool, quick: bool) -> str:
    """The rule's answer, in one line."""
    faster = all(ratio >= SPEED_RULE for ratio in ratios.values())
    measured = ", ".join(f"{ratio:.2f}x by {name}" for name, ratio in ratios.items())
    verdicts = "the overfitting verdicts agree" if agree else "the overfitting verdicts differ"
    answer = ("make mixed bfloat16 the default where the CPU supports it" if faster and agree
              else "keep float32 as the default")
    caveat = " Quick (smoke) sizes: this answer decides nothing." if quick else ""
    return (f"**Decision**: bf16 is {measured} (rule: at least {SPEED_RULE}x on both) and {verdicts}: "
            f"{answer}.{caveat}")


def median_of(precision_runs: list[dict], value) -> float:
    return common.median([value(run) for run in precision_runs])


def precision_rows(measured: dict, verdicts: dict) -> list[list[str]]:
    """One row per measure, one column per precision; verdicts: precision -> overfitting_verdict's answer."""
    medians = [("median wall s (process start to exit)", lambda run: run["wall"], "{:.1f}"),
               ("median job s (status.json)", lambda run: run["job_seconds"], "{:.1f}"),
               ("median training img/s", lambda run: run["images_per_second"], "{:.0f}")]
    medians += [(f"median final val accuracy, {BACKENDS[backend].label}",
                 lambda run, backend=backend: run["val_accuracy"][backend], "{:.3f}") for backend in DEFAULT_BACKENDS]
    rows = [["runs (seeds)", *[f"{len(measured[p])} ({', '.join(str(run['seed']) for run in measured[p])})"
                               for p in PRECISIONS]]]
    rows += [[label, *[form.format(median_of(measured[p], value)) for p in PRECISIONS]]
             for label, value, form in medians]
    rows.append(["overfitting verdict, in short (below in full)",
                 *[conclusion_words(verdicts[p][1]) for p in PRECISIONS]])
    return rows


def build_report(measured: dict, quick: bool) -> tuple[str, list[str]]:
    verdicts = {precision: overfitting_verdict(measured[precision]) for precision in PRECISIONS}
    table = common.format_table(["measure", *[PRECISION_LABELS[p] for p in PRECISIONS]],
                                precision_rows(measured, verdicts))
    ratios = speed_ratios(measured)
    ratio_table = common.format_table(
        ["speed ratio bf16 / f32", "measured", "rule", "verdict"],
        [[name, f"{ratio:.2f}", f">= {SPEED_RULE}", common.verdict(ratio, SPEED_RULE, higher_is_better=True)]
         for name, ratio in ratios.items()])
    agree = verdicts[FLOAT32][1] == verdicts[BFLOAT16][1]
    settings = " ".join(QUICK_ARGUMENTS) if quick else "the defaults"
    notes = [*[f"Overfitting verdict (claims), {PRECISION_LABELS[p]}: {verdicts[p][0]}" for p in PRECISIONS],
             ratio_table, decision(ratios, agree, quick),
             f"Setup: python -m gapdemo train at {settings} (back-ends {', '.join(DEFAULT_BACKENDS)}), a fresh process "
             f"per run, seeds 0 to {len(measured[FLOAT32]) - 1}, each seed once per precision in alternating order; "
             "medians. Speed ratios are medians of the ratios within each seed's pair (images/s: bf16 / f32; wall: "
             "f32 / bf16). The verdicts agree when they name the same back-end as overfitting less and compare "
             "its gap with the other's alike: clearly (ranges over seeds apart), within the spread, or one seed."]
    return table, notes


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1, got {args.seeds}")
    load_before = common.load_average()
    supported, sentence = bfloat16_support()
    if not supported:  # the gate refuses mixed bfloat16 here: nothing to compare, float32 stays
        table = common.format_table(["measure", "answer"], [["mixed bfloat16", f"not measured: {sentence}"]])
        common.report(args, KEY, TITLE, table, ["**Decision**: keep float32 as the default on this machine."],
                      load_before)
        return
    measured = measure(1 if args.quick else args.seeds, args.quick)
    table, notes = build_report(measured, args.quick)
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
