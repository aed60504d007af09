"""Pooling a class's finished runs into one claims table: groups, per-run measures kept in the run, paired statistics."""

import contextlib
import io
import json
import math
import shutil
import statistics
import subprocess
import sys
import time

import pytest

from gapdemo import runs, validation
from gapdemo.claims import stats
from gapdemo.claims.groups import config_signature, scan_pool, settings_key, shared_settings
from gapdemo.claims.measured import MEASURES_FILE, read_measures
from gapdemo.claims.pool import comparison_pairs, pooled_claims
from gapdemo.claims.pool_table import pooled_rows, table_lines
from gapdemo.claims.registry import CLAIMS
from gapdemo.cli import main
from gapdemo.config import tiny_config
from gapdemo.sweep.seeds import seeded_config

BACKENDS = ("fc", "fc_dropout", "gap")
PAIRS = ("fc_vs_gap", "fc_dropout_vs_gap")


def tiny_base(runs_dir, image_size: int = 32):
    config = tiny_config(str(runs_dir), backends=BACKENDS)
    config.train.epochs, config.data.image_size = 2, image_size  # two epochs: a validation-loss slope
    return config


@pytest.fixture(scope="module")
def class_runs(tmp_path_factory):
    """Four finished tiny runs of one setting (seeds 0-3) and one of another image size, trained once."""
    from gapdemo.training.job import TrainingJob  # deferred: TensorFlow, for this module's fixture only

    runs_dir = tmp_path_factory.mktemp("class_runs")
    configs = [seeded_config(tiny_base(runs_dir), seed, runs_dir) for seed in range(4)]
    configs.append(seeded_config(tiny_base(runs_dir, image_size=40), 0, runs_dir))
    for config in configs:
        job = TrainingJob(config)
        assert job.run() == "finished"
    return runs_dir


@pytest.fixture(scope="module")
def pooled_json(class_runs):
    """(the JSON of claims --pool --json, its stderr, seconds): it measures the four runs of the first group."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["claims", "--pool", "--runs-dir", str(class_runs), "--json"])
    seconds = time.perf_counter() - started
    assert status == 0, err.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue(), seconds


def test_pool_json_reports_four_runs_with_a_difference_interval_and_verdict_per_claim_and_pair(pooled_json):
    result, err, seconds = pooled_json
    assert result["runs"] == 4 and len(result["run_ids"]) == 4
    assert result["group"]["settings"]["image_size"] == 32 and result["group"]["runs"] == 4
    assert "the largest group" in err and "1 finished run(s) share their settings with no other" in err
    for claim in CLAIMS:
        for pair in PAIRS:
            values = result["claims"][claim]["pairs"][pair]
            assert values["n"] == 4 and values["low"] <= values["difference"] <= values["high"]
            assert values["verdict"] in ("holds", "does not hold", "not yet decided (n = 4; the interval crosses 0)")
    assert result["interval"] == "paired t-interval, 95%"
    assert set(result["verdicts"]) == set(CLAIMS)  # the claims job's own verdict sentences, over the pooled runs
    print(f"measured 4 tiny runs in {seconds:.1f} s")


def test_each_run_keeps_its_measures_once_and_a_second_call_runs_no_forward_pass(pooled_json, class_runs, monkeypatch):
    import keras

    calls = []
    for name in ("__call__", "predict", "predict_on_batch", "train_on_batch"):
        original = getattr(keras.Model, name)
        monkeypatch.setattr(keras.Model, name, lambda *a, _o=original, **k: calls.append(1) or _o(*a, **k))
    monkeypatch.setattr(runs, "load_models", lambda *a, **k: calls.append("load") or {})
    scan = scan_pool(class_runs)
    for run_dir, config in zip(scan.groups[0].run_dirs, scan.groups[0].configs, strict=True):
        values, problem = read_measures(run_dir, config)
        assert problem is None and values["signature"] == config_signature(config) and values["seconds"] > 0
    pooled = pooled_claims(class_runs, measure_missing=True)
    assert pooled.runs == 4 and calls == []
    assert pooled.to_public()["claims"] == pooled_json[0]["claims"]


def test_read_only_pooling_imports_no_tensorflow_in_a_fresh_process(pooled_json, class_runs):
    code = ("import sys; from gapdemo.claims.pool import pooled_claims; "
            f"pooled = pooled_claims({str(class_runs)!r}); "
            "print(pooled.runs, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.stdout.split() == ["4", "False", "False"], finished.stderr[-2000:]


def copy_run(source, target, status: dict | None = None):
    """A copy of a measured run's files (no models: reading needs none) under another run id."""
    target.mkdir()
    for name in ("config.json", "status.json", "metrics.csv", MEASURES_FILE):
        shutil.copy(source / name, target / name)
    if status is not None:
        runs.write_json_atomic(target / "status.json", {**runs.read_json(target / "status.json"), **status})


def test_thirty_measured_runs_redraw_in_under_a_second(pooled_json, class_runs, tmp_path):
    sources = scan_pool(class_runs).groups[0].run_dirs
    for index in range(30):
        copy_run(sources[index % 4], tmp_path / f"20270101-000000-{index:04x}")
    pooled_claims(tmp_path)  # the first call imports the readers (pandas); the page has them loaded
    started = time.perf_counter()
    pooled = pooled_claims(tmp_path)
    assert pooled.runs == 30 and time.perf_counter() - started < 1.0


def test_a_stopped_run_and_a_malformed_measures_file_are_skipped_with_one_line_each(pooled_json, class_runs, tmp_path):
    sources = scan_pool(class_runs).groups[0].run_dirs
    for index, source in enumerate(sources):
        copy_run(source, tmp_path / f"20270101-00000{index}-aaaa")
    copy_run(sources[0], tmp_path / "20270101-000009-bbbb", status={"state": "stopped"})
    (tmp_path / "20270101-000003-aaaa" / MEASURES_FILE).write_text('{"version": 1, "signature": "x"')
    (tmp_path / "20270101-000002-aaaa" / MEASURES_FILE).write_text(
        json.dumps({**runs.read_json(sources[2] / MEASURES_FILE), "overfitting": {"fc": "plenty"}}))
    pooled = pooled_claims(tmp_path)
    assert pooled.runs == 2 and sorted(pooled.unmeasured) == ["20270101-000002-aaaa", "20270101-000003-aaaa"]
    assert pooled.left_out == "Left out: 1 stopped (only finished runs are pooled)."
    assert len(pooled.skipped) == 2 and all("\n" not in line and MEASURES_FILE in line for line in pooled.skipped)
    assert "20270101-000003-aaaa" in " ".join(pooled.skipped)
    public = pooled.to_public()
    assert public["runs"] == 2 and public["not_measured"] == 2 and "aaaa" not in json.dumps(public)
    assert any("FC - GAP" in line for line in table_lines(public))


def test_groups_differ_by_any_shared_setting_but_not_by_seed_or_folder_locations(tmp_path):
    base = tiny_base(tmp_path)
    key = settings_key(shared_settings(base))
    assert settings_key(shared_settings(seeded_config(base, 7, tmp_path / "elsewhere"))) == key
    for section, name, value in (("data", "image_size", 40), ("train", "epochs", 3), ("train", "learning_rate", 3e-3),
                                 ("model", "bn_momentum", 0.99), ("model", "dropout_rate", 0.3),
                                 ("train", "precision", "mixed_bfloat16"), ("data", "train_size", 40)):
        changed = seeded_config(base, 0, tmp_path)
        setattr(getattr(changed, section), name, value)
        assert settings_key(shared_settings(changed)) != key, name
    assert config_signature(seeded_config(base, 1, tmp_path)) != config_signature(base)


def test_groups_are_offered_largest_first_with_public_settings_and_run_ids_apart(pooled_json, class_runs):
    scan = scan_pool(class_runs)
    assert [group.runs for group in scan.groups] == [4] and scan.single_runs == 1
    public = scan.groups[0].public()
    assert public["runs"] == 4 and "32 px" in public["description"] and "run_ids" not in public
    assert all(run_id not in json.dumps(public) for run_id in scan.groups[0].run_ids)


def test_paired_interval_matches_a_hand_computation():
    first, second = [0.30, 0.25, 0.40, 0.35], [0.10, 0.15, 0.12, 0.20]
    differences = [a - b for a, b in zip(first, second, strict=True)]  # 0.20, 0.10, 0.28, 0.15
    mean, std = sum(differences) / 4, statistics.stdev(differences)
    half = 3.1824 * std / math.sqrt(4)  # t(0.975, 3)
    interval = stats.paired_difference(first, second)
    assert interval["n"] == 4 and interval["difference"] == pytest.approx(0.1825)
    assert (interval["low"], interval["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert stats.paired_difference([1.0, None, 2.0], [0.5, 0.5, None])["n"] == 1


def test_t_quantiles_agree_with_scipy_where_it_is_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    for degrees in (1, 2, 5, 29, 30, 31, 45, 100, 1000):
        assert stats.t_quantile_975(degrees) == pytest.approx(scipy_stats.t.ppf(0.975, degrees), abs=2e-4)


@pytest.mark.parametrize("low, high, better, words", [
    (0.01, 0.2, "lower", "holds"), (-0.2, -0.01, "higher", "holds"),
    (-0.2, -0.01, "lower", "does not hold"), (0.01, 0.2, "higher", "does not hold"),
    (-0.1, 0.2, "lower", "not yet decided (n = 4; the interval crosses 0)"),
])
def test_verdict_words(low, high, better, words):
    assert stats.verdict({"n": 4, "difference": (low + high) / 2, "low": low, "high": high}, better) == words


def test_one_run_decides_nothing_and_pairs_follow_the_back_ends():
    assert stats.verdict(stats.paired_difference([0.3], [0.1]), "lower") == (
        "not yet decided (n = 1; one run gives no interval)")
    assert comparison_pairs(["fc", "fc_dropout", "gap"]) == [("fc", "gap"), ("fc_dropout", "gap")]
    assert comparison_pairs(["fc", "avgpool_flatten"]) == []
    assert all(claim.pooled and claim.pooled[0].better in ("lower", "higher") for claim in CLAIMS.values())


def test_rows_carry_every_claim_measure_and_pair(pooled_json):
    rows = pooled_rows({key: value for key, value in pooled_json[0].items() if key != "run_ids"})
    assert {row["claim"] for row in rows} == {claim.heading for claim in CLAIMS.values()}
    assert sum(1 for row in rows if row["what"] == "FC - GAP") == sum(len(c.pooled) for c in CLAIMS.values())


@pytest.fixture
def claims_page(class_runs, tmp_path, monkeypatch):
    """(open(): the page with its Claims tab drawn, over runs_dir, a copy of the class's runs): a fresh scheduler,
    closed after the test."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from conftest import close_page_scheduler

    runs_dir = tmp_path / "runs"
    shutil.copytree(class_runs, runs_dir)
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(runs_dir))
    st.cache_resource.clear()

    def open_claims_tab():
        page = AppTest.from_file("../app.py", default_timeout=120)
        page.session_state["main_tab"] = ":material/fact_check: Claims"
        page.run()
        assert not page.exception, page.exception
        return page

    yield open_claims_tab, runs_dir
    close_page_scheduler()


def test_the_claims_tab_pools_the_class_and_measures_new_runs_in_the_queue(pooled_json, claims_page):
    """The page reads the measured group at once; a group of runs never measured is measured by a job of the
    page's queue (a `claims --pool` child process, no TensorFlow in the server), then shows."""
    from dashboard.common import job_manager

    open_claims_tab, runs_dir = claims_page
    other = next(run.run_dir for run in runs.list_runs(runs_dir)
                 if validation.stored_run_config(run.run_dir).data.image_size == 40)
    shutil.copytree(other, runs_dir / runs.new_run_id())  # copied in from another machine: a second sample
    page = open_claims_tab()
    picker = page.selectbox(key="pool_group")
    assert len(picker.options) == 2 and "4 runs" in picker.options[0] and "2 runs" in picker.options[1]
    assert any(caption.value.startswith("n = 4 runs") for caption in page.caption)
    verdicts = [m.value for m in page.markdown if m.value.startswith("**2. Less overfitting** — final train")]
    assert len(verdicts) == 1 and "FC - GAP" in verdicts[0] and "FC + dropout - GAP" in verdicts[0]
    assert any(words in verdicts[0] for words in ("holds", "does not hold", "not yet decided (n = 4"))
    assert not job_manager().jobs("pool")  # measured already: no job
    assert "pooled_zip" in [button.key for button in page.get("download_button")]  # local: ids may go out
    page.session_state["pool_group"] = scan_pool(runs_dir).groups[1].key  # the second choice (AppTest's
    page.run()  # own select_index cannot read a format_func)
    assert [job.state for job in job_manager().jobs("pool")] in (["queued"], ["running"])
    assert job_manager().jobs("pool")[0].wait(180) and job_manager().jobs("pool")[0].state == "finished"
    page.run()
    assert any(caption.value.startswith("n = 2 runs") for caption in page.caption)


def test_the_strip_plot_has_a_dot_per_run_and_rings_a_visitors_own():
    from gapdemo.claims.charts import pooled_accuracy_figure, pooled_accuracy_frame

    accuracies = {"20261207-090000-aaaa": {"fc": 0.8, "gap": 0.7}, "20261207-090100-bbbb": {"fc": 0.6, "gap": 0.9}}
    figure = pooled_accuracy_figure(accuracies, ("fc", "gap"), frozenset({"20261207-090100-bbbb"}))
    fc, gap = figure.data
    assert list(fc.y) == [0.8, 0.6] and list(gap.y) == [0.7, 0.9]
    assert list(fc.marker.size) == [8, 13] and list(fc.marker.line.width) == [0, 2.5]  # the second run is yours
    assert "ringed: your runs" in figure.layout.title.text
    assert "ringed" not in pooled_accuracy_figure(accuracies, ("fc", "gap")).layout.title.text
    frame = pooled_accuracy_frame(accuracies, ("fc", "gap"))
    assert list(frame["run"]) == [1, 1, 2, 2] and "20261207" not in frame.to_csv()  # runs numbered, not named


def test_a_served_claims_tab_names_no_run(pooled_json, claims_page, monkeypatch):
    """Served, the pooled view shows the shared settings, numbers and dots: no run id, not even a skipped
    folder's (it is counted), and no zip of run ids."""
    open_claims_tab, runs_dir = claims_page
    planted = runs_dir / "20261207-235959-dead"
    planted.mkdir()
    (planted / "config.json").write_text(json.dumps({"data": {"image_size": 99999}}))  # past the gate's bounds
    (planted / "status.json").write_text(json.dumps({"state": "finished"}))
    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    page = open_claims_tab()
    claims_tab = page.tabs[5]  # Training, Feature maps, Parameters, Classify, Mistakes, Claims, ...
    texts = " ".join(str(element.value) for kind in ("markdown", "caption", "info", "error", "warning")
                     for element in getattr(claims_tab, kind))
    assert "n = 4 runs" in texts and "1 run folder(s) could not be read and were skipped." in texts
    assert all(run.name not in texts for run in runs_dir.iterdir())
    assert "pooled_zip" not in [button.key for button in page.get("download_button")]
