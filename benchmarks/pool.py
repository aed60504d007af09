"""Pool: what pooling a class's runs costs: measuring one run's claims once, and redrawing the pooled table.

A run is trained at the default settings (synthetic pets, 100 px, FC + FC-dropout + GAP, 2000 training
images) for --epochs epochs: measuring a run's claims scores its saved models on the test split and on
shifted and boxed synthetic images, and times training steps, so its cost does not grow with the epochs
trained. Then: measure_run in this process (TensorFlow already imported), and the page's way, a fresh
`python -m gapdemo claims --pool` process measuring one copy of the run. The redraw is the Claims tab's
read-only path (scan the folder, read every run's measures, the statistics, the table rows and the strip
plot) over --runs copies of the measured run, each copy's measures file rewritten with its own id.
Usage: python -m benchmarks.pool [--quick] [--epochs N] [--runs N] [--results PATH]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

KEY, TITLE = "pool", "6c. Pooled claims: measuring a run once, redrawing the class's table"


def add_arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the measured run (its cost is per run)")
    parser.add_argument("--runs", type=int, default=30, help="measured runs in the redrawn table")


def trained_run(runs_dir: Path, args) -> Path:
    from gapdemo.config import RunConfig, tiny_config
    from gapdemo.training.job import TrainingJob

    config = tiny_config(str(runs_dir)) if args.quick else RunConfig()
    config.train.runs_dir, config.train.epochs = str(runs_dir), (1 if args.quick else args.epochs)
    job = TrainingJob(config)
    if job.run() != "finished":
        raise SystemExit(f"run ended {job.state}: {job.snapshot().message}")
    return job.run_dir


def copy_measured(run_dir: Path, runs_dir: Path, count: int) -> None:
    """count copies of a measured run, as runs copied in from other machines, each measures file naming its copy."""
    from gapdemo import runs
    from gapdemo.claims.measured import MEASURES_FILE

    for index in range(count):
        copy = runs_dir / f"20261207-{index:06d}-{index:04x}"
        shutil.copytree(run_dir, copy)
        measures = json.loads((copy / MEASURES_FILE).read_text())
        runs.write_json_atomic(copy / MEASURES_FILE, {**measures, "run_id": copy.name})


def redraw_seconds(runs_dir: Path) -> float:
    """One redraw of the pooled view's numbers and figure, as the Claims tab makes it."""
    from gapdemo.claims.charts import pooled_accuracy_figure
    from gapdemo.claims.groups import scan_pool
    from gapdemo.claims.pool import pooled_claims
    from gapdemo.claims.pool_table import pooled_rows

    started = time.perf_counter()
    scan = scan_pool(runs_dir)
    pooled = pooled_claims(runs_dir, scan.groups[0].key, scan=scan)
    pooled_rows(pooled.to_public())
    pooled_accuracy_figure(pooled.accuracies, scan.groups[0].backends, frozenset(), pooled.runs)
    if pooled.unmeasured:
        raise RuntimeError(f"{len(pooled.unmeasured)} copies were not read as measured")
    return time.perf_counter() - started


def command_seconds(run_dir: Path) -> float:
    """Wall time of the page's measuring job for one run: a fresh claims --pool process (imports included)."""
    with tempfile.TemporaryDirectory(prefix="gapdemo-pool-cli-") as folder:
        for name in ("20261207-000001-0001", "20261207-000002-0002"):  # a group needs two runs
            shutil.copytree(run_dir, Path(folder) / name, ignore=shutil.ignore_patterns("claims_measures.json"))
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "-m", "gapdemo", "claims", "--pool", "--runs-dir", folder,
                                    "--json"], capture_output=True, text=True, cwd=common.REPO_ROOT)
        if completed.returncode:
            raise RuntimeError(completed.stderr[-2000:])
        return (time.perf_counter() - started) / 2


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    from gapdemo.claims.measured import measure_run

    load_before = common.load_average()
    count = 3 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="gapdemo-pool-") as folder:
        runs_dir = Path(folder) / "runs"
        run_dir = trained_run(runs_dir, args)
        started = time.perf_counter()
        measure_run(run_dir)
        in_process = time.perf_counter() - started
        per_run_command = command_seconds(run_dir)
        table_dir = Path(folder) / "table"
        copy_measured(run_dir, table_dir, count)
        redraws = [redraw_seconds(table_dir) for _ in range(5)]
    setting = "tiny (32 px, quick)" if args.quick else "defaults (100 px, 3 back-ends, 2000 training images)"
    rows = [[f"measure one run's claims, {setting}", f"{in_process:,.1f}", "in this process"],
            ["the same, as the page's job does it", f"{per_run_command:,.1f}",
             "a fresh claims --pool process, its imports shared by the 2 runs it measured"],
            [f"redraw the pooled table of {count} measured runs", f"{common.median(redraws):,.3f}",
             f"median of 5; target < 1 s: {common.verdict(common.median(redraws), 1.0)}"]]
    table = common.format_table(["what", "seconds", "how"], rows)
    notes = ["Measuring runs once per run, when the Claims tab first pools it, in a job of the page's queue; "
             "its measures stay in the run's claims_measures.json, so a run is never measured twice. The redraw "
             "reads those files only (no TensorFlow): the table's copies hold one run's numbers, which costs the "
             "same to read as 30 different runs."]
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
