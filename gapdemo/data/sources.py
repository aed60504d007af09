"""One contract for every image source: synthetic pets, TFDS Cats vs Dogs, or a folder of images.

Each source decodes its images once into uint8 arrays resized to image_size (bilinear, as
tf.image.resize does); the folder and Cats vs Dogs keep them in the image cache (gapdemo.data.cache),
one entry per files and image size, whose memory map the next load opens in about a second
(whatever its seed or training cap) and picks its splits from by index (gapdemo.data.splits). make_pipeline (gapdemo.data.pipeline) then
batches them, so every model sees the same element spec whatever the source:
(images float32 (B, S, S, 3) in [0, 1], labels float32 (B,)).

load_splits decodes without TensorFlow for the synthetic and folder sources; load_data adds the
tf.data pipelines.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gapdemo.config import DataConfig
from gapdemo.data import cache, cats_vs_dogs, folder
from gapdemo.data.audience import work_is_served
from gapdemo.data.checks import DataError, refuse_problems, refuse_unloadable, synthetic_problems
from gapdemo.data.decode import decode_image_file  # noqa: F401  (re-exported: the benchmarks decode one file)
from gapdemo.data.splits import (
    SPLIT_FRACTIONS,
    SPLITS,
    DecodedSource,
    IndexedImages,
    Progress,
    Split,
    cap,
    ignore_progress,
    split_sizes,
)
from gapdemo.data.synthetic import CLASS_NAMES, generate_pets

if TYPE_CHECKING:
    import tensorflow as tf

SYNTHETIC_CHUNK = 250  # synthetic images drawn per progress report


@dataclass
class DatasetInfo:
    """What was loaded: class names, counts per split and class, the files skipped, and the cache's part."""

    dataset: str  # "synthetic" | "cats_vs_dogs" | "folder"
    class_names: list[str]  # index = label
    image_size: int
    splits: dict[str, int]  # split -> number of images (after the train_size cap)
    class_counts: dict[str, dict[str, int]]  # split -> class name -> count
    skipped: list[dict]  # [{"path": ..., "reason": ...}] files that could not be read
    has_boxes: bool  # True only for synthetic, where each object's box is known
    cache_used: bool = False  # True when the images were read from the image cache instead of decoded
    cache_note: str = ""  # one sentence: where the cache is, or why it was not used ("" for synthetic)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class LoadedData:
    """Batched pipelines for training and evaluation, plus the raw uint8 images for display."""

    train: tf.data.Dataset  # reshuffled each epoch in a seeded order
    validation: tf.data.Dataset  # fixed order, the same as validation_images
    test: tf.data.Dataset  # fixed order, the same as test_images
    info: DatasetInfo
    validation_images: np.ndarray | IndexedImages  # uint8 (N, S, S, 3); rows of the cache's memory map when cached
    validation_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray | IndexedImages  # uint8 (N, S, S, 3); rows of the cache's memory map when cached
    test_labels: np.ndarray  # int64 (N,)
    test_boxes: np.ndarray | None  # float32 (N, 4) [x0, y0, x1, y1] in pixels; synthetic only


def make_pipeline(images_uint8, labels, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """gapdemo.data.pipeline.make_pipeline, imported when first used (it needs TensorFlow)."""
    from gapdemo.data.pipeline import make_pipeline as build_pipeline  # deferred: it imports TensorFlow (seconds)

    return build_pipeline(images_uint8, labels, batch_size, shuffle, seed)


def load_data(config: DataConfig, batch_size: int, progress: Progress | None = None) -> LoadedData:
    """Load config's data set into train/validation/test pipelines.

    Args:
        config: which source, where, at which image size, how many training images.
        batch_size: images per batch in all three pipelines.
        progress: optional progress(message, fraction 0..1), called while scanning/decoding/generating.

    Raises:
        ValueError for bad arguments; DataError (a ValueError) for data the user must fix or provide.
    """
    source, info = load_splits(config, progress)
    return _loaded_data(source.splits, info, batch_size, config.seed)


def load_splits(config: DataConfig, progress: Progress | None = None) -> tuple[DecodedSource, DatasetInfo]:
    """Decode config's data set (or open it from the image cache) into uint8 splits and their info.

    The synthetic and folder sources need no TensorFlow here. Raises as load_data does, and
    DataError when a split has no images.
    """
    refuse_unloadable(config)
    report = progress or ignore_progress
    loader = {"synthetic": _synthetic_source, "cats_vs_dogs": cats_vs_dogs.load_cats_vs_dogs,
              "folder": folder.load_folder}
    source = loader[config.dataset](config, report)
    info = _dataset_info(source, config.dataset, config.image_size)
    report("Data ready", 1.0)
    return source, info


def _synthetic_source(config: DataConfig, report: Progress) -> DecodedSource:
    """The synthetic pets, drawn in memory (the last small set is kept for the next run; see _load_synthetic)."""
    splits, class_names, skipped = _load_synthetic(config, report)
    return DecodedSource(splits=splits, class_names=class_names, skipped=skipped)


def load_test_split(config: DataConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Only the test split: (images uint8 (N, S, S, 3), labels int64 (N,), class names).

    The images are an array, or an IndexedImages view of the image cache (indexing reads them).

    The synthetic source draws just these images (each split has its own seeds, so they are the
    ones a run was tested on); the others decode or open their cache as load_splits does.
    """
    if config.dataset == "synthetic":
        refuse_unloadable(config)
        splits, class_names, _ = _load_synthetic(config, ignore_progress, names=("test",))
    else:
        source, _ = load_splits(config)
        splits, class_names = source.splits, source.class_names
    return splits["test"].images, np.asarray(splits["test"].labels).astype(np.int64), list(class_names)


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
    source = DecodedSource(splits={name: Split(*arrays[name]) for name in SPLITS},
                           class_names=list(class_names), skipped=skipped or [])
    info = _dataset_info(source, dataset or config.dataset, config.image_size)
    return _loaded_data(source.splits, info, batch_size, config.seed)


def _dataset_info(source: DecodedSource, dataset: str, image_size: int) -> DatasetInfo:
    """source's DatasetInfo; DataError when a split is empty."""
    splits = source.splits
    for name in SPLITS:
        if len(splits[name].labels) == 0:
            raise DataError(f"The {name} split has no images; provide more images (at least 10 per class).")
    return DatasetInfo(
        dataset=dataset, class_names=list(source.class_names), image_size=image_size,
        splits={name: int(len(splits[name].labels)) for name in SPLITS},
        class_counts={name: _count_classes(splits[name].labels, source.class_names) for name in SPLITS},
        skipped=served_skipped(source.skipped) if work_is_served() else source.skipped,
        has_boxes=splits["test"].boxes is not None,
        cache_used=source.cache_used, cache_note=source.cache_note,
    )


def served_skipped(skipped: list[dict]) -> list[dict]:
    """The skipped files as a served visitor may read them (the run's config.json keeps them): how many,
    but neither their names nor reasons, which may quote a path."""
    return [{"path": "", "reason": "could not be read (the operator sees which with the data command)"}
            for _ in skipped]


def _loaded_data(splits: dict, info: DatasetInfo, batch_size: int, seed: int) -> LoadedData:
    pipelines = {name: make_pipeline(splits[name].images, splits[name].labels, batch_size,
                                     shuffle=name == "train", seed=seed) for name in SPLITS}
    return LoadedData(
        **pipelines, info=info,
        validation_images=splits["validation"].images, validation_labels=splits["validation"].labels,
        test_images=splits["test"].images, test_labels=splits["test"].labels, test_boxes=splits["test"].boxes,
    )


def _count_classes(labels, class_names) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
    return {name: int(counts[index]) for index, name in enumerate(class_names)}


def cache_status(config: DataConfig) -> cache.CacheStatus:
    """Whether config's images are in the image cache, the entry's size and the whole cache's.

    Scans the folder (a stat per file) or opens the TFDS builder; the synthetic source and a data
    choice that cannot load yet are never cached.
    """
    request = cache.CacheRequest(root=None, label="", key="")
    try:
        if config.dataset == "folder":
            request = folder.cache_request(config, folder.scan_folder(config.data_dir))
        elif config.dataset == "cats_vs_dogs":
            request = cats_vs_dogs.prepared_cache_request(config) or request
    except (DataError, OSError):
        pass  # the sidebar's own checks say what is wrong with the choice
    return cache.request_status(request, config.cache_dir)


# --- synthetic ---------------------------------------------------------------------------------


def synthetic_split_counts(config: DataConfig) -> dict[str, int]:
    """Images per split the synthetic source draws for config.

    The set is split 80/10/10 and holds at least config.synthetic_size images; it grows until its
    training split covers config.train_size, which then caps it. Validation and test grow with it
    (a tenth each); while train_size fits in synthetic_size's 80%, changing it leaves them alone.

    Raises:
        DataError with synthetic_problems' sentences.
    """
    refuse_problems(synthetic_problems(config))
    train_size, total = config.train_size, config.synthetic_size
    if train_size is not None:
        total = max(total, math.ceil(train_size / SPLIT_FRACTIONS[0]))
        while split_sizes(total)[0] < train_size:  # rounding the held-out splits up can leave one short
            total += 1
    train_count, validation_count, test_count = split_sizes(total)
    return {"train": cap(train_count, train_size), "validation": validation_count, "test": test_count}


# The last set drawn in this process, kept when it is small: a second Start with the same data
# settings (another seed of the weights, more epochs, another dropout rate) skips about 2 s of
# drawing at the defaults. Its arrays are read-only, as the image cache's memory maps are.
SYNTHETIC_MEMO_MAX_BYTES = 256 * 2**20
_synthetic_memo: dict[tuple, tuple] = {}
_synthetic_memo_lock = threading.Lock()


def _load_synthetic(config: DataConfig, report: Progress, names=SPLITS):
    counts = synthetic_split_counts(config)
    key = (config.image_size, config.seed, tuple(sorted(counts.items())), tuple(names))
    with _synthetic_memo_lock:
        if key in _synthetic_memo:
            report("Synthetic pets drawn before, reused", 1.0)
            return _synthetic_memo[key]
    drawn = _draw_synthetic(config, counts, report, names)
    if sum(split.images.nbytes for split in drawn[0].values()) <= SYNTHETIC_MEMO_MAX_BYTES:
        for split in drawn[0].values():
            for array in (split.images, split.labels, split.boxes):
                if array is not None:
                    array.flags.writeable = False
        with _synthetic_memo_lock:
            _synthetic_memo.clear()
            _synthetic_memo[key] = drawn
    return drawn


def _draw_synthetic(config: DataConfig, counts: dict, report: Progress, names):
    total, done, splits = sum(counts[name] for name in names), 0, {}
    for split_index, name in enumerate(SPLITS):
        if name not in names:
            continue
        parts = []
        # Each split draws from its own seeds, so capping train never changes validation or test.
        for chunk_index, start in enumerate(range(0, counts[name], SYNTHETIC_CHUNK)):
            chunk = min(SYNTHETIC_CHUNK, counts[name] - start)
            seed = int(np.random.SeedSequence([config.seed, split_index, chunk_index]).generate_state(1)[0])
            parts.append(generate_pets(chunk, config.image_size, seed))
            done += chunk
            report(f"Drawing synthetic pets {done}/{total}", done / total)
        images, labels, boxes = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        splits[name] = Split(images, labels, boxes)
    return splits, list(CLASS_NAMES), []
