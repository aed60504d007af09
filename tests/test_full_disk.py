"""A full disk during a run: the run fails with one sentence, and the previous epoch's models stay whole."""

import errno
import hashlib
import os
import shutil
import subprocess
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from gapdemo import runs
from gapdemo.config import tiny_config
from gapdemo.training.job import TrainingJob
from gapdemo.training.trainer import Trainer
from toy_data import toy_loader

FULL_DISK_SENTENCE = "The disk is full: the run stopped in epoch 2, and the models of epoch 1 are kept."


def model_digests(run_dir) -> dict:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((run_dir / "models").glob("*.keras")) if not path.name.startswith(".")}


def hidden_files(run_dir) -> list:
    return sorted(str(path.relative_to(run_dir)) for path in run_dir.rglob(".*"))


@pytest.fixture
def after_first_epoch(monkeypatch):
    """Runs a function once epoch 1 is saved (in the training thread), keeping the models' digests then."""
    seen = {}

    def install(action):
        original = Trainer.finish_epoch

        def finish_epoch(trainer, epoch, *args, **kwargs):
            original(trainer, epoch, *args, **kwargs)
            if epoch == 1:
                seen["digests"] = model_digests(trainer.run_dir)
                action(trainer.run_dir)

        monkeypatch.setattr(Trainer, "finish_epoch", finish_epoch)
        return seen

    return install


def assert_epoch_one_models_kept(job, digests_after_epoch_one):
    assert job.state == "failed"
    assert job.snapshot().message == FULL_DISK_SENTENCE
    assert model_digests(job.run_dir) == digests_after_epoch_one  # no half file in place of a good one
    assert hidden_files(job.run_dir) == []  # no temp file left behind
    models = runs.load_models(job.run_dir)
    assert set(models) == {"fc", "gap"}
    assert all(model.predict(keras.ops.zeros((1, 32, 32, 3)), verbose=0).shape == (1, 1) for model in models.values())
    assert sorted(runs.read_epoch_metrics(job.run_dir).epoch.unique()) == [1]


def test_model_write_failing_in_epoch_two(runs_dir, monkeypatch, after_first_epoch):
    """The second back-end's model write runs out of space half-way: neither back-end moves to epoch 2."""
    saves = []
    original_save = keras.Model.save

    def save(model, filepath, *args, **kwargs):
        saves.append(str(filepath))
        if len(saves) > 2 and len(saves) % 2 == 0:  # epoch 2 on: the second model of each epoch
            with open(filepath, "wb") as handle:
                handle.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return original_save(model, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)
    seen = after_first_epoch(lambda run_dir: None)
    config = tiny_config(str(runs_dir), ("fc", "gap"))
    config.train.epochs = 3
    job = TrainingJob(config, data_loader=toy_loader())
    assert job.run() == "failed"
    assert len(saves) == 4  # epoch 1: two models; epoch 2: the first, then the failing second
    assert_epoch_one_models_kept(job, seen["digests"])
    assert runs.read_status(job.run_dir)["state"] == "failed"
    assert runs.read_status(job.run_dir)["epochs_completed"] == 1


def test_single_model_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    target = tmp_path / "gap.keras"
    runs.save_model_atomic(model, target)
    good = target.read_bytes()

    def failing_save(model, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", failing_save)
    with pytest.raises(OSError):
        runs.save_model_atomic(model, target)
    assert target.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["gap.keras"]


@pytest.fixture
def small_file_system(tmp_path):
    """A 16 MB tmpfs at tmp_path/disk (root only); skips where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_leaving(free_bytes: int):
    """After epoch 1, fill the file system so that only about free_bytes remain."""

    def fill(run_dir):
        stats = os.statvfs(run_dir)
        to_fill = stats.f_bavail * stats.f_frsize - free_bytes
        with open(run_dir.parent / "filler.bin", "wb") as handle:
            handle.write(b"\0" * max(to_fill, 0))

    return fill


def test_real_full_disk_on_a_small_file_system(small_file_system, after_first_epoch):
    """On a real tmpfs: room for epoch 2's metrics, probes and the FC model, not for GAP's as well."""
    runs_dir = small_file_system / "runs"
    runs_dir.mkdir()
    # At 32x32 the FC model takes ~340 KB and GAP's ~175 KB: leave room for the first only.
    seen = after_first_epoch(fill_leaving(420 * 1024))
    config = tiny_config(str(runs_dir), ("fc", "gap"))
    config.train.epochs = 3
    job = TrainingJob(config, data_loader=toy_loader())
    assert job.run() == "failed"
    assert_epoch_one_models_kept(job, seen["digests"])


# --- the image cache where os.posix_fallocate does not exist (macOS, Windows) --------------------


def _pet_folder(tmp_path):
    from gapdemo.data.petimages import write_pet_images

    return write_pet_images(tmp_path / "PetImages", 12, seed=0, workers=2).root


def _folder_config(root, cache_dir):
    from gapdemo.config import DataConfig

    return DataConfig(dataset="folder", data_dir=str(root), image_size=32, seed=0, cache_dir=str(cache_dir))


def test_without_posix_fallocate_the_cache_file_gets_its_full_size(tmp_path, monkeypatch):
    from gapdemo.data import npy_maps

    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    monkeypatch.setattr(npy_maps, "RESERVE_CHUNK_BYTES", 1000)  # several chunks, the last one short
    path = tmp_path / "train_images.npy"
    images = npy_maps.create_npy_memmap(path, 5, (32, 32, 3))
    assert path.stat().st_size == npy_maps.NPY_HEADER_BYTES + 5 * 32 * 32 * 3
    images[4] = 7
    images.flush()
    del images
    reread = np.load(path, mmap_mode="r")  # the header still describes the file
    assert reread.shape == (5, 32, 32, 3) and reread.dtype == np.uint8
    assert int(reread[:4].max()) == 0 and int(reread[4].min()) == 7


def test_without_posix_fallocate_a_full_disk_is_refused_before_decoding(tmp_path, monkeypatch):
    from gapdemo.data import decode, npy_maps
    from gapdemo.data.sources import load_splits

    root = _pet_folder(tmp_path)
    expected, _ = load_splits(_folder_config(root, tmp_path / "reference-cache"))
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - 4096, free=4096))
    decoded_at_refusal, real_decode, real_reserve = [], decode.decode_image_file, npy_maps.reserve_space
    decoded = []
    monkeypatch.setattr(decode, "decode_image_file", lambda path, size: decoded.append(path) or real_decode(path, size))

    def reserve(*args):
        decoded_at_refusal.append(len(decoded))
        return real_reserve(*args)

    monkeypatch.setattr(npy_maps, "reserve_space", reserve)
    cache_dir = tmp_path / "cache"
    source, info = load_splits(_folder_config(root, cache_dir))
    assert decoded_at_refusal == [0]  # refused when the first split asked for space, before any image
    assert not info.cache_used and info.cache_note.startswith(f"Could not write the image cache in {cache_dir} "
                                                              "(No space left on device: the images need ")
    assert "4 KiB are free" in info.cache_note and "\n" not in info.cache_note
    assert list(cache_dir.iterdir()) == []  # no entry, no .partial- folder, no half file
    for name, split in source.splits.items():  # the load carried on in memory: the same images
        np.testing.assert_array_equal(split.images, expected.splits[name].images)


@pytest.mark.parametrize("refusal", [errno.EOPNOTSUPP, errno.EINVAL])
def test_a_file_system_refusing_posix_fallocate_gets_the_portable_reservation(tmp_path, monkeypatch, refusal):
    from gapdemo.data import npy_maps

    def refuse(descriptor, offset, length):
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "posix_fallocate", refuse, raising=False)
    path = tmp_path / "images.npy"
    npy_maps.create_npy_memmap(path, 3, (8, 8, 3))
    assert path.stat().st_size == npy_maps.NPY_HEADER_BYTES + 3 * 8 * 8 * 3


def test_cache_on_a_real_full_disk_without_posix_fallocate(small_file_system, tmp_path, monkeypatch):
    """On a real 16 MB tmpfs, with only zeros to reserve space: the load carries on in memory, nothing is left."""
    from gapdemo.data.sources import load_splits

    root = _pet_folder(tmp_path)
    (small_file_system / "spot").mkdir()
    fill_leaving(4096)(small_file_system / "spot")  # fills the tmpfs but for one image's worth
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    cache_dir = small_file_system / "cache"
    source, info = load_splits(_folder_config(root, cache_dir))
    assert not info.cache_used and "No space left on device" in info.cache_note
    assert list(cache_dir.iterdir()) == []
    assert sum(len(split.labels) for split in source.splits.values()) == info.splits["train"] + \
        info.splits["validation"] + info.splits["test"]
