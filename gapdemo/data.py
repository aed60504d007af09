"""One contract for every image source: synthetic pets, TFDS Cats vs Dogs, or a folder of images.

Each source decodes its images once into uint8 arrays resized to image_size (bilinear, as
tf.image.resize does) and hands them to make_pipeline, so every model sees the same element
spec whatever the source: (images float32 (B, S, S, 3) in [0, 1], labels float32 (B,)).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf
from PIL import Image, ImageFile, UnidentifiedImageError

from gapdemo.config import DATASETS, MAX_SYNTHETIC_TRAIN_SIZE, DataConfig, validate_image_size
from gapdemo.synthetic import CLASS_NAMES, generate_pets

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test, for every source
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
TFDS_SLICES = {"train": "train[:80%]", "validation": "train[80%:90%]", "test": "train[90%:]"}
CATS_VS_DOGS_URL = ("https://download.microsoft.com/download/3/E/1/"
                    "3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip")
CATS_VS_DOGS_ARCHIVE = "kagglecatsanddogs_5340.zip"
REACHABILITY_TIMEOUT_S = 6.0  # an offline machine must get its answer well within 15 s
SYNTHETIC_CHUNK = 250  # synthetic images drawn per progress report
_TRUNCATION_LOCK = threading.Lock()

Progress = Callable[[str, float], None]


class DataError(ValueError):
    """A data problem the user can fix; str() is one readable sentence (what is wrong + what to do)."""


@dataclass
class DatasetInfo:
    """What was loaded: class names, counts per split and class, and the files that were skipped."""

    dataset: str  # "synthetic" | "cats_vs_dogs" | "folder"
    class_names: list[str]  # index = label
    image_size: int
    splits: dict[str, int]  # split -> number of images (after the train_size cap)
    class_counts: dict[str, dict[str, int]]  # split -> class name -> count
    skipped: list[dict]  # [{"path": ..., "reason": ...}] files that could not be read
    has_boxes: bool  # True only for synthetic, where each object's box is known

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class LoadedData:
    """Batched pipelines for training and evaluation, plus the raw uint8 images for display."""

    train: tf.data.Dataset  # reshuffled each epoch in a seeded order
    validation: tf.data.Dataset  # fixed order, the same as validation_images
    test: tf.data.Dataset  # fixed order, the same as test_images
    info: DatasetInfo
    validation_images: np.ndarray  # uint8 (N, S, S, 3)
    validation_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray  # uint8 (N, S, S, 3)
    test_labels: np.ndarray  # int64 (N,)
    test_boxes: np.ndarray | None  # float32 (N, 4) [x0, y0, x1, y1] in pixels; synthetic only


@dataclass
class _Split:
    images: np.ndarray  # uint8 (N, S, S, 3)
    labels: np.ndarray  # int64 (N,)
    boxes: np.ndarray | None = None  # float32 (N, 4)


def make_pipeline(images_uint8, labels, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 1], float32 labels); images stay uint8 until a batch is cast."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images_uint8.dtype} {images_uint8.shape}")
    labels = np.asarray(labels, dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images_uint8, labels))
    if shuffle:
        # A seeded op gives the same sequence of per-epoch orders on every run.
        dataset = dataset.shuffle(max(len(labels), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda images, batch_labels: (tf.cast(images, tf.float32) / 255.0, batch_labels),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_data(config: DataConfig, batch_size: int, progress: Progress | None = None) -> LoadedData:
    """Load config's data set into train/validation/test pipelines.

    Args:
        config: which source, where, at which image size, how many training images.
        batch_size: images per batch in all three pipelines.
        progress: optional progress(message, fraction 0..1), called while scanning/decoding/generating.

    Raises:
        ValueError for bad arguments; DataError (a ValueError) for data the user must fix or provide.
    """
    validate_image_size(config.image_size)
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown data set {config.dataset!r}; choose one of {', '.join(DATASETS)}")
    if config.train_size is not None and (not isinstance(config.train_size, int) or config.train_size < 1):
        raise ValueError(f"train size must be a positive integer or None, got {config.train_size!r}")
    report = progress or (lambda message, fraction: None)
    loader = {"synthetic": _load_synthetic, "cats_vs_dogs": _load_cats_vs_dogs, "folder": _load_folder}
    splits, class_names, skipped = loader[config.dataset](config, report)
    arrays = {name: (split.images, split.labels, split.boxes) for name, split in splits.items()}
    loaded = loaded_data_from_arrays(arrays, config, batch_size, class_names=class_names, skipped=skipped)
    report("Data ready", 1.0)
    return loaded


def loaded_data_from_arrays(arrays: dict, config: DataConfig, batch_size: int, class_names=CLASS_NAMES,
                            dataset: str | None = None, skipped: list[dict] | None = None) -> LoadedData:
    """The LoadedData contract for images already decoded, so a special-purpose source matches load_data's.

    Args:
        arrays: {"train" | "validation" | "test": (images uint8 (N, S, S, 3), labels int64 (N,),
            boxes float32 (N, 4) or None)}.
        config: image_size for the info, and the seed of the training order.
        batch_size: images per batch in all three pipelines.
        class_names: index = label.
        dataset: the name DatasetInfo gives; config.dataset when None.
        skipped: files that could not be read ([{"path", "reason"}]).

    Raises:
        DataError when a split has no images.
    """
    splits = {name: _Split(*arrays[name]) for name in SPLITS}
    for name in SPLITS:
        if len(splits[name].labels) == 0:
            raise DataError(f"The {name} split has no images; provide more images (at least 10 per class).")
    info = DatasetInfo(
        dataset=dataset or config.dataset, class_names=list(class_names), image_size=config.image_size,
        splits={name: int(len(splits[name].labels)) for name in SPLITS},
        class_counts={name: _count_classes(splits[name].labels, class_names) for name in SPLITS},
        skipped=skipped or [], has_boxes=splits["test"].boxes is not None,
    )
    pipelines = {name: make_pipeline(splits[name].images, splits[name].labels, batch_size,
                                     shuffle=name == "train", seed=config.seed) for name in SPLITS}
    return LoadedData(
        **pipelines, info=info,
        validation_images=splits["validation"].images, validation_labels=splits["validation"].labels,
        test_images=splits["test"].images, test_labels=splits["test"].labels, test_boxes=splits["test"].boxes,
    )


def _count_classes(labels, class_names) -> dict[str, int]:
    counts = Counter(int(label) for label in labels)
    return {name: counts.get(index, 0) for index, name in enumerate(class_names)}


def _split_sizes(total: int) -> tuple[int, int, int]:
    """80/10/10 of total; validation and test get at least one image once there are three."""
    validation = max(round(total * SPLIT_FRACTIONS[1]), 1 if total >= 3 else 0)
    test = max(round(total * SPLIT_FRACTIONS[2]), 1 if total >= 3 else 0)
    return total - validation - test, validation, test


def _cap(count: int, train_size: int | None) -> int:
    return count if train_size is None else min(count, train_size)


def _resizer(image_size: int) -> Callable:
    """A function (H, W, 3) uint8 image -> (S, S, 3) uint8, resized bilinearly as tf.image.resize does."""
    def resize(image):
        resized = tf.image.resize(image, (image_size, image_size), method="bilinear")  # float32 (S, S, 3)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return resize


# --- synthetic ---------------------------------------------------------------------------------


def synthetic_split_counts(config: DataConfig) -> dict[str, int]:
    """Images per split the synthetic source draws for config.

    The set is split 80/10/10 and holds at least config.synthetic_size images; it grows until its
    training split covers config.train_size, which then caps it. Validation and test grow with it
    (a tenth each); while train_size fits in synthetic_size's 80%, changing it leaves them alone.

    Raises:
        DataError when synthetic_size is below 10 or train_size above MAX_SYNTHETIC_TRAIN_SIZE.
    """
    train_size = config.train_size
    if config.synthetic_size < 10:
        raise DataError(f"The synthetic data set needs at least 10 images, got {config.synthetic_size}; raise its size.")
    if train_size is not None and train_size > MAX_SYNTHETIC_TRAIN_SIZE:
        raise DataError(f"The synthetic data set draws at most {MAX_SYNTHETIC_TRAIN_SIZE:,} training images "
                        f"(they are all held in memory), got {train_size:,}; ask for fewer.")
    total = config.synthetic_size
    if train_size is not None:
        total = max(total, math.ceil(train_size / SPLIT_FRACTIONS[0]))
        while _split_sizes(total)[0] < train_size:  # rounding the held-out splits up can leave one short
            total += 1
    train_count, validation_count, test_count = _split_sizes(total)
    return {"train": _cap(train_count, train_size), "validation": validation_count, "test": test_count}


def _load_synthetic(config: DataConfig, report: Progress):
    counts = synthetic_split_counts(config)
    total, done, splits = sum(counts.values()), 0, {}
    for split_index, name in enumerate(SPLITS):
        parts = []
        # Each split draws from its own seeds, so capping train never changes validation or test.
        for chunk_index, start in enumerate(range(0, counts[name], SYNTHETIC_CHUNK)):
            chunk = min(SYNTHETIC_CHUNK, counts[name] - start)
            seed = int(np.random.SeedSequence([config.seed, split_index, chunk_index]).generate_state(1)[0])
            parts.append(generate_pets(chunk, config.image_size, seed))
            done += chunk
            report(f"Drawing synthetic pets {done}/{total}", done / total)
        images, labels, boxes = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        splits[name] = _Split(images, labels, boxes)
    return splits, list(CLASS_NAMES), []


# --- TFDS cats_vs_dogs -------------------------------------------------------------------------


def _offline_instructions(data_dir_root) -> str:
    manual_dir = pathlib.Path(data_dir_root) / "downloads" / "manual"
    return (f"place the original {CATS_VS_DOGS_ARCHIVE} (from the Microsoft download page) in {manual_dir}/ "
            "and TFDS will verify its checksum and prepare it, or extract it and use the folder data set "
            "on its PetImages/ folder (--dataset folder --data-dir PATH/PetImages)")


def _host_reachable(url: str, timeout_s: float) -> bool:
    """True when url's server answers a HEAD request within timeout_s (proxies honoured)."""
    answered = threading.Event()

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            answered.set()
        except urllib.error.HTTPError:  # the server answered, even if with an error status
            answered.set()
        except Exception:  # DNS failure, refused, timed out, proxy down: all mean no download
            pass

    # A daemon thread bounds the wait: DNS look-ups ignore the socket timeout and can hang.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answered.is_set()


def _prepare_cats_vs_dogs(builder) -> None:
    """Download and prepare Cats vs Dogs, or fail fast with offline instructions."""
    archive = pathlib.Path(builder.data_dir_root) / "downloads" / "manual" / CATS_VS_DOGS_ARCHIVE
    if not archive.exists() and not _host_reachable(CATS_VS_DOGS_URL, REACHABILITY_TIMEOUT_S):
        raise DataError("Cats vs Dogs is not prepared and its download server cannot be reached; "
                        + _offline_instructions(builder.data_dir_root) + ".")
    try:
        builder.download_and_prepare()  # TFDS draws its own progress bar
    except Exception as error:
        raise DataError(f"Preparing Cats vs Dogs failed ({error}); "
                        + _offline_instructions(builder.data_dir_root) + ".") from error


def _expected_count(builder, split_slice: str) -> int | None:
    try:
        return int(builder.info.splits[split_slice].num_examples)
    except Exception:  # split sizes unknown until prepared (or under tfds.testing.mock_data)
        return None


def _load_cats_vs_dogs(config: DataConfig, report: Progress):
    import tensorflow_datasets as tfds  # late import: slow, and only this source needs it

    report("Opening Cats vs Dogs", 0.0)
    builder = tfds.builder("cats_vs_dogs", data_dir=config.data_dir)
    if not builder.is_prepared():
        _prepare_cats_vs_dogs(builder)
    resize = _resizer(config.image_size)
    splits = {}
    for index, name in enumerate(SPLITS):
        dataset = builder.as_dataset(split=TFDS_SLICES[name], as_supervised=True, shuffle_files=False)
        expected = _expected_count(builder, TFDS_SLICES[name])
        if name == "train" and config.train_size is not None:
            dataset = dataset.take(config.train_size)  # take() stops decoding once the cap is reached
            expected = config.train_size if expected is None else min(expected, config.train_size)
        dataset = dataset.map(lambda image, label: (resize(image), label), num_parallel_calls=tf.data.AUTOTUNE)
        images, labels = [], []
        for image, label in dataset.as_numpy_iterator():
            images.append(image)
            labels.append(label)
            if len(labels) % 100 == 0:
                fraction = min(len(labels) / expected, 1.0) if expected else 0.5
                report(f"Decoding Cats vs Dogs {name} {len(labels)}", (index + fraction) / len(SPLITS))
        shape = (0, config.image_size, config.image_size, 3)
        splits[name] = _Split(np.stack(images) if images else np.zeros(shape, np.uint8),
                              np.asarray(labels, np.int64))
    return splits, list(CLASS_NAMES), []


# --- folder of images --------------------------------------------------------------------------


def _scan_folder(data_dir: str | None) -> tuple[list[str], list[list[pathlib.Path]]]:
    """Return the two class names (sorted sub-folders) and each class's image files (sorted)."""
    if not data_dir:
        raise DataError("The folder data set needs a folder path; give one with a sub-folder per class, "
                        "e.g. PetImages/ holding Cat/ and Dog/.")
    root = pathlib.Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"Folder {root} does not exist; give a folder with one sub-folder per class, "
                        "e.g. PetImages/ holding Cat/ and Dog/.")
    class_dirs = sorted((path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")),
                        key=lambda path: path.name)
    if len(class_dirs) != 2:
        found = ", ".join(path.name for path in class_dirs) or "none"
        raise DataError(f"Folder {root} must hold exactly two class sub-folders (e.g. Cat/ and Dog/) "
                        f"but has {len(class_dirs)} ({found}); arrange the images as {root}/<class>/*.jpg.")
    files = [sorted(path for path in class_dir.rglob("*") if _is_image_file(path, class_dir))
             for class_dir in class_dirs]
    for class_dir, class_files in zip(class_dirs, files):
        if not class_files:
            raise DataError(f"Class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                            "add some or remove the folder.")
    return [path.name for path in class_dirs], files


def _is_image_file(path: pathlib.Path, class_dir: pathlib.Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(class_dir).parts)
    return not hidden and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _assign_splits(files_per_class, seed: int) -> dict[str, list]:
    """Stratified, seeded 80/10/10 split into (path, label) lists; train in a seeded mixed order."""
    rng = np.random.default_rng(seed)
    assigned = {name: [] for name in SPLITS}
    for label, files in enumerate(files_per_class):
        order = rng.permutation(len(files))
        train_count, validation_count, _ = _split_sizes(len(files))
        bounds = {"train": (0, train_count), "validation": (train_count, train_count + validation_count),
                  "test": (train_count + validation_count, len(files))}
        for name, (start, stop) in bounds.items():
            assigned[name] += [(files[i], label) for i in order[start:stop]]
    # Mixing the classes before the cap keeps a capped training set balanced.
    assigned["train"] = [assigned["train"][i] for i in rng.permutation(len(assigned["train"]))]
    return assigned


def decode_image_file(path, image_size: int) -> np.ndarray:
    """Decode one image file fully into uint8 (S, S, 3); raise on empty, truncated or non-image files."""
    if pathlib.Path(path).stat().st_size == 0:
        raise OSError("empty file (0 bytes)")
    if not ImageFile.LOAD_TRUNCATED_IMAGES:  # PIL's default: load() raises on a truncated file
        rgb = _read_rgb(path)
    else:  # another library allowed partial images (grey bottoms); refuse them here, one file at a time
        with _TRUNCATION_LOCK:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                rgb = _read_rgb(path)
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = True
    return _resizer(image_size)(rgb).numpy()


def _read_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()  # decodes every byte now, so a bad file fails here and never mid-epoch
        return np.asarray(image.convert("RGB"))  # L, RGBA, P, CMYK, ... -> (H, W, 3)


def _decode_files(items, image_size: int, limit: int | None, report: Progress, done_total):
    """Decode (path, label) items until limit images decoded; return a _Split and the skipped files."""
    images, labels, skipped = [], [], []
    for path, label in items:
        if limit is not None and len(labels) >= limit:
            break
        try:
            images.append(decode_image_file(path, image_size))
            labels.append(label)
        except UnidentifiedImageError:
            skipped.append({"path": str(path), "reason": "not an image (unknown or corrupt format)"})
        except Exception as error:  # truncated, bad pixel data, too large...: reported, never fatal
            skipped.append({"path": str(path), "reason": str(error) or type(error).__name__})
        done_total[0] += 1
        if done_total[0] % 20 == 0 or done_total[0] == done_total[1]:
            report(f"Decoding images {done_total[0]}/{done_total[1]}", min(done_total[0] / done_total[1], 1.0))
    shape = (0, image_size, image_size, 3)
    return _Split(np.stack(images) if images else np.zeros(shape, np.uint8), np.asarray(labels, np.int64)), skipped


def _load_folder(config: DataConfig, report: Progress):
    report("Scanning folder", 0.0)
    class_names, files_per_class = _scan_folder(config.data_dir)
    assigned = _assign_splits(files_per_class, config.seed)
    planned = sum(len(assigned[name]) for name in ("validation", "test"))
    planned += _cap(len(assigned["train"]), config.train_size)
    done_total, splits, skipped = [0, max(planned, 1)], {}, []
    for name in SPLITS:
        limit = config.train_size if name == "train" else None
        splits[name], split_skipped = _decode_files(assigned[name], config.image_size, limit, report, done_total)
        skipped += split_skipped
    return splits, class_names, skipped
