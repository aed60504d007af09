"""Bounded work on a served page: a run's training time is estimated before Start (images x epochs x
back-ends x image size², at this machine's measured rate) and refused past GAPDEMO_MAX_RUN_MINUTES."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_serving import open_page

from gapdemo import settings
from gapdemo.budget.duration import (
    TrainingRate,
    estimate_training_seconds,
    format_minutes,
    max_run_minutes,
    measure_matmul_gflops,
    training_units,
)
from gapdemo.config import RunConfig, tiny_config
from gapdemo.settings import SettingsError
from gapdemo.validation import validate_run_config


def changed(config: RunConfig, section: str, **values) -> RunConfig:
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})


def test_the_cost_grows_with_epochs_backends_and_the_square_of_the_image_size():
    base = RunConfig()
    units = training_units(base)
    assert training_units(changed(base, "train", epochs=2 * base.train.epochs)) == pytest.approx(2 * units)
    assert training_units(changed(base, "data", image_size=base.data.image_size // 2)) == pytest.approx(units / 4)
    one_backend = changed(base, "model", backends=("gap",))
    assert training_units(one_backend) == pytest.approx(units / len(base.model.backends))


def test_the_rate_comes_from_the_machine_then_from_the_runs_it_trained():
    rate = TrainingRate()
    assert measure_matmul_gflops(side=64, seconds=0.01) > 0
    assert rate.units_per_second() > 0  # no run yet: the matmul peak times the share training reaches
    config = RunConfig()
    pixels = len(config.model.backends) * config.data.image_size**2
    rate.matmul_units = 100.0 * pixels  # fixed, so the runs' figures below are within the bounds it sets
    rate.observe("run-a", config, 50.0)
    rate.observe("run-a", config, 100.0)  # the same run's newer figure replaces its older one
    assert rate.units_per_second() == pytest.approx(100.0 * pixels)
    rate.observe("run-b", changed(config, "model", backends=("gap",)), 300.0)  # 1 back-end: 300 images/s = 100 of 3
    rate.observe("run-c", config, 400.0)
    assert rate.units_per_second() == pytest.approx(100.0 * pixels)  # the median of the three runs
    assert estimate_training_seconds(config, rate) == pytest.approx(training_units(config) / (100.0 * pixels))


def test_a_runs_rate_counts_only_within_a_factor_of_the_machines():
    config = RunConfig()
    pixels = len(config.model.backends) * config.data.image_size**2
    rate = TrainingRate()
    rate.matmul_units = 100.0 * pixels
    rate.observe("batch-1", config, 1.0)  # a run of batch 1 crawls per image: it must not make every run "long"
    assert rate.units_per_second() == pytest.approx(50.0 * pixels)
    rate.forget_runs()
    rate.observe("huge-batch", config, 10_000.0)
    assert rate.units_per_second() == pytest.approx(200.0 * pixels)


def test_a_process_the_page_started_estimates_with_the_pages_rate(monkeypatch):
    rate = TrainingRate()
    rate.matmul_units = 1.0  # this process's own measure, taken while the page's runs train
    monkeypatch.setenv("GAPDEMO_TRAINING_RATE", "5e6")  # a claims job's or a sweep's environment
    assert rate.units_per_second() == 5e6
    rate.tell(7e6)  # the training worker, told with each run
    assert rate.units_per_second() == 7e6
    rate.tell(0)
    monkeypatch.delenv("GAPDEMO_TRAINING_RATE")
    assert rate.units_per_second() == 1.0  # told nothing, given nothing: its own measure
    monkeypatch.setenv("GAPDEMO_TRAINING_RATE", "fast")  # unreadable: the process refuses it at start, by name
    with pytest.raises(SettingsError, match="GAPDEMO_TRAINING_RATE must be a positive number, got 'fast'"):
        settings.check_all()


@pytest.mark.parametrize("seconds, words", [(20, "about 1 minute"), (75, "about 1 minute"),
                                            (1000, "about 17 minutes"), (20_000, "about 5.6 hours")])
def test_minutes_read_as_words(seconds, words):
    assert format_minutes(seconds) == words


def test_the_bound_setting():
    assert max_run_minutes({}) == 30 and max_run_minutes({"GAPDEMO_MAX_RUN_MINUTES": "2.5"}) == 2.5
    for text in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="GAPDEMO_MAX_RUN_MINUTES must be a positive number"):
            max_run_minutes({"GAPDEMO_MAX_RUN_MINUTES": text})


def test_a_served_gate_refuses_a_run_estimated_past_the_bound_and_a_local_one_does_not(monkeypatch, tmp_path):
    monkeypatch.setenv("GAPDEMO_MAX_RUN_MINUTES", "1")
    long_run = changed(RunConfig(), "train", epochs=50)  # within the sidebar's limits, hours on a CPU
    problems = validate_run_config(long_run, served=True)
    assert len(problems) == 1
    assert problems[0].startswith("This run would train for about ") and "over the 1 minutes a run may take" in problems[0]
    assert validate_run_config(long_run, served=False) == []
    assert validate_run_config(tiny_config(str(tmp_path)), served=True) == []


def test_served_train_command_refuses_a_run_past_the_bound_with_one_sentence(tmp_path):
    answer = subprocess.run(
        [sys.executable, "-m", "gapdemo", "train", "--epochs", "50", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "GAPDEMO_SERVED": "1", "GAPDEMO_MAX_RUN_MINUTES": "1"})
    assert answer.returncode == 2, answer.stderr[-2000:]
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and "over the 1 minutes a run may take on a served page" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_the_page_shows_the_estimate_before_start_and_refuses_past_the_bound(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    page = open_page()
    notes = [caption.value for caption in page.sidebar.caption if caption.value.startswith("Training time:")]
    assert len(notes) == 1 and notes[0].endswith("on this machine (a run may take 30 here).")
    monkeypatch.setenv("GAPDEMO_MAX_RUN_MINUTES", "0.0001")  # 6 ms: any run is longer, on any machine
    page.run()
    assert any(error.value.startswith("This run would train for") for error in page.sidebar.error)
    assert page.button(key="start").disabled


def test_the_page_passes_its_rate_to_the_jobs_it_starts():
    from gapdemo.budget.duration import TRAINING_RATE
    from gapdemo.jobs.page import PageScheduler

    scheduler = PageScheduler(budget_bytes=2**30)
    try:
        TRAINING_RATE.tell(4e6)
        assert float(scheduler.child_environment(served=True)["GAPDEMO_TRAINING_RATE"]) == 4e6
    finally:
        scheduler.close()
