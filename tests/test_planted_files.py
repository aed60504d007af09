"""Files planted in a shared runs folder: ids that leave it, links out of it, files of any size, stored settings
past the gate. Each is refused in one sentence and never followed; nothing outside the runs folder changes."""

import json
import os
from pathlib import Path

import pytest

from gapdemo import runs, validation
from gapdemo.config import tiny_config
from gapdemo.runs.tail import CsvTail

PLANTED_ID = "../../outside"


def make_run(runs_dir, run_id: str, config: dict | None = None, state: str = "finished") -> Path:
    """A run folder with config.json (tiny_config's unless given) and status.json."""
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True)
    runs.write_config(run_dir, config if config is not None else tiny_config(str(runs_dir)).to_dict())
    runs.write_status(run_dir, state, epochs_completed=1)
    return run_dir


def make_link(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=target.is_dir())
    except OSError as error:  # Windows without the right to make links
        pytest.skip(f"cannot make a symbolic link here: {error}")


def is_one_sentence(text: str) -> bool:
    return text.endswith(".") and "\n" not in text and "Traceback" not in text and len(text) < 400


# ----- ids -----
@pytest.mark.parametrize("run_id", ["../x", "..", ".", "a/b", "a\\b", "/abs", "CON", "nul.txt", "run.", "",
                                    "x" * 101, "a\x00b", "-starts-with-dash"])
def test_an_id_that_could_leave_the_runs_folder_is_no_run_id(run_id):
    assert not runs.is_run_id(run_id)
    (problem,) = runs.run_id_problems(run_id)
    assert is_one_sentence(problem)


def test_the_ids_gapdemo_makes_are_run_ids():
    from gapdemo.config import RunConfig
    from gapdemo.sweep.grid import sweep_id_for

    made = [runs.new_run_id(), f"claims-{runs.new_run_id()}", sweep_id_for(RunConfig(), {}, 1), "r1", "my.run_2"]
    assert all(runs.is_run_id(run_id) for run_id in made) and runs.run_id_problems(None) == []


def test_the_cluster_command_asks_the_one_run_id_pattern():
    from gapdemo.commands import cluster_run

    assert not hasattr(cluster_run, "RUN_ID_PATTERN") and not hasattr(cluster_run, "run_id_problems")


def test_a_run_folder_is_never_made_from_a_planted_id(tmp_path):
    with pytest.raises(ValueError, match="no device name"):
        runs.create_run_folder(tmp_path / "runs", PLANTED_ID)
    assert sorted(tmp_path.iterdir()) == []


# ----- sizes -----
def test_json_past_its_cap_is_refused_in_one_sentence(tmp_path):
    run_dir = make_run(tmp_path, "r1")
    (run_dir / "status.json").write_bytes(b" " * runs.MAX_JSON_BYTES + b"{}")
    with pytest.raises(runs.RunFileError) as refusal:
        runs.read_status(run_dir)
    assert is_one_sentence(str(refusal.value)) and "status.json in r1" in str(refusal.value)
    assert str(tmp_path) not in str(refusal.value)  # names no server path


@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "[" * 100_000, "\xff{}", "{"])
def test_json_that_holds_no_object_reads_as_nothing(tmp_path, text):
    (tmp_path / "config.json").write_bytes(text.encode("latin-1"))
    assert runs.read_json(tmp_path / "config.json") == {}


def test_csv_past_its_cap_is_refused(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "r1")
    runs.append_batch_rows(run_dir, [{"backend": "gap", "epoch": 1, "batch": i, "step": i / 10, "loss": 0.5,
                                      "accuracy": 0.5} for i in range(20)])
    assert len(runs.read_batch_metrics(run_dir)) == 20
    monkeypatch.setattr(runs.files, "MAX_CSV_BYTES", 200)
    with pytest.raises(runs.RunFileError, match="batch_metrics.csv in r1 is larger than"):
        runs.read_batch_metrics(run_dir)


def test_a_tail_reads_up_to_its_cap_and_no_further(tmp_path):
    path = tmp_path / "r1" / "batch_metrics.csv"
    path.parent.mkdir()
    row = {"backend": "gap", "epoch": 1, "batch": 1, "step": 0.1, "loss": 0.5, "accuracy": 0.5}
    runs.append_csv_rows(path, runs.BATCH_FIELDS, [row] * 5)
    whole = path.stat().st_size
    tail = CsvTail(path, runs.BATCH_FIELDS, max_bytes=whole + 10)
    assert len(tail.read_new()) == 5 and tail.refusal is None
    runs.append_csv_rows(path, runs.BATCH_FIELDS, [row] * 100)
    capped = tail.read_new()
    assert len(capped) < 100 and is_one_sentence(tail.refusal) and "grown past" in tail.refusal
    runs.append_csv_rows(path, runs.BATCH_FIELDS, [row] * 100)
    assert tail.read_new() == [] and tail.rows_read == 5 + len(capped)


def test_a_tail_is_not_fooled_by_a_file_with_no_line_breaks(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"x" * 5000)
    tail = CsvTail(path, runs.EPOCH_FIELDS, max_bytes=1000)
    assert tail.read_new() == [] and tail.refusal is not None
    assert tail.read_new() == []  # nothing is read again: the cap was reached


# ----- sweeps -----
@pytest.fixture
def shared(tmp_path) -> Path:
    """The runs folder is shared/runs: PLANTED_ID joined to it leads to tmp_path/outside."""
    return tmp_path / "shared" / "runs"


@pytest.fixture
def sentinel(tmp_path):
    """A folder and file outside the runs folder, where PLANTED_ID leads from it; returns a function that
    says whether nothing there changed (contents, mtime, no new file) and nothing new stands beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the teacher's file")
    os.utime(outside / "keep.txt", ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in outside.iterdir()}

    def unchanged() -> bool:
        after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in outside.iterdir()}
        return after == before and sorted(path.name for path in tmp_path.iterdir()) == ["outside", "shared"]

    return unchanged


def planted_sweep(runs_dir: Path, plan, run_ids: list[str]) -> Path:
    """plan's sweep.json as gapdemo writes it, but with run_ids as the trials' runs."""
    from gapdemo.sweep import store

    sweep = store.create_or_resume(runs_dir, plan)
    for trial, run_id in zip(sweep["trials"], run_ids, strict=True):
        trial["run_id"] = run_id
    store.save(runs_dir, sweep)
    return store.sweep_path(runs_dir, plan.sweep_id)


@pytest.fixture
def sweep_plan(shared):
    from gapdemo.sweep.grid import plan_trials

    return plan_trials(tiny_config(str(shared), ("gap",)), {"dropout_rate": [0.3]}, 2)


def test_a_planted_sweep_is_refused_on_resume_and_nothing_outside_the_runs_folder_changes(
        tmp_path, shared, sentinel, sweep_plan, monkeypatch):
    """The issue's test: a sweep.json whose run_id is ../../outside, resumed by the sweep command."""
    from gapdemo.cli import main
    from gapdemo.cluster import connection, trials
    from gapdemo.sweep import store

    runs_dir = shared
    planted = planted_sweep(runs_dir, sweep_plan, [PLANTED_ID, runs.new_run_id()])
    assert (runs_dir / PLANTED_ID).resolve() == (tmp_path / "outside").resolve()  # where it would lead
    planted_bytes = planted.read_bytes()
    monkeypatch.setattr(connection, "connect", lambda *args, **kwargs: pytest.fail("Ray was started"))
    monkeypatch.setattr(trials, "run_trials", lambda *args, **kwargs: pytest.fail("a trial was trained"))
    with pytest.raises(runs.RunFileError) as refusal:
        from gapdemo.sweep.execution import run_plan

        run_plan(sweep_plan)
    assert str(refusal.value) == (f"Sweep {sweep_plan.sweep_id}'s trial 0 names the run '../../outside', which is "
                                  "no run id; it was refused and not followed.")
    monkeypatch.setattr("signal.signal", lambda *args: None)  # the command's handlers stay out of pytest
    assert main(["sweep", "--plan", str(store.write_plan(sweep_plan))]) == 2  # the command: one line, exit 2
    assert sentinel() and planted.read_bytes() == planted_bytes


def test_the_collector_never_clears_nor_writes_a_planted_id(tmp_path, shared, sentinel):
    from gapdemo.cluster.collector import TrialCollector

    collector = TrialCollector(str(shared))
    shared.mkdir(parents=True)
    with pytest.raises(runs.RunFileError, match="no run id"):
        collector.begin(PLANTED_ID, "node")
    with pytest.raises(runs.RunFileError, match="no run id"):
        collector.receive(PLANTED_ID, {"status.json": b"{}"}, {})
    assert collector.snapshot() == {} and sentinel()


def test_a_link_in_the_runs_folder_is_not_followed_on_resume(tmp_path, shared, sentinel, sweep_plan):
    from gapdemo.sweep import store

    runs_dir = shared
    sweep = store.create_or_resume(runs_dir, sweep_plan)
    make_link(tmp_path / "outside", runs_dir / sweep["trials"][1]["run_id"])
    with pytest.raises(runs.RunFileError, match="trial 1 .* whose folder is a symbolic link"):
        store.create_or_resume(runs_dir, sweep_plan)
    (runs_dir / sweep["trials"][1]["run_id"]).unlink()
    make_link(tmp_path / "outside", runs_dir / "sweeps" / "linked")
    assert [s["sweep_id"] for s in store.list_sweeps(runs_dir)] == [sweep_plan.sweep_id]  # the link is passed by
    assert sentinel()


@pytest.mark.parametrize("victim", ["another run", "sweeps", "another trial"])
def test_a_resume_never_clears_a_folder_that_is_not_its_trials_run(tmp_path, shared, sweep_plan, victim):
    from gapdemo.sweep import store

    runs_dir = shared
    other = make_run(runs_dir, runs.new_run_id(), state="failed")  # failed: a resume would train it again
    if victim == "another trial":
        runs.update_config(other, {"sweep": {"sweep_id": "sweep-0000000000", "index": 0}})
    target = {"another run": other.name, "another trial": other.name, "sweeps": "sweeps"}[victim]
    planted_sweep(runs_dir, sweep_plan, [runs.new_run_id(), target])
    with pytest.raises(runs.RunFileError, match=f"trial 1 names the run {target}, whose folder holds something else"):
        store.create_or_resume(runs_dir, sweep_plan)
    assert runs.read_status(other)["state"] == "failed"


def test_a_trial_cut_short_or_of_this_sweep_is_resumed(tmp_path, shared, sweep_plan):
    from gapdemo.cluster.collector import TrialCollector
    from gapdemo.sweep import store
    from gapdemo.sweep.execution import pending_specs

    runs_dir = shared
    sweep = store.create_or_resume(runs_dir, sweep_plan)
    first, second = (runs_dir / trial["run_id"] for trial in sweep["trials"])
    (second / "models").mkdir(parents=True)  # a trial whose config never arrived: only a run's own files
    runs.append_log(second, "cut short\n")
    collector = TrialCollector(str(runs_dir))  # the first trial came home once, as the collector writes it
    tags = {"sweep": {"sweep_id": sweep_plan.sweep_id, "index": 0, "settings": {}, "seed": 0}}
    collector.receive(first.name, {"config.json": runs.files.json_bytes({"train": {"runs_dir": "/worker"}}),
                                   "status.json": runs.files.json_bytes({"state": "running"})}, tags)
    assert runs.read_config(first) == {"train": {"runs_dir": str(runs_dir)}, **tags}
    assert store.create_or_resume(runs_dir, sweep_plan)["trials"] == sweep["trials"]
    assert len(pending_specs(sweep, sweep_plan.base, runs_dir)) == 2


@pytest.mark.parametrize("change", ["another id", "no trials", "trials of strings", "bad backends", "bad run id",
                                    "twice one run", "too large"])
def test_the_sweeps_tab_shows_a_planted_sweep_as_one_refusal(tmp_path, shared, sweep_plan, change):
    from gapdemo.sweep import store
    from gapdemo.sweep.execution import sweep_result

    runs_dir = shared
    path = store.sweep_path(runs_dir, store.create_or_resume(runs_dir, sweep_plan)["sweep_id"])
    sweep = json.loads(path.read_text())
    if change == "too large":
        path.write_bytes(b" " * runs.MAX_JSON_BYTES + b"{}")
    else:
        trial = sweep["trials"][0]
        sweep.update({"another id": {"sweep_id": "sweep-other"}, "no trials": {"trials": None},
                      "trials of strings": {"trials": ["a"]},
                      "bad backends": {"base_config": {"model": {"backends": [1]}}},
                      "bad run id": {"trials": [{**trial, "run_id": "/etc"}]},
                      "twice one run": {"trials": [trial, {**trial, "index": 1}]}}[change])
        path.write_text(json.dumps(sweep))
    (listed,) = store.list_sweeps(runs_dir)
    assert listed["state"] == "refused" and is_one_sentence(listed["message"])
    result = sweep_result(runs_dir, sweep_plan.sweep_id)  # what the Sweeps tab draws
    assert result["state"] == "refused" and result["trials"] == [] and result["message"] == listed["message"]
    assert len(store.trial_epoch_metrics(runs_dir, store.load(runs_dir, sweep_plan.sweep_id))) == 0


def test_a_plan_must_name_a_sweep_id_and_its_own_runs_folder(tmp_path, shared, sweep_plan):
    from gapdemo.sweep import store

    path = store.write_plan(sweep_plan)
    assert store.read_plan(path) == sweep_plan
    values = json.loads(path.read_text())
    path.write_text(json.dumps({**values, "sweep_id": "../../outside"}))
    with pytest.raises(runs.RunFileError, match="names no sweep id"):
        store.read_plan(path)
    values["base_config"]["train"]["runs_dir"] = str(tmp_path / "elsewhere")
    path.write_text(json.dumps(values))
    with pytest.raises(runs.RunFileError, match="another runs folder"):
        store.read_plan(path)
    with pytest.raises(runs.RunFileError, match="no sweep id"):
        store.sweep_path(tmp_path, PLANTED_ID)


# ----- the runs listing, models and probes -----
def plant_runs(runs_dir: Path, outside: Path) -> Path:
    """runs_dir with one good run and six folders the listing must pass by; the good run's folder."""
    good = make_run(runs_dir, "20260101-000000-good")
    make_run(outside, "20991231-000000-link")  # a run elsewhere on the server, brought in by a link
    make_link(outside / "20991231-000000-link", runs_dir / "20991231-000000-link")
    make_run(runs_dir, "odd name")
    (make_run(runs_dir, "20260101-000000-huge") / "status.json").write_bytes(b" " * runs.MAX_JSON_BYTES + b"{}")
    make_run(runs_dir, "20260101-000000-text", config={"data": "synthetic"})
    make_run(runs_dir, "20260101-000000-ints", config={"model": {"backends": [1, 2]}})
    runs.append_epoch_rows(make_run(runs_dir, "20260101-000000-accs"), [
        {"backend": "gap", "epoch": 1, "loss": 1, "accuracy": 1, "val_loss": 1, "val_accuracy": "high"}])
    (runs_dir / "sweeps").mkdir()  # no run: passed by in silence
    return good


def test_the_runs_listing_passes_by_links_odd_names_and_planted_files(tmp_path):
    runs_dir = tmp_path / "runs"
    good = plant_runs(runs_dir, tmp_path / "outside")
    summaries, refusals = runs.scan_runs(runs_dir)
    assert [s.run_id for s in summaries] == [good.name] and runs.list_runs(runs_dir) == summaries
    assert len(refusals) == 6 and all(is_one_sentence(refusal) for refusal in refusals)
    assert any("symbolic link 20991231-000000-link; it was not followed" in refusal for refusal in refusals)
    assert any("'odd name' is not named like a run" in refusal for refusal in refusals)
    assert any("status.json in 20260101-000000-huge is larger than the 4 MiB" in refusal for refusal in refusals)
    assert runs.choose_classifier_run(runs_dir) is None  # nothing refused is offered, not even with models


def runs_tab(runs_dir):
    from dashboard.runs_panel import runs_panel

    runs_panel(runs_dir)


def test_the_runs_tab_gives_each_planted_folder_one_sentence(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    runs_dir = tmp_path / "runs"
    good = plant_runs(runs_dir, tmp_path / "outside")
    page = AppTest.from_function(runs_tab, args=(str(runs_dir),), default_timeout=60).run()
    assert not page.exception and len(page.warning) == 5 + 1  # five sentences, then how many more
    assert list(page.dataframe[0].value["run"]) == [good.name]
    runs.append_batch_rows(good, [{"backend": "gap", "epoch": 1, "batch": 1, "step": 1, "loss": 1, "accuracy": 1}])
    monkeypatch.setattr(runs.files, "MAX_CSV_BYTES", 40)  # the page runs in this process
    page.run()  # the run's own view: its batch rows are past the cap
    assert not page.exception
    assert "batch_metrics.csv in 20260101-000000-good is larger than the" in page.warning[-1].value


def test_model_files_that_are_links_or_name_no_back_end_are_refused(tmp_path):
    from gapdemo.runs.artifacts import model_files

    run_dir = make_run(tmp_path / "runs", "r1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "gap.keras").write_bytes(b"a model from anywhere")
    make_link(elsewhere, run_dir / "models")
    assert runs.models_signature(run_dir)  # listed as having models, but never loaded:
    with pytest.raises(runs.RunFileError, match="^The models folder of run r1 is a symbolic link"):
        model_files(run_dir)
    (run_dir / "models").unlink()
    (run_dir / "models").mkdir()
    make_link(tmp_path / "gone.keras", run_dir / "models" / "gap.keras")  # dangling
    assert [name for name, _ in runs.models_signature(run_dir)] == ["gap.keras"]  # no error for a dangling link
    with pytest.raises(runs.RunFileError, match="^The model file gap.keras of run r1 is a symbolic link"):
        runs.load_models(run_dir)
    (run_dir / "models" / "gap.keras").unlink()
    (run_dir / "models" / "evil.keras").write_bytes(b"x")
    with pytest.raises(runs.RunFileError, match="^The model file evil.keras of run r1 is named after no back-end"):
        model_files(run_dir)


def test_probes_behind_a_link_are_as_good_as_absent(tmp_path):
    import numpy as np

    run_dir = make_run(tmp_path / "runs", "r1")
    probes = {"gap": {"images": np.zeros((1, 4, 4, 3), np.uint8), "labels": np.zeros(1, np.int64),
                      "feature_averages": np.zeros((1, 2))}}
    runs.save_probes(run_dir, 1, probes)
    assert runs.load_probes(run_dir)[0] == 1
    (run_dir / "probes").rename(tmp_path / "probes")
    make_link(tmp_path / "probes", run_dir / "probes")
    assert runs.load_probes(run_dir) == (-1, {})


# ----- stored settings -----
PLANTED_SETTINGS = [
    ({"data": {"image_size": 1_000_000}}, "^Image size must be an integer from 32 to 256, got 1000000.$"),
    ({"data": {"dataset": "anything"}}, "Unknown data set 'anything'"),
    ({"model": {"backends": ["evil"]}}, "Unknown back-end"),
    ({"train": {"batch_size": "64"}}, "^The run's config.json holds values of the wrong kind.$"),
    ({"data": {"image_size": True}}, "values of the wrong kind"),
    ({"data": {"unknown_setting": 1}}, "holds no settings this version of gapdemo reads"),
    ({"data": ["a", "list"]}, "holds no settings this version of gapdemo reads"),
]


@pytest.mark.parametrize("change, refusal", PLANTED_SETTINGS)
def test_stored_settings_are_asked_as_a_new_runs_before_they_build_anything(tmp_path, change, refusal):
    values = tiny_config(str(tmp_path / "elsewhere")).to_dict()
    for section, settings in change.items():
        values[section] = {**values[section], **settings} if isinstance(settings, dict) else settings
    run_dir = make_run(tmp_path / "runs", "r1", config=values)
    for check in (validation.stored_run_config, lambda run_dir: validation.stored_data_config(run_dir, served=True)):
        with pytest.raises(runs.RunFileError, match=refusal) as refused:
            check(run_dir)
        assert is_one_sentence(str(refused.value))


def test_stored_settings_that_pass_come_back_writing_into_their_own_runs_folder(tmp_path):
    run_dir = make_run(tmp_path / "runs", "r1", config=tiny_config("/somewhere/else").to_dict())
    config = validation.stored_data_config(run_dir, served=True)
    assert config.data == tiny_config().data and config.train.runs_dir == str(tmp_path / "runs")
    assert validation.stored_run_config(run_dir) == config
    (run_dir / "config.json").unlink()
    with pytest.raises(runs.RunFileError, match="^The run has no readable config.json.$"):
        validation.stored_run_config(run_dir)


@pytest.mark.parametrize("data, refusal", [
    ({"synthetic_size": 10**9}, "This run would need about"),  # the memory budget, served only
    ({"dataset": "folder", "data_dir": "/not/under/the/roots"}, "^The folder /not/under/the/roots does not exist.$"),
])
def test_a_served_page_draws_no_data_a_stored_config_asks_past_the_gate(tmp_path, monkeypatch, data, refusal):
    monkeypatch.setenv("GAPDEMO_DATA_ROOTS", str(tmp_path / "roots"))
    values = tiny_config().to_dict()
    values["data"].update(data)
    run_dir = make_run(tmp_path / "runs", "r1", config=values)
    validation.stored_run_config(run_dir)  # its models may still be used: these settings build no data there
    with pytest.raises(runs.RunFileError, match=refusal):
        validation.stored_data_config(run_dir, served=True)


def test_a_served_page_reads_its_own_image_cache_whatever_a_stored_config_names(tmp_path):
    values = tiny_config().to_dict()
    values["data"]["cache_dir"] = "/home/teacher/.ssh"
    run_dir = make_run(tmp_path / "runs", "r1", config=values)
    assert validation.stored_data_config(run_dir, served=True).data.cache_dir is None
    assert validation.stored_data_config(run_dir, served=False).data.cache_dir == "/home/teacher/.ssh"  # the CLI's own


def panel_page(panel: str, runs_dir: str):
    import importlib

    module = importlib.import_module(f"dashboard.{panel}")
    getattr(module, panel)(runs_dir)


@pytest.mark.parametrize("panel, sentence", [
    ("classify_panel", "Cannot classify with run r1: Image size must be an integer from 32 to 256, got 99999."),
    ("evaluation_panel", "Cannot evaluate run r1: Image size must be an integer from 32 to 256, got 99999."),
])
def test_the_classify_and_mistakes_tabs_refuse_a_planted_image_size_in_one_sentence(tmp_path, panel, sentence):
    from streamlit.testing.v1 import AppTest

    values = tiny_config().to_dict()
    values["data"]["image_size"] = 99999
    run_dir = make_run(tmp_path / "runs", "r1", config=values)
    (run_dir / "models").mkdir()
    (run_dir / "models" / "gap.keras").write_bytes(b"never loaded")
    page = AppTest.from_function(panel_page, args=(panel, str(tmp_path / "runs")), default_timeout=60).run()
    assert not page.exception and [error.value for error in page.error] == [sentence]


# ----- claims results -----
def write_claims(runs_dir: Path, claims_id: str, **changes) -> Path:
    """A claims-<id>/claims.json with every section the Claims tab reads (empty), and changes applied."""
    from gapdemo.claims import CLAIMS

    folder = runs_dir / claims_id
    folder.mkdir(parents=True)
    result = {"id": claims_id, "verdicts": {key: "A verdict." for key in CLAIMS}, **{key: {} for key in CLAIMS}}
    runs.write_json_atomic(folder / "claims.json", {**result, **changes})
    return folder


def test_a_planted_claims_result_is_passed_by_for_the_newest_one_gapdemo_wrote(tmp_path):
    from gapdemo.claims import claims_file_problem, latest_claims, list_claims

    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    good = write_claims(runs_dir, "claims-20260101-000000-aaaa")
    assert latest_claims(runs_dir)["id"] == good.name and claims_file_problem(good) is None
    planted = [write_claims(runs_dir, "claims-20260102-000000-aaaa", id="claims-20260101-000000-aaaa"),
               write_claims(runs_dir, "claims-20260103-000000-aaaa", verdicts={}),
               write_claims(runs_dir, "claims-20260104-000000-aaaa")]
    (planted[-1] / "claims.json").write_bytes(b" " * runs.MAX_JSON_BYTES + b"{}")
    make_link(write_claims(outside, "claims-20260105-000000-aaaa"), runs_dir / "claims-20260105-000000-aaaa")
    assert list_claims(runs_dir) == [*reversed(planted), good]  # the link is not listed
    assert latest_claims(runs_dir)["id"] == good.name
    problems = [claims_file_problem(folder) for folder in planted]
    assert all(is_one_sentence(problem) for problem in problems)
    assert problems[0] == "The file claims.json in claims-20260102-000000-aaaa names another claims result; it was refused."


def test_a_windows_junction_counts_as_a_link(tmp_path, monkeypatch):
    """is_symlink() misses a Windows junction; its reparse-point attribute gives it away (simulated here)."""
    import stat
    import types

    from gapdemo.runs import trust

    folder = tmp_path / "20261207-090000-abcd"
    folder.mkdir()
    assert not runs.is_link(folder)
    real_lstat = trust.os.lstat
    monkeypatch.setattr(trust.os, "lstat", lambda path: types.SimpleNamespace(
        st_mode=stat.S_IFDIR, st_file_attributes=stat.FILE_ATTRIBUTE_REPARSE_POINT) if str(path) == str(folder)
        else real_lstat(path))
    assert runs.is_link(folder)
    with pytest.raises(runs.RunFileError, match="whose folder is a symbolic link"):
        runs.run_folder(tmp_path, folder.name, "Sweep s's trial 0")


def test_a_zip_of_a_run_refuses_a_planted_file_past_the_cap(tmp_path, monkeypatch):
    from gapdemo.export import bundle
    from gapdemo.runs import files

    run_dir = make_run(tmp_path / "runs", "r1", config=tiny_config().to_dict())
    (run_dir / "log.txt").write_bytes(b"x" * 4096)
    monkeypatch.setattr(files, "MAX_RUN_FILE_BYTES", 1024)
    with pytest.raises(runs.RunFileError, match="^The file log.txt in .* is larger than"):
        bundle.run_zip(run_dir)
