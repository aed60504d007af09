"""The image cache's size limit (least recently used entries go, never one in use), in-use markers,
and .partial- folders unique per load."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gapdemo.config import DataConfig
from gapdemo.data import cache, cache_entries
from gapdemo.data.cache import ENTRY_PART, CacheRequest
from gapdemo.data.cache_writer import EntryWriter
from gapdemo.data.sources import load_splits
from gapdemo.runs import process_token

SIZE = 32


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _folder(root: Path, shade: int) -> Path:
    """root/Cat and root/Dog with 6 flat images each: folders of equal entry size."""
    for label, class_name in enumerate(("Cat", "Dog")):
        (root / class_name).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", (12, 9), (shade, label * 100, index * 20)).save(root / class_name / f"{index}.png")
    return root


def _load(root: Path) -> None:
    """Load root into the cache and drop every array mapped from it (its in-use marker goes)."""
    load_splits(DataConfig(dataset="folder", data_dir=str(root), image_size=SIZE, train_size=None))
    gc.collect()


def _entry_of(cache_dir: Path, root: Path) -> Path:
    (entry,) = [path for path in cache.list_entries(cache_dir) if f"-{root.name}-" in path.name]
    return entry


def _age(entry: Path, seconds: float) -> None:
    """Make the entry's last use seconds ago."""
    when = time.time() - seconds
    os.utime(entry / "meta.json", (when, when))


@pytest.fixture
def three_folders(tmp_path):
    return [_folder(tmp_path / name, shade) for shade, name in enumerate(("first", "second", "third"))]


def _limit_for_two(cache_dir: Path, monkeypatch) -> None:
    """A size limit that holds two of these (equal-sized) entries but not three."""
    size = cache.tree_bytes(cache.list_entries(cache_dir)[0])
    monkeypatch.setenv(cache_entries.MAX_BYTES_VARIABLE, str(int(2.5 * size)))


def test_the_least_recently_used_entry_goes_when_a_new_one_overfills_the_cache(three_folders, cache_dir, monkeypatch):
    first, second, third = three_folders
    _load(first)
    _load(second)
    _age(_entry_of(cache_dir, first), 300)
    _age(_entry_of(cache_dir, second), 200)
    _load(first)  # reading the first again makes the second the least recently used
    _limit_for_two(cache_dir, monkeypatch)
    _load(third)
    kept = {path.name.split("-")[1] for path in cache.list_entries(cache_dir)}
    assert kept == {"first", "third"}
    assert not [path for path in cache_dir.iterdir() if path.name.startswith(cache.PARTIAL_PREFIX)]


def test_an_entry_in_use_by_this_process_is_kept_even_when_it_is_the_oldest(three_folders, cache_dir, monkeypatch):
    first, second, third = three_folders
    held, _ = load_splits(DataConfig(dataset="folder", data_dir=str(first), image_size=SIZE, train_size=None))
    _load(second)
    _age(_entry_of(cache_dir, first), 300)
    _age(_entry_of(cache_dir, second), 200)
    _limit_for_two(cache_dir, monkeypatch)
    _load(third)
    assert {path.name.split("-")[1] for path in cache.list_entries(cache_dir)} == {"first", "third"}
    assert np.asarray(held.splits["train"].images).shape[0] > 0  # its memory map still reads
    entry = _entry_of(cache_dir, first)
    assert (entry / f"{cache_entries.IN_USE_PREFIX}{process_token()}").is_file()
    del held
    gc.collect()
    assert not any(path.name.startswith(cache_entries.IN_USE_PREFIX) for path in entry.iterdir())  # let go


@pytest.fixture
def other_process():
    """A live process that is not this one, and its token."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process_token(process.pid)
    process.kill()
    process.wait()


def test_an_entry_in_use_by_another_live_process_is_kept_and_a_dead_ones_marker_is_ignored(
        three_folders, cache_dir, monkeypatch, other_process):
    first, second, third = three_folders
    _load(first)
    _load(second)
    (_entry_of(cache_dir, first) / f"{cache_entries.IN_USE_PREFIX}{other_process}").touch()
    (_entry_of(cache_dir, second) / f"{cache_entries.IN_USE_PREFIX}999999@12.00").touch()  # no such process
    _age(_entry_of(cache_dir, first), 300)
    _age(_entry_of(cache_dir, second), 200)
    _limit_for_two(cache_dir, monkeypatch)
    _load(third)
    assert {path.name.split("-")[1] for path in cache.list_entries(cache_dir)} == {"first", "third"}


def test_an_entry_that_cannot_be_moved_stays_quietly(three_folders, cache_dir, monkeypatch):
    first, second, _ = three_folders
    _load(first)
    _load(second)

    def refuse(source, target):  # as Windows does while some process has a file in it mapped
        raise PermissionError(13, "The process cannot access the file")

    monkeypatch.setattr(cache_entries.os, "rename", refuse)
    assert cache_entries.evict_least_recently_used(cache_dir, keep=_entry_of(cache_dir, second), limit=0) == []
    assert len(cache.list_entries(cache_dir)) == 2


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(cache_entries.MAX_BYTES_VARIABLE, raising=False)
    assert cache_entries.max_cache_bytes() == cache_entries.DEFAULT_MAX_BYTES
    monkeypatch.setenv(cache_entries.MAX_BYTES_VARIABLE, "5e9")
    assert cache_entries.max_cache_bytes() == 5 * 10**9
    monkeypatch.setenv(cache_entries.MAX_BYTES_VARIABLE, "20GB")
    assert cache_entries.max_cache_bytes() == 20 * 2**30  # binary units, as every size setting
    monkeypatch.setenv(cache_entries.MAX_BYTES_VARIABLE, "lots")  # a typo is an error, no longer the default
    with pytest.raises(ValueError, match="GAPDEMO_CACHE_MAX_BYTES must be a size such as 20GB, 8G or 512M"):
        cache_entries.max_cache_bytes()


# --- .partial- folders --------------------------------------------------------------------------


def test_two_loads_of_one_entry_at_once_in_one_process_write_apart(cache_dir):
    request = CacheRequest(root=cache_dir, label="folder-x-8px", key="0123456789abcdef01234567")
    writers = [EntryWriter(request), EntryWriter(request)]
    assert writers[0].partial != writers[1].partial and all(writer.partial.is_dir() for writer in writers)
    assert all(writer.partial.name.endswith(process_token()) for writer in writers)
    cache.remove_abandoned_partials(cache_dir)  # this process is alive: both folders stay
    assert all(writer.partial.is_dir() for writer in writers)
    images = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    for writer in writers:
        part = writer.open_split(ENTRY_PART, 2, 8)
        for image, label in zip(images, (0, 1), strict=True):
            part.append(image, label)
    decoded = [writer.commit(["cat", "dog"], [], {}) for writer in writers]  # the second finds the first's entry
    for result in decoded:
        np.testing.assert_array_equal(result.images, images)
        assert result.labels.tolist() == [0, 1]
    assert [path.name for path in cache_dir.iterdir() if not path.name.startswith(".")] == [request.entry.name]
    assert not [path for path in cache_dir.iterdir() if path.name.startswith(cache.PARTIAL_PREFIX)]


def test_a_dead_writers_partial_folder_is_removed_and_a_live_ones_kept(cache_dir, other_process):
    cache_dir.mkdir()
    live = cache_dir / f"{cache.PARTIAL_PREFIX}abc-wdeadbeef-{other_process}"
    dead = cache_dir / f"{cache.PARTIAL_PREFIX}abc-wfeedface-999999@12.00"
    older_style = cache_dir / f"{cache.PARTIAL_PREFIX}abc-999999@12.00"  # named before loads were unique
    for folder in (live, dead, older_style):
        folder.mkdir()
    cache.remove_abandoned_partials(cache_dir)
    assert live.is_dir() and not dead.exists() and not older_style.exists()
