"""The decoded-image cache: hits and misses, invalidation, atomic writes, damaged and unwritable caches,
parallel decoding, the PetImages stand-in's junk, and the memory-mapped pipeline."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gapdemo.cli import main
from gapdemo.config import DataConfig
from gapdemo.data import cache, cache_writer, decode, folder, npy_maps
from gapdemo.data.petimages import write_pet_images
from gapdemo.data.sources import DataError, cache_status, load_data, load_splits
from gapdemo.data.splits import SPLITS, IndexedImages

SIZE = 32
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """The cache root of this test (also in the environment, for code that reads no config)."""
    monkeypatch.setenv("GAPDEMO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def pets(tmp_path):
    """A PetImages stand-in of 30 files per class: photos plus every kind of junk."""
    return write_pet_images(tmp_path / "PetImages", 30, seed=0, workers=2)


def _config(root, **overrides) -> DataConfig:
    values = dict(dataset="folder", data_dir=str(root), image_size=SIZE, train_size=None, seed=0)
    values.update(overrides)
    return DataConfig(**values)


def _entries(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.iterdir()) if cache_dir.exists() else []


def _assert_same_splits(first, second) -> None:
    for name in SPLITS:
        np.testing.assert_array_equal(first.splits[name].images, second.splits[name].images)
        np.testing.assert_array_equal(first.splits[name].labels, second.splits[name].labels)


def _forbid_decoding(monkeypatch) -> None:
    def refuse(path, image_size):
        raise AssertionError(f"decoded {path} although the cache holds it")
    monkeypatch.setattr(decode, "decode_image_file", refuse)


# --- hits, misses and invalidation --------------------------------------------------------------


def test_second_load_reads_the_cache_as_memory_maps(pets, cache_dir, monkeypatch):
    first, first_info = load_splits(_config(pets.root))
    assert not first_info.cache_used and str(cache_dir) in first_info.cache_note
    assert len(_entries(cache_dir)) == 1
    _forbid_decoding(monkeypatch)
    second, second_info = load_splits(_config(pets.root))
    assert second_info.cache_used and "Read the decoded images from the cache" in second_info.cache_note
    for split in second.splits.values():  # rows of the entry's one read-only memory map, not copies
        assert isinstance(split.images, IndexedImages) and isinstance(split.images.base, np.memmap)
        assert split.images.base is second.splits["train"].images.base and not split.images.base.flags.writeable
    _assert_same_splits(first, second)
    assert second_info.skipped == first_info.skipped and second_info.splits == first_info.splits


def test_another_image_size_misses_the_cache(pets, cache_dir):
    load_splits(_config(pets.root))
    _, info = load_splits(_config(pets.root, image_size=40))
    assert not info.cache_used and len(_entries(cache_dir)) == 2


@pytest.mark.parametrize("setting", [dict(seed=1), dict(train_size=20), dict(seed=7, train_size=11)])
def test_another_seed_or_cap_reads_the_same_entry(pets, cache_dir, monkeypatch, setting):
    load_splits(_config(pets.root))
    _forbid_decoding(monkeypatch)
    source, info = load_splits(_config(pets.root, **setting))
    assert info.cache_used and len(_entries(cache_dir)) == 1
    assert info.splits["train"] == setting.get("train_size", info.splits["train"])
    rows = [source.splits[name].images.rows for name in SPLITS]
    assert len(set(np.concatenate(rows).tolist())) == sum(len(part) for part in rows)  # no image in two splits


def _add_file(root: Path) -> None:
    Image.new("RGB", (60, 50), (200, 10, 10)).save(root / "Cat" / "added.jpg")


def _modify_file(root: Path) -> None:
    path = root / "Dog" / "0.jpg"
    Image.new("RGB", (70, 70), (10, 200, 10)).save(path, format="JPEG")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse clocks


def _remove_file(root: Path) -> None:
    readable = next(path for path in sorted((root / "Cat").glob("*.jpg")) if path.stat().st_size > 20_000)
    readable.unlink()


@pytest.mark.parametrize("change, count_change", [(_add_file, 1), (_modify_file, 0), (_remove_file, -1)])
def test_a_changed_folder_is_decoded_again_and_the_old_entry_goes(pets, cache_dir, change, count_change):
    _, before = load_splits(_config(pets.root))
    change(pets.root)
    after_source, after = load_splits(_config(pets.root))
    assert not after.cache_used
    assert sum(after.splits.values()) == sum(before.splits.values()) + count_change
    assert len(_entries(cache_dir)) == 1  # the stale entry of the same folder and settings is gone
    if change is _modify_file:  # the new pixels, not the cached ones
        modified = decode.decode_image_file(pets.root / "Dog" / "0.jpg", SIZE)
        assert any((split.images == modified).all(axis=(1, 2, 3)).any() for split in after_source.splits.values())


# --- atomic writes ------------------------------------------------------------------------------


def test_a_load_failing_mid_write_leaves_no_cache_behind(pets, cache_dir, monkeypatch):
    calls = []
    original = decode.decode_image_file

    def failing(path, image_size):
        calls.append(path)
        if len(calls) == 25:
            raise KeyboardInterrupt  # not an Exception: it escapes the per-file skip, like a Ctrl-C
        return original(path, image_size)

    monkeypatch.setattr(decode, "decode_image_file", failing)
    with pytest.raises(KeyboardInterrupt):
        load_splits(_config(pets.root))
    assert _entries(cache_dir) == []  # no entry and no .partial- folder


def test_a_killed_load_leaves_no_entry_and_its_partial_folder_is_removed_later(pets, cache_dir):
    script = ("import sys, time; sys.path.insert(0, sys.argv[1]); from gapdemo.data import decode; "
              "slow = decode.decode_image_file; "
              "decode.decode_image_file = lambda path, size: (time.sleep(0.2), slow(path, size))[1]; "
              "from gapdemo.config import DataConfig; from gapdemo.data.sources import load_splits; "
              "load_splits(DataConfig(dataset='folder', data_dir=sys.argv[2], image_size=32, train_size=None))")
    environment = dict(os.environ, GAPDEMO_CACHE_DIR=str(cache_dir))
    process = subprocess.Popen([sys.executable, "-c", script, str(REPO_ROOT), str(pets.root)], env=environment)
    deadline = time.monotonic() + 60
    while not any(name.startswith(cache.PARTIAL_PREFIX) for name in _entries(cache_dir)):
        assert time.monotonic() < deadline and process.poll() is None, "the load never started writing"
        time.sleep(0.1)
    process.kill()  # SIGKILL; TerminateProcess on Windows
    process.wait()
    assert all(name.startswith(cache.PARTIAL_PREFIX) for name in _entries(cache_dir))  # no entry
    _, info = load_splits(_config(pets.root))
    assert not info.cache_used and len(_entries(cache_dir)) == 1  # the dead writer's folder went
    assert not _entries(cache_dir)[0].startswith(".")


# --- damaged and unwritable caches --------------------------------------------------------------


def _truncate_images(entry: Path) -> None:
    path = entry / "all_images.npy"
    os.truncate(path, path.stat().st_size // 2)


def _garble_meta(entry: Path) -> None:
    (entry / "meta.json").write_text("{ not json")


def _remove_labels(entry: Path) -> None:
    (entry / "all_labels.npy").unlink()


def _wrong_labels(entry: Path) -> None:
    np.save(entry / "all_labels.npy", np.full(3, 7, np.int64))


@pytest.mark.parametrize("damage", [_truncate_images, _garble_meta, _remove_labels, _wrong_labels])
def test_a_damaged_cache_is_decoded_again_with_a_note(pets, cache_dir, damage):
    first, _ = load_splits(_config(pets.root))
    for split in first.splits.values():  # copied out: reading a memory map past a cut-off end is a bus error
        split.images = np.array(split.images)
    damage(cache_dir / _entries(cache_dir)[0])
    second, info = load_splits(_config(pets.root))
    assert not info.cache_used and "damaged" in info.cache_note and "decoded again" in info.cache_note
    assert "\n" not in info.cache_note
    _assert_same_splits(first, second)
    third, again = load_splits(_config(pets.root))
    assert again.cache_used  # the rebuilt entry serves the next load
    _assert_same_splits(first, third)


def test_an_unwritable_cache_dir_still_loads_and_says_so(pets, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("the cache dir cannot live under a file")
    source, info = load_splits(_config(pets.root, cache_dir=str(not_a_folder / "cache")))
    assert not info.cache_used and info.splits["train"] > 0
    assert info.cache_note.startswith("Could not write the image cache") and "next load decodes" in info.cache_note
    assert not isinstance(source.splits["train"].images.base, np.memmap)


def test_a_read_only_cache_dir_still_loads(pets, cache_dir, monkeypatch):
    cache_dir.mkdir()
    real_mkdir = Path.mkdir

    def read_only_mkdir(path, *args, **kwargs):  # chmod cannot stop root, so the file system says no
        if Path(path).parent == cache_dir:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    _, info = load_splits(_config(pets.root))
    assert not info.cache_used and info.splits["train"] > 0 and _entries(cache_dir) == []
    assert info.cache_note == (f"Could not write the image cache in {cache_dir} (Read-only file system); training "
                               "goes on without it, so the next load decodes the images again.")


def test_a_full_disk_still_loads_and_leaves_no_partial_folder(pets, cache_dir, monkeypatch):
    def no_space(path, capacity, shape):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(npy_maps, "create_npy_memmap", no_space)
    loaded = load_data(_config(pets.root), batch_size=8)
    assert "No space left on device" in loaded.info.cache_note and not loaded.info.cache_used
    assert _entries(cache_dir) == []
    assert sum(len(labels) for _, labels in loaded.train.as_numpy_iterator()) == loaded.info.splits["train"]


def test_a_disk_filling_up_after_the_images_still_loads(pets, cache_dir, monkeypatch):
    original = cache_writer.write_atomically

    def full_at_the_labels(path, write, mode=0o666):  # the images got their space; the labels find none
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_writer, "write_atomically", full_at_the_labels)
    first, info = load_splits(_config(pets.root))
    assert "No space left on device" in info.cache_note and _entries(cache_dir) == []
    monkeypatch.setattr(cache_writer, "write_atomically", original)
    again, _ = load_splits(_config(pets.root, cache_dir=str(cache_dir / "other")))
    _assert_same_splits(first, again)


# --- decoding -----------------------------------------------------------------------------------


def test_parallel_decoding_equals_serial_decoding(pets, cache_dir, monkeypatch):
    monkeypatch.setattr(folder, "_worker_count", lambda: 1)
    serial, serial_info = load_splits(_config(pets.root, cache_dir=str(cache_dir / "serial")))
    monkeypatch.setattr(folder, "_worker_count", lambda: 4)
    monkeypatch.setattr(folder, "DECODE_CHUNK", 7)  # chunks that end mid-split
    parallel, parallel_info = load_splits(_config(pets.root, cache_dir=str(cache_dir / "parallel")))
    _assert_same_splits(serial, parallel)
    assert serial_info.skipped == parallel_info.skipped


def test_resize_matches_tensorflow_bit_for_bit():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for height, width, size in [(37, 53, 32), (500, 375, 100), (150, 480, 200), (20, 20, 64), (1, 300, 33)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = tf.image.resize(image, (size, size), method="bilinear")
        expected = tf.cast(tf.clip_by_value(tf.round(expected), 0, 255), tf.uint8).numpy()
        np.testing.assert_array_equal(decode.resize_bilinear(image, size), expected)


def test_the_stand_ins_junk_is_skipped_with_reasons_and_the_rest_decodes(pets, cache_dir):
    _, info = load_splits(_config(pets.root))
    assert sorted(entry["path"] for entry in info.skipped) == sorted(pets.unreadable)
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in info.skipped}
    assert all(reasons.values()) and "empty file (0 bytes)" in reasons.values()
    readable = 2 * pets.files_per_class - len(pets.unreadable)  # CMYK, grayscale and PNG-as-.jpg decode fine
    assert sum(info.splits.values()) == readable
    assert not any("Thumbs.db" in entry["path"] for entry in info.skipped)  # not an image name: ignored


def test_a_folder_of_junk_only_gets_one_sentence(tmp_path, cache_dir, capsys):
    for class_name in ("Cat", "Dog"):
        (tmp_path / "Junk" / class_name).mkdir(parents=True)
        for index in range(3):
            (tmp_path / "Junk" / class_name / f"{index}.jpg").write_bytes(b"" if index else b"\xff\xd8 broken")
    with pytest.raises(DataError, match="None of the 6 image files") as error:
        load_splits(_config(tmp_path / "Junk"))
    assert "\n" not in str(error.value)
    assert main(["data", "--dataset", "folder", "--data-dir", str(tmp_path / "Junk")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "None of the 6 image files" in errors[0]


def test_a_folder_changing_while_decoding_gets_one_sentence(pets, cache_dir, monkeypatch):
    original = decode.decode_image_file

    def decode_and_add(path, image_size):
        _add_file(pets.root)  # another program copies files in meanwhile
        return original(path, image_size)

    monkeypatch.setattr(decode, "decode_image_file", decode_and_add)
    with pytest.raises(DataError, match="changed while its images were being decoded"):
        load_splits(_config(pets.root))
    assert _entries(cache_dir) == []


# --- the memory-mapped pipeline -----------------------------------------------------------------


def _batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(dataset.as_numpy_iterator())


def test_the_memory_mapped_pipeline_yields_the_arrays_batches(pets, cache_dir):
    load_splits(_config(pets.root))
    cached = load_data(_config(pets.root), batch_size=8)
    assert cached.info.cache_used and isinstance(cached.validation_images.base, np.memmap)
    source, _ = load_splits(_config(pets.root))
    in_memory = {name: (np.array(source.splits[name].images), source.splits[name].labels) for name in SPLITS}
    from gapdemo.data.sources import make_pipeline

    arrays_train = make_pipeline(*in_memory["train"], batch_size=8, shuffle=True, seed=0)
    for _ in range(2):  # two epochs: the same reshuffled order from both
        for (mapped_images, mapped_labels), (images, labels) in zip(_batches(cached.train), _batches(arrays_train),
                                                                    strict=True):
            np.testing.assert_array_equal(mapped_images, images)
            np.testing.assert_array_equal(mapped_labels, labels)
    validation = np.concatenate([images for images, _ in _batches(cached.validation)])
    np.testing.assert_allclose(validation, in_memory["validation"][0] / 255.0, atol=1e-6)


def test_shuffled_batches_hold_the_images_the_seeded_shuffle_picks():
    import tensorflow as tf

    from gapdemo.data.sources import make_pipeline

    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1).repeat(3, axis=3)
    dataset = make_pipeline(images, np.arange(40) % 2, batch_size=8, shuffle=True, seed=3)
    order = list(tf.data.Dataset.range(40).shuffle(40, seed=3, reshuffle_each_iteration=True).as_numpy_iterator())
    for index, (batch_images, _) in enumerate(dataset.as_numpy_iterator()):
        picked = np.round(batch_images[:, 0, 0, 0] * 255).astype(int).tolist()
        assert picked == sorted(order[index * 8:(index + 1) * 8])  # a batch is read in index order


# --- status, clearing and location --------------------------------------------------------------


def test_status_and_clear(pets, cache_dir):
    config = _config(pets.root)
    assert not cache_status(config).cached
    load_splits(config)
    status = cache_status(config)
    assert status.cached and 0 < status.entry_bytes <= status.total_bytes and status.root == cache_dir
    (cache_dir / "notes.txt").write_text("not the cache's: clearing keeps it")
    assert cache.clear_cache() >= status.entry_bytes
    assert not cache_status(config).cached and _entries(cache_dir) == ["notes.txt"]
    assert not cache_status(DataConfig()).cached  # synthetic: never cached


def test_cli_reports_cache_use_and_clears(pets, cache_dir, capsys):
    arguments = ["data", "--dataset", "folder", "--data-dir", str(pets.root), "--image-size", "32",
                 "--train-size", "0", "--json"]
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["cache_used"] is False
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["cache_used"] is True
    assert main(["data", "--clear-cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["freed_bytes"] > 0 and _entries(cache_dir) == []


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("GAPDEMO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "gapdemo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_root() == Path.home() / ".cache" / "gapdemo"
    monkeypatch.setenv("GAPDEMO_CACHE_DIR", str(tmp_path / "env"))
    assert cache.cache_root() == tmp_path / "env"
    assert cache.cache_root(str(tmp_path / "given")) == tmp_path / "given"


# --- the sidebar's cache widget -----------------------------------------------------------------


def _cache_widget_page(folder_path, cache_path):
    from dashboard.cache_widget import cache_widget
    from gapdemo.config import DataConfig

    cache_widget(DataConfig(dataset="folder", data_dir=folder_path, image_size=32, train_size=None,
                            cache_dir=cache_path), [])


@pytest.fixture
def bound_to(request):
    """Run the page as if started with --server.address request.param (AppTest runs in this process)."""
    from streamlit import config

    previous = config.get_option("server.address")
    config.set_option("server.address", request.param)
    yield request.param
    config.set_option("server.address", previous)


@pytest.mark.parametrize("bound_to", ["127.0.0.1"], indirect=True)
def test_the_sidebar_says_whether_the_choice_is_cached_and_clears_it(pets, cache_dir, bound_to):
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_function(_cache_widget_page, args=(str(pets.root), str(cache_dir)), default_timeout=60).run()
    assert not page.exception and "not cached yet" in page.caption[0].value
    assert page.button(key="clear_cache").disabled  # nothing to clear
    load_splits(_config(pets.root, image_size=32))
    page = AppTest.from_function(_cache_widget_page, args=(str(pets.root), str(cache_dir)), default_timeout=60).run()
    assert "this choice is cached" in page.caption[0].value and str(cache_dir) in page.caption[0].value
    page.button(key="clear_cache").click().run()
    assert not page.exception and _entries(cache_dir) == []
    assert page.session_state["notice"].startswith("Cleared the image cache")
    assert "not cached yet" in page.caption[0].value


@pytest.mark.parametrize("bound_to", ["0.0.0.0"], indirect=True)
def test_served_to_others_the_widget_shows_no_path_and_no_clear_button(pets, cache_dir, bound_to):
    from streamlit.testing.v1 import AppTest

    load_splits(_config(pets.root, image_size=32))
    page = AppTest.from_function(_cache_widget_page, args=(str(pets.root), str(cache_dir)), default_timeout=60).run()
    assert not page.exception and "this choice is cached" in page.caption[0].value
    assert str(cache_dir) not in page.caption[0].value and not page.button


@pytest.mark.parametrize("bound_to", ["127.0.0.1"], indirect=True)
def test_the_sidebar_says_when_the_cache_folder_cannot_be_written(pets, tmp_path, bound_to):
    from streamlit.testing.v1 import AppTest

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("no cache can live under a file")
    status = cache_status(_config(pets.root, cache_dir=str(not_a_folder / "cache")))
    assert not status.writable and not status.cached
    page = AppTest.from_function(_cache_widget_page, args=(str(pets.root), str(not_a_folder / "cache")),
                                 default_timeout=60).run()
    assert not page.exception and "cannot be written, so every Start decodes the images again" in page.caption[0].value


@pytest.mark.slow
def test_train_says_it_trains_without_a_writable_cache(pets, tmp_path, capsys):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("no cache can live under a file")
    arguments = ["train", "--dataset", "folder", "--data-dir", str(pets.root), "--image-size", "32", "--train-size", "0",
                 "--epochs", "1", "--batch-size", "16", "--backends", "gap", "--runs-dir", str(tmp_path / "runs"),
                 "--cache-dir", str(not_a_folder / "cache")]
    assert main(arguments) == 0
    errors = capsys.readouterr().err
    assert f"Could not write the image cache in {not_a_folder / 'cache'}" in errors and "Traceback" not in errors
