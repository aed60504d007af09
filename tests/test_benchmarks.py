"""Smoke test of benchmarks/: every script runs with --quick, prints its table and writes its section.

The benchmarks themselves are too slow for CI; --quick uses 32x32 images and a few steps, and
--results points at a temporary RESULTS.md so benchmarks/RESULTS.md is never touched.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The benchmarks measure through Linux's /proc (CPU, memory, maps) and lock RESULTS.md with fcntl: they are
# Linux tools (README, "Supported systems"), so on macOS and Windows their smoke tests do not run.
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read Linux's /proc")
SCRIPTS = ["data_pipeline", "training", "cli_run", "efficiency", "memory", "duration", "pool", "outcome", "sweep", "real_photos",
           "cluster_runs", "precision"]


def run_quick(script: str, results: Path, timeout_s: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--quick",
                           "--results", str(results)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def check_output(completed: subprocess.CompletedProcess, results: Path, key: str) -> None:
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| " in completed.stdout and "|---" in completed.stdout  # the table
    text = results.read_text()
    assert f"<!-- {key}:begin -->" in text and f"<!-- {key}:end -->" in text
    assert f"{os.cpu_count()} cores" in text


def test_the_machine_line_does_without_a_load_average(monkeypatch):
    from benchmarks.common import load_average

    assert load_average().count(" / ") == 2
    monkeypatch.delattr(os, "getloadavg")  # as on Windows
    assert load_average() == "n/a"


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quick(script, tmp_path):
    results = tmp_path / "RESULTS.md"
    check_output(run_quick(script, results), results, script)


@pytest.mark.browser
def test_app_latency_runs_quick(tmp_path):
    results = tmp_path / "RESULTS.md"
    # a fresh server's first point, then three tiny watched runs, a CLI run and a second Start
    check_output(run_quick("app_latency", results, timeout_s=600), results, "app_latency")


@pytest.mark.browser
def test_worker_benchmark_runs_quick(tmp_path):
    results = tmp_path / "RESULTS.md"
    # the app as it is only, a first point (the page before the worker and the watched runs are left out of --quick)
    check_output(run_quick("worker", results, timeout_s=600), results, "worker")


def test_sections_are_replaced_not_duplicated(tmp_path):
    from benchmarks import common
    results = tmp_path / "RESULTS.md"
    common.write_section(results, "a", "A", "first")
    common.write_section(results, "b", "B", "other")
    common.write_section(results, "a", "A", "second")
    text = results.read_text()
    assert text.count("<!-- a:begin -->") == 1 and "second" in text and "first" not in text
    assert text.index("<!-- a:begin -->") < text.index("<!-- b:begin -->") and "other" in text


def test_precision_pairs_alternate_and_verdicts_compare_without_their_numbers():
    from benchmarks import precision
    from gapdemo.sweep.seeds import spread

    assert precision.run_order(3) == [(0, "float32"), (0, "mixed_bfloat16"), (1, "mixed_bfloat16"), (1, "float32"),
                                      (2, "float32"), (2, "mixed_bfloat16")]

    def conclusion(gap_gaps, fc_gaps):
        overfitting = {"backends": {"gap": {"final_gap": spread(gap_gaps)}, "fc": {"final_gap": spread(fc_gaps)}}}
        return precision.verdict_conclusion(overfitting, ("gap", "fc"))

    assert conclusion([0.02, 0.03, 0.04], [0.10, 0.12, 0.15]) == ("gap", "clearly")
    assert conclusion([0.02, 0.08, 0.04], [0.06, 0.12, 0.15]) == ("gap", "within the spread")
    assert conclusion([0.20], [0.10]) == ("fc", "no spread measured")


def test_precision_without_bfloat16_keeps_float32_and_says_why(tmp_path, monkeypatch, capsys):
    from benchmarks import precision

    monkeypatch.setattr(precision, "bfloat16_support", lambda: (False, "This processor has no bfloat16 instructions."))
    monkeypatch.setattr(precision, "train_once", lambda *args: pytest.fail("nothing may train without bfloat16"))
    precision.main(["--quick", "--results", str(tmp_path / "RESULTS.md")])
    text = (tmp_path / "RESULTS.md").read_text()
    assert "not measured: This processor has no bfloat16 instructions." in text
    assert "keep float32 as the default" in text and "<!-- precision:begin -->" in text
