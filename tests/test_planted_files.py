"""Files planted in a shared runs folder: ids that leave it, links out of it, files of any size, stored settings
past the gate. Each is refused in one sentence and never followed; nothing outside the runs folder changes."""

import os
from pathlib import Path

import pytest

from gapdemo import runs
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
