"""Run every benchmark in turn, each in its own process; the slow outcome benchmark runs last.

Usage: python -m benchmarks.run_all [--quick] [--results PATH] [--only a,b] [--skip a,b] [--seeds N]
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks import common

# cheapest first; precision (~25 min) and the outcome (minutes per seed) last so a cut-short session still has the rest
BENCHMARKS = ("data_pipeline", "training", "cli_run", "efficiency", "memory", "duration", "pool", "app_latency", "worker", "sweep", "cluster_runs", "real_photos",
              "precision", "outcome")


def add_arguments(parser) -> None:
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for the outcome benchmark")


def selected(args) -> list[str]:
    only = [name for name in args.only.split(",") if name]
    skip = {name for name in args.skip.split(",") if name}
    unknown = [name for name in [*only, *skip] if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}")
    return [name for name in (only or BENCHMARKS) if name not in skip]


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    failed = []
    for name in selected(args):
        command = [sys.executable, "-m", f"benchmarks.{name}", "--results", str(args.results)]
        command += ["--quick"] if args.quick else []
        if name == "outcome" and args.seeds is not None:
            command += ["--seeds", str(args.seeds)]
        print(f"=== {name} (load average {common.load_average()})", flush=True)
        start = time.perf_counter()
        if subprocess.run(command, cwd=common.REPO_ROOT).returncode:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
