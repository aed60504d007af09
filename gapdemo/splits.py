"""What every image source shares: the split names and sizes, a decoded split, progress reports, DataError.

It sits apart from data.py so that the sources (folder.py, cats_vs_dogs.py) and the image cache
(cache.py) can raise DataError and fill splits without importing data.py, which imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test, for every source

Progress = Callable[[str, float], None]  # progress(message, fraction 0..1)


class DataError(ValueError):
    """A data problem the user can fix; str() is one readable sentence (what is wrong + what to do)."""


@dataclass
class Split:
    """One split's decoded images; the images may be a read-only memory map of the image cache."""

    images: np.ndarray  # uint8 (N, S, S, 3)
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
