"""The runs folder's size cap (GAPDEMO_RUNS_MAX_BYTES): its setting, a walk that follows no link, one sentence
past the cap, and one walk for many callers."""

import os
import threading

import pytest

from gapdemo.budget import disk


@pytest.mark.parametrize("text, expected", [("20GB", 20 * 2**30), ("500MB", 500 * 2**20), ("8G", 8 * 2**30),
                                            ("1.5 GiB", int(1.5 * 2**30)), ("1073741824", 2**30), ("", 20 * 2**30)])
def test_the_cap_reads_sizes_as_the_memory_budget_does(text, expected):
    assert disk.runs_max_bytes({"GAPDEMO_RUNS_MAX_BYTES": text}) == expected
    assert disk.runs_max_bytes({}) == disk.DEFAULT_RUNS_MAX_BYTES == 20 * 2**30


@pytest.mark.parametrize("text", ["lots", "20 GB please", "-5G"])
def test_an_unreadable_cap_is_one_sentence_naming_its_setting(text):
    with pytest.raises(ValueError) as refused:
        disk.runs_max_bytes({"GAPDEMO_RUNS_MAX_BYTES": text})
    assert str(refused.value) == f"GAPDEMO_RUNS_MAX_BYTES must be a size such as 20GB, 8G or 512M, got {text!r}."


def test_the_walk_counts_every_file_and_follows_no_link(tmp_path):
    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    (runs_dir / "r1" / "models").mkdir(parents=True)
    (runs_dir / "r1" / "metrics.csv").write_bytes(b"x" * 1000)
    (runs_dir / "r1" / "models" / "gap.keras").write_bytes(b"x" * 3000)
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"x" * 100_000)
    try:
        os.symlink(outside, runs_dir / "linked-folder", target_is_directory=True)
        os.symlink(outside / "big.bin", runs_dir / "r1" / "linked-file")
    except OSError as error:
        pytest.skip(f"cannot make a symbolic link here: {error}")
    links = sum(os.lstat(path).st_size for path in (runs_dir / "linked-folder", runs_dir / "r1" / "linked-file"))
    assert disk.folder_bytes(runs_dir) == 4000 + links
    assert disk.folder_bytes(tmp_path / "missing") == 0


def test_past_the_cap_the_page_gets_one_sentence(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "batch_metrics.csv").write_bytes(b"x" * (3 * 2**20 + 2**19))
    assert disk.runs_disk_problem(tmp_path, {"GAPDEMO_RUNS_MAX_BYTES": "4MB"}) is None
    assert disk.runs_disk_problem(tmp_path, {"GAPDEMO_RUNS_MAX_BYTES": "2MB"}) == (
        "The runs folder holds 3.5 MiB, past this server's cap of 2 MiB (GAPDEMO_RUNS_MAX_BYTES); "
        "new work waits until the operator makes room.")
    assert "holds more than 3.5 MiB, past this server's cap of 3.5 MiB" in disk.runs_disk_problem(
        tmp_path, {"GAPDEMO_RUNS_MAX_BYTES": str(3 * 2**20 + 2**19 - 1)})
    assert disk.runs_disk_problem(tmp_path / "no runs yet", {}) is None


def test_one_walk_serves_every_caller_for_a_few_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "WALK_MAX_AGE_SECONDS", 3600.0)  # no slow machine makes this test walk twice
    walks = []
    walk = disk.folder_bytes
    monkeypatch.setattr(disk, "folder_bytes", lambda folder: walks.append(folder) or walk(folder))
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    callers = [threading.Thread(target=disk.runs_disk_problem, args=(tmp_path, {})) for _ in range(30)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(walks) == 1
    (tmp_path / "b.bin").write_bytes(b"x" * 5)
    assert disk.runs_folder_bytes(tmp_path) == 10  # the walk of a moment ago
    assert disk.runs_folder_bytes(tmp_path, max_age_seconds=0) == 15 and len(walks) == 2


def a_runs_folder_of(tmp_path, size: int):
    runs = tmp_path / "runs"
    (runs / "20261207-090000-abcd").mkdir(parents=True)
    (runs / "20261207-090000-abcd" / "batch_metrics.csv").write_bytes(b"x" * size)
    return runs


def test_a_served_gate_refuses_new_work_past_the_cap_and_deletes_nothing(tmp_path, monkeypatch):
    from gapdemo.config import tiny_config
    from gapdemo.validation import validate_run_config

    runs = a_runs_folder_of(tmp_path, 3 * 1024)
    monkeypatch.setenv("GAPDEMO_RUNS_MAX_BYTES", "2K")
    config = tiny_config(str(runs))
    assert validate_run_config(config, served=True) == [
        "The runs folder holds 3 KiB, past this server's cap of 2 KiB (GAPDEMO_RUNS_MAX_BYTES); "
        "new work waits until the operator makes room."]
    assert validate_run_config(config, served=False) == []  # the machine's own user decides for themselves
    assert (runs / "20261207-090000-abcd" / "batch_metrics.csv").stat().st_size == 3 * 1024
    monkeypatch.setenv("GAPDEMO_RUNS_MAX_BYTES", "4K")
    assert validate_run_config(config, served=True) == []


def test_a_served_page_past_the_cap_says_so_and_offers_no_start(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    runs = a_runs_folder_of(tmp_path, 3 * 1024)
    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(runs))
    monkeypatch.setenv("GAPDEMO_RUNS_MAX_BYTES", "2K")
    st.cache_resource.clear()
    page = AppTest.from_file("../app.py", default_timeout=120)
    page.run()
    assert not page.exception
    assert any(error.value.startswith("The runs folder holds 3 KiB, past this server's cap of 2 KiB")
               for error in page.sidebar.error)
    assert page.button(key="start").disabled and page.button(key="claims_start").disabled
