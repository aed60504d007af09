"""Using the image cache's entries: reading one, marking it in use while mapped, and a size limit.

Each read records the entry's use (meta.json's mtime) and marks it in use by this process (a
.in-use-<process token> file in the entry, removed once the process drops the last array mapped
from it). When a new entry is committed, the least recently used entries go until the cache fits
in GAPDEMO_CACHE_MAX_BYTES, but never one in use by a live process, and never the new one. An
entry is first renamed out of the way (so no load finds it half-removed), then deleted; where a
mapped file cannot be moved or deleted (Windows), the entry stays, quietly.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from gapdemo import settings
from gapdemo.data.cache import (
    CACHE_FORMAT,
    ENTRY_PART,
    CacheError,
    cache_bytes,
    list_entries,
    new_partial_folder,
    remove_tree,
    tree_bytes,
)
from gapdemo.data.splits import DecodedImages
from gapdemo.runs import process_token, token_is_alive

MAX_BYTES_VARIABLE = settings.CACHE_MAX_BYTES.name
DEFAULT_MAX_BYTES = settings.CACHE_MAX_BYTES.default  # 20 GiB: 28 entries of 25,000 photos at 100 px, 7 at 200 px
IN_USE_PREFIX = ".in-use-"

# Arrays this process has mapped from each entry: the marker goes when the count drops to 0.
_mapped_counts: dict[Path, int] = {}
_mapped_lock = threading.RLock()  # re-entrant: a finalizer may run (garbage collection) while it is held


def read_entry(entry: Path, key: str) -> DecodedImages:
    """The entry's images as a read-only memory map, marked in use; CacheError when anything does not add up."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            raise CacheError("written for other settings")
        images = np.load(entry / f"{ENTRY_PART}_images.npy", mmap_mode="r")  # a short file raises ValueError here
        labels = np.load(entry / f"{ENTRY_PART}_labels.npy", allow_pickle=False)
        _check_arrays(images, labels, meta)
        decoded = DecodedImages(images=images, labels=labels.astype(np.int64), class_names=list(meta["class_names"]),
                                skipped=list(meta["skipped"]), layout=dict(meta["layout"]), cache_used=True,
                                cache_note=f"Read the decoded images from the cache in {entry}.")
    except (OSError, ValueError, KeyError, TypeError) as error:  # missing, truncated or garbled files
        raise CacheError(str(error).split("\n")[0] or type(error).__name__) from error
    mark_in_use(entry, images)
    record_use(entry)
    return decoded


def _check_arrays(images, labels, meta: dict) -> None:
    size, count = int(meta["image_size"]), int(meta["count"])
    if images.dtype != np.uint8 or images.shape != (count, size, size, 3):
        raise CacheError(f"images are {images.dtype} {images.shape}, expected uint8 ({count}, {size}, {size}, 3)")
    if labels.shape != (count,) or (count and not 0 <= labels.min() <= labels.max() < len(meta["class_names"])):
        raise CacheError("labels do not match the images")
    # Contents are not hashed: that would read every byte on every load. A size or shape that
    # does not add up is what a killed copy or a full disk leaves behind.


def record_use(entry: Path) -> None:
    """Make now the entry's last use (meta.json's mtime), quietly: a read-only cache still loads."""
    try:
        os.utime(entry / "meta.json")
    except OSError:
        pass


def last_used(entry: Path) -> float:
    """When the entry was last read or written (0 when it has no meta.json any more)."""
    try:
        return (entry / "meta.json").stat().st_mtime
    except OSError:
        return 0.0


def mark_in_use(entry: Path, mapped: np.ndarray) -> None:
    """Mark entry in use by this process until mapped (and every view of it) is garbage, quietly."""
    token = process_token()
    if token is None:
        return
    with _mapped_lock:
        try:
            # Touched on every read, not only the first: the entry may be a new one at the same path.
            (entry / f"{IN_USE_PREFIX}{token}").touch()
        except OSError:
            return  # a read-only cache: nothing can evict from it either
        _mapped_counts[entry] = _mapped_counts.get(entry, 0) + 1
    weakref.finalize(mapped, _release, entry, token)


def _release(entry: Path, token: str) -> None:
    with _mapped_lock:
        _mapped_counts[entry] -= 1
        if _mapped_counts[entry] == 0:
            del _mapped_counts[entry]
            try:
                (entry / f"{IN_USE_PREFIX}{token}").unlink()
            except OSError:
                pass  # removed with its entry, or a read-only cache


def in_use(entry: Path) -> bool:
    """Whether a live process (this one included) has the entry mapped; markers of dead processes go."""
    try:
        markers = [path for path in entry.iterdir() if path.name.startswith(IN_USE_PREFIX)]
    except OSError:
        return False
    alive = False
    for marker in markers:
        if token_is_alive(marker.name[len(IN_USE_PREFIX):]):
            alive = True
        else:  # a process killed while it had the entry mapped
            try:
                marker.unlink()
            except OSError:
                pass
    return alive


def max_cache_bytes() -> int:
    """$GAPDEMO_CACHE_MAX_BYTES (a size: 20GB, 512M, 21474836480 or 2e10; binary units), else DEFAULT_MAX_BYTES.

    A typo stops the page or command as it starts (gapdemo.settings.check_all), not a load half-way.
    """
    return settings.cache_max_bytes()


def evict_least_recently_used(root: Path, keep: Path, limit: int | None = None) -> list[Path]:
    """Remove whole entries, least recently used first, until the cache under root fits in limit bytes.

    Never keep (the entry just committed) nor an entry in use; returns the entries removed.
    """
    limit = max_cache_bytes() if limit is None else limit
    total = cache_bytes(root)
    removed = []
    for entry in sorted((path for path in list_entries(root) if path != keep), key=last_used):
        if total <= limit:
            break
        if in_use(entry):
            continue
        size = tree_bytes(entry)
        if _remove_entry(root, entry):
            total -= size
            removed.append(entry)
    return removed


def _remove_entry(root: Path, entry: Path) -> bool:
    """Move entry aside (one rename: a load finds it whole or not at all), then delete it."""
    doomed = new_partial_folder(root, entry.name)  # a .partial- name: if we die here, the next load tidies it
    try:
        os.rename(entry, doomed)
    except OSError:
        return False  # Windows: a file in it is mapped by some process; or another process took it
    remove_tree(doomed)
    return True
