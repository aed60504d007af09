"""What every image source shares: the split names and sizes, a decoded split, progress reports.

It sits apart from sources.py so that the sources (folder.py, cats_vs_dogs.py) and the image cache
(cache.py) can fill splits without importing sources.py, which imports them. DataError lives in checks.py.

The contract: a source first decodes every image it has once, in its own fixed order, into a
DecodedImages (the folder and Cats vs Dogs keep it in the image cache, so it depends on the files
and the image size only). It then picks each split's rows by index from it, which is where the
seed, the 80/10/10 fractions and the training cap come in, and hands back a DecodedSource whose
Split.images are IndexedImages: the entry's memory map plus the split's row numbers, so no split
is ever copied out of the cache. The synthetic source draws its splits directly as arrays; every
reader of Split.images takes either (len, shape, dtype, indexing, np.asarray).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test, for every source

Progress = Callable[[str, float], None]  # progress(message, fraction 0..1)


class IndexedImages:
    """Some rows of a larger uint8 image array, in a given order, read only when indexed.

    A split of the image cache: the whole entry's read-only memory map plus the split's row
    numbers, so picking a split costs 8 bytes per image instead of a copy of its pixels. It
    answers len(), shape, dtype, ndim and nbytes as the split's array would; indexing it
    (images[i], images[a:b], images[[3, 1]], images[:, 0, 0, 0]) and np.asarray(images) read
    just the rows asked for, into a new in-memory array (one image, images[i], is a read-only view).
    """

    def __init__(self, base: np.ndarray, rows):
        if getattr(base, "ndim", 0) != 4:
            raise ValueError(f"base must be images (M, S, S, C), got shape {getattr(base, 'shape', None)}")
        self.base = base  # uint8 (M, S, S, 3): every image of the source, usually a memory map
        self.rows = np.array(rows, dtype=np.int64).reshape(-1)  # (N,) rows of base, in this split's order
        if len(self.rows) and not 0 <= self.rows.min() <= self.rows.max() < len(base):
            raise ValueError(f"rows must lie in 0..{len(base) - 1}")
        self.rows.flags.writeable = False

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    @property
    def nbytes(self) -> int:
        """Bytes this split's images take once read (not the whole base's)."""
        return len(self.rows) * int(np.prod(self.base.shape[1:])) * self.base.dtype.itemsize

    def take(self, indices) -> np.ndarray:
        """Images at indices of this split, (len(indices), S, S, 3), read from base in ascending row order."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        ascending = np.argsort(rows, kind="stable")  # a memory map read front to back
        images = np.empty((len(rows), *self.base.shape[1:]), self.base.dtype)
        images[ascending] = self.base[rows[ascending]]
        return images

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            return np.asarray(self.base[(self.rows[first], *rest)])
        indices = np.arange(*first.indices(len(self.rows))) if isinstance(first, slice) else np.asarray(first)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        picked = self.take(indices)  # (K, S, S, 3)
        return picked[(slice(None), *rest)] if rest else picked

    def __iter__(self):
        for row in self.rows:
            yield np.asarray(self.base[row])

    def __array__(self, dtype=None, copy=None):
        images = self.take(np.arange(len(self.rows)))
        return images if dtype is None else images.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"IndexedImages({len(self.rows)} of {len(self.base)} rows, shape {self.shape}, {self.dtype})"


@dataclass
class Split:
    """One split's decoded images: an array, or IndexedImages picked from the image cache's memory map."""

    images: np.ndarray | IndexedImages  # uint8 (N, S, S, 3)
    labels: np.ndarray  # int64 (N,)
    boxes: np.ndarray | None = None  # float32 (N, 4) [x0, y0, x1, y1]; synthetic only


@dataclass
class DecodedSource:
    """A source's three splits as decoded (or read from the image cache), with what happened on the way."""

    splits: dict[str, Split]  # "train" | "validation" | "test" -> Split
    class_names: list[str]  # index = label
    skipped: list[dict] = field(default_factory=list)  # [{"path", "reason"}] files that could not be read
    cache_used: bool = False  # True when the images came from the image cache, not from decoding
    cache_note: str = ""  # one sentence on the cache (where it is, or why it was not used)


@dataclass
class DecodedImages:
    """Every image a source could decode, once, in the source's fixed order, before any split is picked.

    What the image cache stores: it depends on the files and the image size only, never on the seed,
    the split or the training cap, which pick rows from it (see the module docstring).
    """

    images: np.ndarray  # uint8 (M, S, S, 3); a read-only memory map when cached
    labels: np.ndarray  # int64 (M,)
    class_names: list[str]  # index = label
    skipped: list[dict] = field(default_factory=list)  # [{"path", "reason"}] files that could not be read
    layout: dict = field(default_factory=dict)  # the source's own record of how its items map to rows
    cache_used: bool = False  # True when read from the image cache, not decoded
    cache_note: str = ""  # one sentence on the cache (where it is, or why it was not used)

    def pick(self, rows_per_split: dict) -> DecodedSource:
        """The splits at these rows ({split: int64 (N,) rows of images}), as views, never copies."""
        splits = {name: Split(IndexedImages(self.images, rows_per_split[name]),
                              self.labels[np.asarray(rows_per_split[name], dtype=np.int64)]) for name in SPLITS}
        return DecodedSource(splits=splits, class_names=list(self.class_names), skipped=list(self.skipped),
                             cache_used=self.cache_used, cache_note=self.cache_note)


def split_sizes(total: int) -> tuple[int, int, int]:
    """80/10/10 of total; validation and test get at least one image once there are three."""
    validation = max(round(total * SPLIT_FRACTIONS[1]), 1 if total >= 3 else 0)
    test = max(round(total * SPLIT_FRACTIONS[2]), 1 if total >= 3 else 0)
    return total - validation - test, validation, test


def cap(count: int, train_size: int | None) -> int:
    """count, or train_size when that is smaller (None = no cap)."""
    return count if train_size is None else min(count, train_size)


def ignore_progress(message: str, fraction: float) -> None:
    """The progress callback of a caller that wants none."""
