"""The data layer: one contract for synthetic, TFDS (mocked) and folder sources, and the data CLI."""

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFile

from gapdemo.cli import main
from gapdemo.config import MAX_SYNTHETIC_TRAIN_SIZE, DataConfig, RunConfig, tiny_config
from gapdemo.data import cats_vs_dogs as cats_vs_dogs_module
from gapdemo.data import decode as decode_module
from gapdemo.data import sources as data_module
from gapdemo.data.petimages import write_cats_vs_dogs_archive
from gapdemo.data.sources import DataError, load_data, make_pipeline, synthetic_split_counts
from gapdemo.data.splits import IndexedImages
from gapdemo.training.job import TrainingJob
from toy_data import numbered_tfds

SIZE = 32
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def private_image_cache(tmp_path, monkeypatch):
    """Every test caches decoded images in its own folder, never in the user's ~/.cache/gapdemo."""
    monkeypatch.setenv("GAPDEMO_CACHE_DIR", str(tmp_path / "image-cache"))
    return tmp_path / "image-cache"


def _tiny(**overrides) -> DataConfig:
    values = dict(image_size=SIZE, train_size=48, synthetic_size=80, seed=0)
    values.update(overrides)
    return DataConfig(**values)


def _all_batches(dataset):
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def _assert_element_spec(dataset):
    images_spec, labels_spec = dataset.element_spec
    assert images_spec.dtype == tf.float32 and images_spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert labels_spec.dtype == tf.float32 and labels_spec.shape.as_list() == [None]


# --- pipeline ---------------------------------------------------------------------------------


def test_make_pipeline_casts_scales_and_batches():
    images = np.random.default_rng(0).integers(0, 256, (10, SIZE, SIZE, 3), dtype=np.uint8)
    images[0] = 255
    dataset = make_pipeline(images, np.arange(10) % 2, batch_size=4, shuffle=False, seed=0)
    _assert_element_spec(dataset)
    batch_images, batch_labels = _all_batches(dataset)
    assert batch_images.min() >= 0.0 and batch_images.max() == 1.0
    np.testing.assert_allclose(batch_images, images / 255.0, atol=1e-6)
    assert batch_labels.tolist() == [0, 1] * 5
    assert [len(labels) for _, labels in dataset.as_numpy_iterator()] == [4, 4, 2]


def test_make_pipeline_shuffle_is_seeded_and_reshuffles_each_epoch():
    images = np.arange(32, dtype=np.uint8).reshape(32, 1, 1, 1).repeat(3, axis=3)
    labels = np.arange(32)

    def orders(seed):
        dataset = make_pipeline(images, labels, batch_size=8, shuffle=True, seed=seed)
        return [_all_batches(dataset)[1].tolist() for _ in range(2)]

    first_epoch, second_epoch = orders(1)
    assert orders(1) == [first_epoch, second_epoch]
    assert first_epoch != second_epoch and sorted(first_epoch) == list(range(32))
    assert orders(2)[0] != first_epoch


@pytest.mark.parametrize("arguments", [
    dict(images_uint8=np.zeros((2, SIZE, SIZE, 3), np.float32), labels=[0, 1], batch_size=1),
    dict(images_uint8=np.zeros((2, SIZE, SIZE, 3), np.uint8), labels=[0, 1], batch_size=0),
])
def test_make_pipeline_rejects_bad_arguments(arguments):
    with pytest.raises(ValueError):
        make_pipeline(**arguments, shuffle=False, seed=0)


# --- synthetic --------------------------------------------------------------------------------


def test_synthetic_source_fills_the_contract():
    reports = []
    loaded = load_data(_tiny(), batch_size=16, progress=lambda message, fraction: reports.append(fraction))
    info = loaded.info
    assert info.dataset == "synthetic" and info.class_names == ["cat", "dog"] and info.has_boxes
    assert info.splits == {"train": 48, "validation": 8, "test": 8}
    assert all(sum(info.class_counts[split].values()) == count for split, count in info.splits.items())
    json.dumps(info.to_dict())
    for dataset in (loaded.train, loaded.validation, loaded.test):
        _assert_element_spec(dataset)
    validation_images, validation_labels = _all_batches(loaded.validation)
    np.testing.assert_allclose(validation_images, loaded.validation_images / 255.0, atol=1e-6)
    assert validation_labels.tolist() == loaded.validation_labels.tolist()
    assert loaded.test_images.dtype == np.uint8 and loaded.test_boxes.shape == (8, 4)
    assert reports and all(0.0 <= fraction <= 1.0 for fraction in reports) and reports[-1] == 1.0


def test_synthetic_train_cap_leaves_validation_and_test_unchanged():
    capped, full = load_data(_tiny(train_size=16), 16), load_data(_tiny(train_size=None), 16)
    assert capped.info.splits["train"] == 16 and full.info.splits["train"] == 64
    assert capped.validation_images.tobytes() == full.validation_images.tobytes()
    assert capped.test_images.tobytes() == full.test_images.tobytes()


def test_synthetic_set_grows_to_cover_the_training_images_asked_for():
    loaded = load_data(_tiny(train_size=100), 16)  # synthetic_size 80 alone would give 64
    assert loaded.info.splits == {"train": 100, "validation": 12, "test": 12}


@pytest.mark.parametrize("train_size", [1, 63, 64, 65, 2012, MAX_SYNTHETIC_TRAIN_SIZE])
def test_synthetic_split_counts_cover_train_size_at_80_10_10(train_size):
    counts = synthetic_split_counts(_tiny(train_size=train_size))  # synthetic_size 80: 64/8/8 at least
    expected_held_out = 8 if train_size <= 64 else train_size / 8  # 10% each beside 80% for training
    assert counts["train"] == train_size and counts["validation"] == counts["test"]
    assert abs(counts["validation"] - expected_held_out) <= 1


def test_synthetic_refuses_more_training_images_than_its_bound():
    with pytest.raises(DataError, match=f"at most {MAX_SYNTHETIC_TRAIN_SIZE:,} training images"):
        load_data(_tiny(train_size=MAX_SYNTHETIC_TRAIN_SIZE + 1), 16)


@pytest.mark.parametrize("overrides", [dict(image_size=8), dict(dataset="mnist"), dict(train_size=0)])
def test_bad_config_raises_value_error(overrides):
    with pytest.raises(ValueError):
        load_data(_tiny(**overrides), 16)


# --- folder -----------------------------------------------------------------------------------


def _image_bytes(image_format: str, mode: str = "RGB", seed: int = 0, size=(40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


GOOD_FILES = [("a.jpg", "JPEG", "RGB"), ("b.JPG", "JPEG", "L"), ("c.jpeg", "JPEG", "CMYK"), ("d.png", "PNG", "RGBA"),
              ("e.png", "PNG", "P"), ("f.bmp", "BMP", "RGB"), ("g.gif", "GIF", "P"), ("h.webp", "WEBP", "RGB"),
              ("i.png", "PNG", "L"), ("j.jpg", "JPEG", "RGB"), ("k.jpg", "JPEG", "RGB"), ("l.png", "PNG", "RGB")]


@pytest.fixture
def pet_folder(tmp_path):
    """PetImages/{Cat,Dog} with 12 good images each in many formats and modes, plus bad files."""
    root = tmp_path / "PetImages"
    for class_index, class_name in enumerate(("Cat", "Dog")):
        folder = root / class_name
        folder.mkdir(parents=True)
        for file_index, (name, image_format, mode) in enumerate(GOOD_FILES):
            (folder / name).write_bytes(_image_bytes(image_format, mode, seed=class_index * 100 + file_index))
        (folder / "notes.txt").write_text("not an image, and not an image extension: ignored")
        (folder / ".hidden.jpg").write_bytes(b"hidden files are ignored, even broken ones")
        (folder / ".thumbnails").mkdir()
        (folder / ".thumbnails" / "x.jpg").write_bytes(b"ignored too")
    bad = {
        root / "Cat" / "corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
        root / "Cat" / "empty.jpg": b"",
        root / "Dog" / "truncated.jpg": _image_bytes("JPEG", size=(120, 120))[:1500],
        root / "Dog" / "text.jpg": b"hello, I am a text file named like a JPEG",
        root / "Dog" / "short.png": _image_bytes("PNG", size=(60, 60))[:300],
    }
    for path, content in bad.items():
        path.write_bytes(content)
    return root, {str(path) for path in bad}


def test_folder_skips_bad_files_reports_them_and_batches_flow(pet_folder):
    root, bad_paths = pet_folder
    reports = []
    loaded = load_data(_tiny(dataset="folder", data_dir=str(root), train_size=None), batch_size=4,
                       progress=lambda message, fraction: reports.append(fraction))
    info = loaded.info
    assert info.class_names == ["Cat", "Dog"] and not info.has_boxes and loaded.test_boxes is None
    assert {entry["path"] for entry in info.skipped} == bad_paths
    assert all(entry["reason"] for entry in info.skipped)
    assert sum(info.splits.values()) == 2 * len(GOOD_FILES)
    for split in ("validation", "test"):  # stratified: every class in every split
        assert all(count >= 1 for count in info.class_counts[split].values())
    train_images, train_labels = _all_batches(loaded.train)  # one full epoch
    assert len(train_labels) == info.splits["train"] and train_images.shape[1:] == (SIZE, SIZE, 3)
    assert 0.0 <= train_images.min() and train_images.max() <= 1.0
    assert reports[-1] == 1.0


def test_truncated_files_are_refused_even_when_pil_is_told_to_allow_them(pet_folder, monkeypatch):
    root, _ = pet_folder
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library might
    with pytest.raises(OSError, match="truncated"):
        data_module.decode_image_file(root / "Dog" / "truncated.jpg", SIZE)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def _numbered_folder(root, counts):
    """root/<class>/<n>.png, each image a flat grey whose level is its number (unique across classes)."""
    number = 0
    for class_name, count in counts.items():
        (root / class_name).mkdir(parents=True)
        for _ in range(count):
            Image.new("RGB", (12, 9), (number, number, number)).save(root / class_name / f"{number}.png")
            number += 1
    return root


def _numbers(split):
    """The number of each image in a split (see _numbered_folder), in the split's order."""
    return split.images[:, 0, 0, 0].astype(int).tolist()


def _folder_splits(root, seed=0, train_size=None, cache_dir=None):
    source, _ = data_module.load_splits(_tiny(dataset="folder", data_dir=str(root), seed=seed, train_size=train_size,
                                              cache_dir=cache_dir))
    return source.splits


def test_folder_splits_are_disjoint_and_80_10_10_within_each_class(tmp_path):
    splits = _folder_splits(_numbered_folder(tmp_path / "pets", {"Cat": 30, "Dog": 50}))  # Cat 0-29, Dog 30-79
    numbers = {name: _numbers(split) for name, split in splits.items()}
    assert sorted(numbers["train"] + numbers["validation"] + numbers["test"]) == list(range(80))  # each image once
    for name, split in splits.items():
        assert [int(label) for label in split.labels] == [int(number >= 30) for number in numbers[name]]
    per_class = {name: np.bincount(split.labels, minlength=2).tolist() for name, split in splits.items()}
    assert per_class == {"train": [24, 40], "validation": [3, 5], "test": [3, 5]}


@pytest.mark.parametrize("seed", range(5))
def test_a_capped_folder_training_set_stays_balanced(tmp_path, seed):
    """Classes are mixed before the cap: the first 20 of 64 training images are not all cats."""
    splits = _folder_splits(_numbered_folder(tmp_path / "pets", {"Cat": 40, "Dog": 40}), seed=seed, train_size=20)
    cats, dogs = np.bincount(splits["train"].labels, minlength=2)
    assert cats + dogs == 20 and 5 <= cats <= 15, (cats, dogs)
    assert np.bincount(splits["validation"].labels).tolist() == [4, 4]  # the cap leaves them alone
    assert not set(_numbers(splits["train"])) & set(_numbers(splits["validation"]) + _numbers(splits["test"]))


def test_the_same_seed_gives_the_same_folder_splits(tmp_path):
    root = _numbered_folder(tmp_path / "pets", {"Cat": 20, "Dog": 20})
    # Separate caches: a second load from the first one's cache would be equal whatever the seed did.
    first, again, other = (_folder_splits(root, seed, cache_dir=str(tmp_path / f"cache-{index}"))
                           for index, seed in enumerate((1, 1, 2)))
    for name in ("train", "validation", "test"):
        assert _numbers(first[name]) == _numbers(again[name]), name
    assert sorted(_numbers(first["validation"])) != sorted(_numbers(other["validation"]))
    assert sorted(_numbers(first["train"])) != sorted(_numbers(other["train"]))


def _splits_as_decoded_before(files_per_class, seed, train_size, unreadable) -> dict[str, list]:
    """The folder split as gapdemo made it when each split was decoded on its own (before cache format 2):
    a seeded stratified 80/10/10 per class, the training files mixed by the same generator, then each
    split decoded in order, skipping unreadable files, train stopping after train_size decoded images."""
    rng = np.random.default_rng(seed)
    assigned = {"train": [], "validation": [], "test": []}
    for files in files_per_class:
        order = rng.permutation(len(files))
        held_out = max(round(len(files) * 0.1), 1 if len(files) >= 3 else 0)  # validation, and test alike
        train_count = len(files) - 2 * held_out
        assigned["train"] += [files[i] for i in order[:train_count]]
        assigned["validation"] += [files[i] for i in order[train_count:train_count + held_out]]
        assigned["test"] += [files[i] for i in order[train_count + held_out:]]
    assigned["train"] = [assigned["train"][i] for i in rng.permutation(len(assigned["train"]))]
    result = {}
    for name, files in assigned.items():
        limit = train_size if name == "train" else None
        result[name] = []
        for path in files:
            if limit is not None and len(result[name]) >= limit:
                break
            if path not in unreadable:
                result[name].append(path)
    return result


def test_splits_picked_from_the_cache_are_the_ones_decoding_each_split_gave(tmp_path):
    root = _numbered_folder(tmp_path / "pets", {"Cat": 23, "Dog": 31})  # Cat 0-22, Dog 23-53: level = number
    unreadable = {root / "Cat" / f"{number}.png" for number in (0, 4, 9, 17)} | {root / "Dog" / "40.png"}
    for path in unreadable:
        path.write_bytes(b"not a PNG any more")
    files_per_class = [sorted((root / name).glob("*.png")) for name in ("Cat", "Dog")]
    cache_dir = str(tmp_path / "cache")  # one entry serves every seed and cap below
    for seed in (0, 1, 5):
        for train_size in (None, 10, 37):
            splits = _folder_splits(root, seed=seed, train_size=train_size, cache_dir=cache_dir)
            picked = {name: [root / ("Cat" if number < 23 else "Dog") / f"{number}.png" for number in _numbers(split)]
                      for name, split in splits.items()}
            assert picked == _splits_as_decoded_before(files_per_class, seed, train_size, unreadable), (seed, train_size)
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_the_same_seed_gives_the_same_synthetic_splits_and_no_image_is_in_two():
    first, _ = data_module.load_splits(_tiny(seed=3))
    again, _ = data_module.load_splits(_tiny(seed=3))
    other, _ = data_module.load_splits(_tiny(seed=4))
    for name in ("train", "validation", "test"):
        assert first.splits[name].images.tobytes() == again.splits[name].images.tobytes(), name
        assert first.splits[name].images.tobytes() != other.splits[name].images.tobytes(), name
    seen = {name: {image.tobytes() for image in first.splits[name].images} for name in first.splits}
    assert not seen["train"] & seen["validation"] and not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]


def test_folder_decodes_each_file_once_whatever_the_seed_or_cap(pet_folder, monkeypatch):
    root, bad_paths = pet_folder
    decoded = []
    original = decode_module.decode_image_file
    monkeypatch.setattr(decode_module, "decode_image_file", lambda path, size: decoded.append(path) or original(path, size))
    loaded = load_data(_tiny(dataset="folder", data_dir=str(root), train_size=5), 4)
    assert loaded.info.splits["train"] == 5 and not loaded.info.cache_used
    assert sorted(map(str, decoded)) == sorted({str(path) for path in decoded})  # each file once
    assert len(decoded) == 2 * len(GOOD_FILES) + len(bad_paths)  # every file, not only the capped split's
    for seed, train_size in [(1, 5), (2, None), (0, 3)]:
        again = load_data(_tiny(dataset="folder", data_dir=str(root), seed=seed, train_size=train_size), 4)
        assert again.info.cache_used
        if train_size is None:
            assert sum(again.info.splits.values()) == 2 * len(GOOD_FILES)  # every good file in some split
        else:
            assert again.info.splits["train"] == train_size
    assert len(decoded) == 2 * len(GOOD_FILES) + len(bad_paths)  # no file decoded again


def test_decode_converts_modes_to_rgb_with_bilinear_resize(tmp_path):
    """A grey pattern that tells the resize methods apart, checked against TensorFlow's bilinear resize."""
    rows, columns = np.mgrid[0:45, 0:70]
    grey = ((rows * 7 + columns * 3) % 256).astype(np.uint8)  # (45, 70): diagonal stripes
    grey[10:20, 5:40] = 255
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    image = data_module.decode_image_file(path, SIZE)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])

    def resized(method, antialias=False):
        result = tf.image.resize(grey[:, :, None], (SIZE, SIZE), method=method, antialias=antialias)
        return tf.cast(tf.clip_by_value(tf.round(result), 0, 255), tf.uint8).numpy()[:, :, 0]

    np.testing.assert_array_equal(image[..., 0], resized("bilinear"))
    for other in (resized("nearest"), resized("bilinear", antialias=True), resized("area"), resized("bicubic")):
        assert not np.array_equal(other, resized("bilinear"))  # the pattern would catch another method


@pytest.mark.parametrize("classes, expected", [(["Cat"], "1 (Cat)"), (["Cat", "Dog", "Fox"], "3 (Cat, Dog, Fox)"),
                                               ([], "0 (none)")])
def test_folder_needs_exactly_two_classes(tmp_path, classes, expected):
    for name in classes:
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.png").write_bytes(_image_bytes("PNG"))
    with pytest.raises(DataError, match="exactly two") as error:
        load_data(_tiny(dataset="folder", data_dir=str(tmp_path)), 4)
    assert expected in str(error.value)


def test_folder_errors_for_missing_folder_and_empty_class(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(_tiny(dataset="folder", data_dir=str(tmp_path / "nowhere")), 4)
    with pytest.raises(DataError, match="needs a folder"):
        load_data(_tiny(dataset="folder", data_dir=None), 4)
    (tmp_path / "Cat").mkdir()
    (tmp_path / "Dog").mkdir()
    (tmp_path / "Cat" / "a.png").write_bytes(_image_bytes("PNG"))
    with pytest.raises(DataError, match="holds no images"):
        load_data(_tiny(dataset="folder", data_dir=str(tmp_path)), 4)


# --- TFDS cats_vs_dogs ------------------------------------------------------------------------


@pytest.mark.parametrize("train_size", [None, 16])
def test_cats_vs_dogs_slices_are_disjoint_80_10_10(monkeypatch, train_size):
    import tensorflow_datasets as tfds  # deferred: several seconds; only the TFDS tests need it

    monkeypatch.setattr(cats_vs_dogs_module, "host_reachable", lambda url, timeout_s: True)
    with tfds.testing.mock_data(as_dataset_fn=numbered_tfds(200)):
        source, info = data_module.load_splits(_tiny(dataset="cats_vs_dogs", train_size=train_size))
    numbers = {name: _numbers(split) for name, split in source.splits.items()}
    assert numbers["validation"] == list(range(160, 180)) and numbers["test"] == list(range(180, 200))
    assert numbers["train"] == list(range(160))[:train_size]  # the cap takes the slice's first images
    assert info.splits == {"train": train_size or 160, "validation": 20, "test": 20}
    for name, split in source.splits.items():
        assert split.labels.tolist() == [number % 2 for number in numbers[name]]


def test_cats_vs_dogs_end_to_end_with_mocked_tfds(monkeypatch):
    import tensorflow_datasets as tfds  # deferred: several seconds; only the TFDS tests need it

    monkeypatch.setattr(cats_vs_dogs_module, "host_reachable", lambda url, timeout_s: True)  # mock_data: prepare is a no-op
    with tfds.testing.mock_data(as_dataset_fn=numbered_tfds(200)):
        loaded = load_data(_tiny(dataset="cats_vs_dogs", train_size=16), batch_size=8)
        train_images, train_labels = _all_batches(loaded.train)
    assert loaded.info.class_names == ["cat", "dog"] and loaded.info.splits == {"train": 16, "validation": 20, "test": 20}
    assert train_images.shape == (16, SIZE, SIZE, 3) and sorted(train_labels.tolist()) == [0.0] * 8 + [1.0] * 8
    assert loaded.validation_images.shape == (20, SIZE, SIZE, 3) and loaded.validation_images.dtype == np.uint8
    _assert_element_spec(loaded.test)


def _stand_in_archive(tfds_dir, monkeypatch, non_jfif_files=cats_vs_dogs_module.NON_JFIF_FILES, register=True):
    """A stand-in kagglecatsanddogs_5340.zip in tfds_dir's manual folder, its checksum registered for this test only."""
    import tensorflow_datasets as tfds  # deferred: several seconds; only the TFDS tests need it
    from tensorflow_datasets.core.download import checksums  # with tfds, above

    archive = tfds_dir / "downloads" / "manual" / cats_vs_dogs_module.CATS_VS_DOGS_ARCHIVE
    write_cats_vs_dogs_archive(archive, photos_per_class=40, seed=0, non_jfif_files=non_jfif_files)
    if register:  # the real checksum is the original's; TFDS reads the registered one from the builder class
        found = checksums.compute_url_info(archive)
        registered = checksums.UrlInfo(size=found.size, checksum=found.checksum, filename=archive.name)
        monkeypatch.setattr(tfds.builder_cls("cats_vs_dogs"), "url_infos",
                            {cats_vs_dogs_module.CATS_VS_DOGS_URL: registered})
    monkeypatch.setattr(cats_vs_dogs_module, "host_reachable", lambda url, timeout_s: False)  # offline
    return archive


@pytest.mark.slow
def test_cats_vs_dogs_real_builder_prepares_offline_caches_and_trains(tmp_path, monkeypatch, runs_dir):
    _stand_in_archive(tmp_path / "tfds", monkeypatch)
    config = _tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds"), train_size=None)
    loaded = load_data(config, batch_size=16)  # the real download_and_prepare, from the manual folder
    assert loaded.info.splits == {"train": 64, "validation": 8, "test": 8} and not loaded.info.cache_used
    assert (tmp_path / "tfds" / "cats_vs_dogs" / "4.0.1" / "dataset_info.json").is_file()
    again = load_data(config, batch_size=16)
    assert again.info.cache_used
    np.testing.assert_array_equal(again.validation_images, loaded.validation_images)
    capped = load_data(_tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds"), train_size=16), batch_size=16)
    assert capped.info.cache_used and capped.info.splits == {"train": 16, "validation": 8, "test": 8}  # one entry
    run = tiny_config(str(runs_dir), ("fc", "gap"))
    job = TrainingJob(RunConfig(data=config, model=run.model, train=run.train))
    assert job.run() == "finished", job.snapshot().message
    assert [row["epoch"] for row in job.snapshot().epoch_metrics] == [1, 1]

    # A prepared copy that lost its record files: one sentence, no traceback.
    for shard in (tmp_path / "tfds" / "cats_vs_dogs" / "4.0.1").glob("*.tfrecord*"):
        shard.unlink()
    with pytest.raises(DataError, match="incomplete or damaged") as error:
        load_data(config, batch_size=16)
    assert "delete that folder" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_cats_vs_dogs_archive_with_the_wrong_junk_count_is_explained(tmp_path, monkeypatch):
    archive = _stand_in_archive(tmp_path / "tfds", monkeypatch, non_jfif_files=12)
    with pytest.raises(DataError) as error:
        load_data(_tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds")), batch_size=16)
    message = str(error.value)
    assert f"{archive} holds 12 files without a JFIF header" in message and "exactly 1,738" in message
    assert "--dataset folder" in message and "\n" not in message


def test_cats_vs_dogs_archive_cut_short_is_explained(tmp_path, monkeypatch):
    archive = _stand_in_archive(tmp_path / "tfds", monkeypatch, non_jfif_files=0, register=False)
    with pytest.raises(DataError) as error:  # the original's checksum is registered: ours differs
        load_data(_tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds")), batch_size=16)
    message = str(error.value)
    assert f"{archive} is not the original ({archive.stat().st_size:,} bytes where the original has 824,887,076" in message
    assert "download it again" in message and "\n" not in message


def test_cats_vs_dogs_stale_copy_from_another_tfds_is_named(tmp_path, monkeypatch):
    old_copy = tmp_path / "tfds" / "cats_vs_dogs" / "4.0.0"
    old_copy.mkdir(parents=True)
    (old_copy / "dataset_info.json").write_text("{}")
    monkeypatch.setattr(cats_vs_dogs_module, "host_reachable", lambda url, timeout_s: False)
    with pytest.raises(DataError) as error:
        load_data(_tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds")), batch_size=16)
    message = str(error.value)
    assert "version 4.0.0, prepared by another TFDS" in message and "reads only 4.0.1" in message
    assert "kagglecatsanddogs_5340.zip" in message and "\n" not in message


def _never_download(*args, **kwargs):
    pytest.fail("download_and_prepare must not run when the download server is unreachable")


@pytest.mark.parametrize("network", ["refused", "hangs"])
def test_cats_vs_dogs_offline_fails_fast_with_manual_instructions(tmp_path, monkeypatch, network):
    import tensorflow_datasets as tfds  # deferred: several seconds; only the TFDS tests need it

    def unreachable(request, timeout=None):
        if network == "hangs":  # like a DNS look-up that never answers
            time.sleep(30)
        raise urllib.error.URLError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", _never_download)
    if network == "hangs":
        monkeypatch.setattr(cats_vs_dogs_module, "REACHABILITY_TIMEOUT_S", 0.5)  # the real one is 6 s
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        load_data(_tiny(dataset="cats_vs_dogs", data_dir=str(tmp_path)), 4)
    assert time.monotonic() - start < 15
    message = str(error.value)
    assert "kagglecatsanddogs_5340.zip" in message and str(tmp_path / "downloads" / "manual") in message
    assert "PetImages" in message and "\n" not in message
    assert cats_vs_dogs_module.REACHABILITY_TIMEOUT_S < 15


# --- CLI --------------------------------------------------------------------------------------


def _run_cli(*arguments):
    environment = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "gapdemo", "data", *arguments], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=environment, timeout=300)


def test_cli_json_and_error_exit(tmp_path):
    result = _run_cli("--dataset", "synthetic", "--image-size", "32", "--train-size", "16",
                      "--synthetic-size", "40", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "synthetic" and summary["class_names"] == ["cat", "dog"]
    assert summary["splits"] == {"train": 16, "validation": 4, "test": 4} and summary["skipped"] == []
    missing = _run_cli("--dataset", "folder", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_text_output_and_user_errors(pet_folder, tmp_path, monkeypatch, capsys):
    root, bad_paths = pet_folder
    assert main(["data", "--dataset", "folder", "--data-dir", str(root), "--image-size", "32"]) == 0
    output = capsys.readouterr().out
    assert "validation" in output and "Cat" in output and f"Skipped {len(bad_paths)}" in output
    (tmp_path / "One" / "Cat").mkdir(parents=True)
    assert main(["data", "--dataset", "folder", "--data-dir", str(tmp_path / "One")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "exactly two" in errors[0]
    monkeypatch.setattr(cats_vs_dogs_module, "host_reachable", lambda url, timeout_s: False)
    assert main(["data", "--dataset", "cats_vs_dogs", "--data-dir", str(tmp_path / "tfds")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "kagglecatsanddogs_5340.zip" in errors[0]
    assert main(["data", "--train-size", "none"]) == 2


def test_the_last_synthetic_set_is_reused_read_only_and_a_new_choice_is_drawn(monkeypatch):
    """A second Start with the same data settings skips drawing; the kept arrays cannot be changed."""
    drawn = []
    original = data_module.generate_pets
    monkeypatch.setattr(data_module, "generate_pets", lambda *args, **kwargs: drawn.append(args) or original(*args, **kwargs))
    config = DataConfig(image_size=32, train_size=48, synthetic_size=80, seed=11)
    first, _ = data_module.load_splits(config)
    calls = len(drawn)
    assert calls > 0
    again, _ = data_module.load_splits(config)
    assert len(drawn) == calls  # nothing drawn the second time
    assert again.splits["train"].images is first.splits["train"].images
    with pytest.raises(ValueError):
        again.splits["train"].images[0, 0, 0, 0] = 1
    other, _ = data_module.load_splits(DataConfig(image_size=32, train_size=48, synthetic_size=80, seed=12))
    assert len(drawn) > calls
    assert not np.array_equal(other.splits["train"].images, first.splits["train"].images)


def test_indexed_images_read_as_the_array_of_their_rows_would():
    base = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    rows = [5, 0, 3, 6]
    view, expected = IndexedImages(base, rows), base[rows]
    assert len(view) == 4 and view.shape == expected.shape and view.dtype == np.uint8 and view.ndim == 4
    assert view.nbytes == expected.nbytes
    for key in (2, -1, slice(1, 3), slice(None, None, -1), [3, 0, 0], np.array([True, False, True, False]),
                (slice(None), 0, 0, 0), (1, 1), (np.array([2, 1]), slice(None), 1)):
        np.testing.assert_array_equal(view[key], expected[key], err_msg=repr(key))
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float32), expected.astype(np.float32))
    np.testing.assert_array_equal(np.stack(list(view)), expected)
    with pytest.raises(ValueError, match="rows must lie"):
        IndexedImages(base, [7])
