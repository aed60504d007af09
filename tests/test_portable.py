"""The core paths as macOS and Windows run them (tests/portable_mode.py), and each fallback for a call
that only some systems have: a full load, train, list, export and classify, then the pieces one by one."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pytest
from PIL import Image

from gapdemo import runs
from gapdemo.cli import main
from gapdemo.config import DataConfig, RunConfig
from gapdemo.data import cache, folder, npy_maps
from gapdemo.data.sources import DataError, load_splits
from gapdemo.runs import atomic
from gapdemo.sweep.grid import sweep_id_for
from portable_mode import LINUX_ONLY_CALLS, mapped_files, portable_mode, refuse_if_mapped, windows_name_problem
from toy_data import FOLDER_CLASSES, toy_arrays, write_jpeg_folder


def run_json(capsys, *arguments) -> dict:
    """python -m gapdemo ARGUMENTS --json, in this process (so portable mode holds), as a dict."""
    capsys.readouterr()
    assert main([*arguments, "--json"]) == 0, capsys.readouterr().err[-2000:]
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def cache_entries(cache_dir: Path) -> list[Path]:
    return sorted(path for path in cache_dir.iterdir() if not path.name.startswith("."))


@pytest.fixture
def as_on_macos_and_windows(monkeypatch):
    with portable_mode(monkeypatch, shrink_owner=npy_maps):
        yield


# --- the test mode: the whole path, as macOS and Windows run it ----------------------------------


@pytest.mark.slow
def test_load_train_list_export_and_classify_as_on_macos_and_windows(tmp_path, capsys, as_on_macos_and_windows):
    assert not any(hasattr(os, name) for name in LINUX_ONLY_CALLS)
    assert multiprocessing.get_start_method() == "spawn"
    photos = write_jpeg_folder(tmp_path / "pets")
    cache_dir, runs_dir, exported = tmp_path / "cache", tmp_path / "runs", tmp_path / "export"
    data = ["--dataset", "folder", "--data-dir", str(photos), "--image-size", "32", "--cache-dir", str(cache_dir)]

    first = run_json(capsys, "data", *data)
    assert first["cache_used"] is False and first["class_names"] == list(FOLDER_CLASSES)
    (entry,) = cache_entries(cache_dir)  # written under Windows' rules: nothing renamed or cut while mapped
    assert (entry / "meta.json").is_file() and sorted(os.listdir(cache_dir)) == [entry.name]
    assert run_json(capsys, "data", *data)["cache_used"] is True

    trained = run_json(capsys, "train", *data, "--backends", "fc,gap", "--epochs", "1", "--batch-size", "8",
                       "--seed", "0", "--runs-dir", str(runs_dir))
    assert trained["status"] == "finished" and trained["epochs_completed"] == 1
    metrics = runs.read_epoch_metrics(trained["run_dir"])
    assert sorted(metrics.backend) == ["fc", "gap"] and np.isfinite(metrics[["loss", "val_loss"]].to_numpy()).all()

    (row,) = run_json(capsys, "runs", "--runs-dir", str(runs_dir))["runs"]
    assert row["run_id"] == trained["run_id"] and row["state"] == "finished" and row["epochs_completed"] == 1

    capsys.readouterr()
    assert main(["export", trained["run_id"], "--runs-dir", str(runs_dir), "--to", str(exported),
                 "--formats", "html,csv"]) == 0
    assert (exported / "metrics.csv").read_bytes() == (Path(trained["run_dir"]) / "metrics.csv").read_bytes()
    assert any(path.suffix == ".html" and path.stat().st_size > 0 for path in exported.iterdir())
    assert {"models/fc.keras", "models/gap.keras"} <= set(runs.list_run_files(trained["run_dir"]))  # zip names

    photo = sorted((photos / "Dog").iterdir())[0]
    answer = run_json(capsys, "classify", str(photo), "--run", trained["run_id"], "--runs-dir", str(runs_dir))
    assert answer["run_id"] == trained["run_id"] and list(answer["backends"]) == ["fc", "gap"]
    for values in answer["backends"].values():
        assert values["p_cat"] + values["p_dog"] == pytest.approx(1.0, abs=2e-6)
        assert values["label"] == ("dog" if values["p_dog"] >= 0.5 else "cat")


def test_portable_mode_holds_the_file_system_to_windows_rules(tmp_path, monkeypatch):
    """The test mode's own check: a mapped file is refused as Windows refuses it (where maps can be read)."""
    if mapped_files() is None:
        pytest.skip("this system's memory maps cannot be read; its own rules apply instead")
    path = tmp_path / "mapped.bin"
    path.write_bytes(b"\0" * 4096)
    mapped = np.memmap(path, np.uint8, mode="r")
    with pytest.raises(PermissionError):
        refuse_if_mapped(tmp_path)  # the folder holding it cannot be renamed either
    with portable_mode(monkeypatch):
        with pytest.raises(PermissionError):
            os.rename(path, tmp_path / "moved.bin")
        with pytest.raises(OSError, match="Windows would refuse"):
            os.mkdir(tmp_path / "a:b")
        del mapped
        os.rename(path, tmp_path / "moved.bin")  # unmapped: allowed
        with pytest.raises(ValueError, match="spawn"):
            multiprocessing.set_start_method("fork", force=True)


# --- the image cache under Windows' file rules ---------------------------------------------------


def _folder_config(photos: Path, cache_dir: Path) -> DataConfig:
    return DataConfig(dataset="folder", data_dir=str(photos), image_size=32, seed=0, cache_dir=str(cache_dir))


def _assert_same_images(source, reference) -> None:
    for name, split in reference.splits.items():
        np.testing.assert_array_equal(source.splits[name].images, split.images)
        np.testing.assert_array_equal(source.splits[name].labels, split.labels)


@pytest.fixture
def photos_and_reference(tmp_path):
    """A folder of JPEGs and its splits as decoded into a cache of their own (the images to expect)."""
    photos = write_jpeg_folder(tmp_path / "pets", per_class=10)
    reference, _ = load_splits(_folder_config(photos, tmp_path / "reference-cache"))
    for split in reference.splits.values():
        split.images = np.array(split.images)  # copied out of the reference entry's maps
    return photos, reference


def test_the_cache_writes_its_entry_under_windows_file_rules(photos_and_reference, tmp_path, monkeypatch):
    photos, reference = photos_and_reference
    with portable_mode(monkeypatch, shrink_owner=npy_maps):
        source, info = load_splits(_folder_config(photos, tmp_path / "cache"))
        assert not info.cache_used and info.cache_note.startswith("Decoded the images into the cache")
        _assert_same_images(source, reference)
        again, info = load_splits(_folder_config(photos, tmp_path / "cache"))
    assert info.cache_used and len(cache_entries(tmp_path / "cache")) == 1
    _assert_same_images(again, reference)


def _refuse(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Access is denied")


@pytest.mark.parametrize("refused", ["shrink_npy", "rename"])
def test_a_refused_cut_or_rename_carries_on_says_so_and_loses_nothing(photos_and_reference, tmp_path, monkeypatch,
                                                                         refused):
    """What Windows does when a file of the entry is still open: the load goes on from the written files."""
    photos, reference = photos_and_reference
    if refused == "rename":
        monkeypatch.setattr(os, "rename", _refuse)
    else:
        monkeypatch.setattr(npy_maps, refused, _refuse)
    cache_dir = tmp_path / "cache"
    source, info = load_splits(_folder_config(photos, cache_dir))
    assert not info.cache_used and info.cache_note == (
        f"Could not write the image cache in {cache_dir} (Access is denied); training goes on without it, "
        "so the next load decodes the images again.")
    _assert_same_images(source, reference)
    assert cache_entries(cache_dir) == []
    monkeypatch.undo()
    again, info = load_splits(_folder_config(photos, cache_dir))  # and the next load caches as usual
    assert not info.cache_used and len(cache_entries(cache_dir)) == 1
    _assert_same_images(again, reference)


# --- calls only some systems have ----------------------------------------------------------------


def test_decoding_threads_without_sched_getaffinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert folder._worker_count() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable"
    assert folder._worker_count() == 1


def test_decoding_threads_follow_the_affinity_where_it_exists(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert folder._worker_count() == 2  # the cores this process may use, not the machine's


def test_the_names_gapdemo_gives_files_and_folders_are_allowed_on_windows():
    names = [runs.new_run_id(), f"claims-{runs.new_run_id()}", sweep_id_for(RunConfig(), {"dropout_rate": [0.3]}, 2),
             cache.CacheRequest(Path("c"), cache.entry_label("folder", 'CON:<pets>?*"|', "100px"), "ab12").entry.name,
             cache.entry_label("folder", "nul", "32px"), cache.entry_label("a.", " b ", "c:")]
    assert [windows_name_problem(name) for name in names] == [None] * len(names), names


def test_class_folders_differing_only_in_case_are_refused(tmp_path):
    """Cat/ and cat/ are two folders here, one on macOS (by default) and Windows: refused either way."""
    for name in ("Cat", "cat"):
        (tmp_path / "pets" / name).mkdir(parents=True, exist_ok=True)  # exists already where case is folded
        Image.fromarray(toy_arrays(1)[0][0]).save(tmp_path / "pets" / name / f"{name}.jpg")
    two_folders = len(os.listdir(tmp_path / "pets")) == 2
    with pytest.raises(DataError, match="differ only in case" if two_folders else "exactly two") as raised:
        folder.scan_folder(str(tmp_path / "pets"))
    assert "\n" not in str(raised.value)


def test_files_are_listed_in_the_same_order_on_every_system(tmp_path):
    """Windows' paths sort without case; the listing (and so the seeded split) must not depend on it."""
    class_folder = tmp_path / "Cat"
    for relative in ("a.jpg", "sub-x.jpg", "B.jpg", "sub/c.jpg"):  # no two alike but for case: macOS folds them
        (class_folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (class_folder / relative).write_bytes(b"x")
    listed = [path.relative_to(class_folder).as_posix() for path, _, _ in folder._image_files(class_folder)]
    assert listed == ["B.jpg", "a.jpg", "sub/c.jpg", "sub-x.jpg"]  # by code point, folder by folder
    as_on_windows = [(PureWindowsPath("C:/pets/Cat", name), 1, 0) for name in ("b.jpg", "A.jpg", "a.jpg")]
    as_on_linux = [(PurePosixPath("/pets/Cat", name), 1, 0) for name in ("b.jpg", "A.jpg", "a.jpg")]
    assert [item[0].name for item in sorted(as_on_windows, key=folder._listing_order)] == \
        [item[0].name for item in sorted(as_on_linux, key=folder._listing_order)] == ["A.jpg", "a.jpg", "b.jpg"]


def test_folders_are_not_opened_for_fsync_on_windows(tmp_path, monkeypatch):
    """Windows cannot open a folder as a file (NTFS journals folder entries itself): nothing to do there,
    and a system that refuses to open a folder the same way is passed by, not a failed write."""
    opened = []
    monkeypatch.setattr(os, "open", lambda *args, **kwargs: opened.append(args) or _refuse())
    monkeypatch.setattr(os, "name", "nt")
    atomic.fsync_folder(tmp_path)
    assert opened == []  # not even tried
    monkeypatch.setattr(os, "name", "posix")
    atomic.fsync_folder(tmp_path)  # refused as Windows refuses: the fallback, no error
    assert [args[0] for args in opened] == [tmp_path]


def test_an_atomic_write_where_folders_cannot_be_opened_lands_whole(tmp_path, monkeypatch):
    """Opening a folder fails as on Windows: the write still lands whole, and no temp file is left."""
    real_open = os.open

    def windows_open(path, flags, *args):
        if os.path.isdir(path):
            _refuse()
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", windows_open)
    atomic.write_bytes_atomic(tmp_path / "status.json", b"{}")
    assert [path.name for path in tmp_path.iterdir()] == ["status.json"]


