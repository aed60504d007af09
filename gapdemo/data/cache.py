"""The decoded-image cache: every image of a source at one image size, as memory-mappable .npy files.

The first load of a folder or of Cats vs Dogs at an image size decodes every image once into an
entry (gapdemo.data.cache_writer); later loads of the same files at that size, whatever their seed,
split or training cap, open the entry with np.load(mmap_mode="r") in about a second and pick each
split's rows by index (gapdemo.data.splits), and training reads its batches from the memory map, so
the images are never held in memory twice. This module knows the entries on disk: where, under
which key, how big they are, and how to clear them; gapdemo.data.cache_entries reads them, marks them
in use and keeps the cache under its size limit.

Layout of the cache root (cache_root()):
    <label>-<key>/                  one entry: one source's files at one image size
        meta.json                   format, key, variant, class names, count, skipped files, the source's
                                    layout (which file is which row); its mtime is the entry's last use
        all_images.npy              uint8 (M, S, S, 3): every decodable image once, in the source's order
        all_labels.npy              int64 (M,)
        .in-use-<pid>@<start>       one per process that has the entry mapped (removed when it lets go)
    .partial-<key>-<unique>-<pid>@<start>/   an entry being written (or evicted), renamed into place once complete

An entry is written into a .partial- folder and renamed into place once every file is written and
fsync'd, so a load killed half-way leaves no entry behind. Entries are removed, never rewritten
in place, so a run reading one through its memory maps keeps its data until it closes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from gapdemo import settings
from gapdemo.runs import process_token, token_is_alive

CACHE_FORMAT = 2  # bump when the layout or the decoding changes: older entries then stop matching
# 2: one entry per files + image size (seed, split and cap pick rows at load time); 1: an entry per split settings
CACHE_DIR_VARIABLE = settings.CACHE_DIR.name
PARTIAL_PREFIX = ".partial-"
ENTRY_PART = "all"  # an entry's one part: <part>_images.npy and <part>_labels.npy hold every image


class CacheError(Exception):
    """An entry that cannot be used as it is (missing, truncated or inconsistent file)."""


@dataclass
class CacheRequest:
    """Where a load's entry lives, or root None for a load that is not cached."""

    root: Path | None  # the cache root; None = decode into memory only
    label: str  # readable start of the entry's folder name, e.g. "folder-PetImages-100px"
    key: str  # hex digest of what decides the decoded images: source, files, image size (entry_key)
    variant: str = ""  # the same source and settings; another key of the same variant is stale

    @property
    def entry(self) -> Path | None:
        return None if self.root is None else self.root / f"{self.label}-{self.key}"


@dataclass
class CacheStatus:
    """What the cache holds for one data choice, for the page and the CLI."""

    root: Path
    cached: bool  # this choice's entry is complete on disk
    entry_bytes: int  # size of this choice's entry (0 when not cached)
    total_bytes: int  # size of every entry under root
    writable: bool = True  # False when root (or the folder it would be made in) cannot be written


def cache_root(cache_dir: str | None = None) -> Path:
    """cache_dir, else $GAPDEMO_CACHE_DIR, else $XDG_CACHE_HOME/gapdemo, else ~/.cache/gapdemo."""
    chosen = cache_dir or settings.cache_dir()
    if not chosen:
        chosen = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "gapdemo")
    return Path(os.path.expanduser(chosen))


def entry_key(parts: dict) -> str:
    """A short stable digest of parts (plus the cache format), which name what decides the images."""
    text = json.dumps({**parts, "cache_format": CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def entry_label(*words) -> str:
    """A folder-name-safe label from words: entry_label("folder", "PetImages", "100px")."""
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", str(word)).strip("_")[:40] or "x" for word in words)


def remove_tree(path: Path) -> None:
    """rm -rf path, quietly: a cache that cannot be tidied must not stop a load."""
    shutil.rmtree(path, ignore_errors=True)


def list_entries(root: Path) -> list[Path]:
    """Complete entries under root (folders with a meta.json, not .partial-)."""
    try:
        return sorted(path for path in Path(root).iterdir()
                      if path.is_dir() and not path.name.startswith(".") and (path / "meta.json").is_file())
    except OSError:
        return []


def new_partial_folder(root: Path, key: str) -> Path:
    """A .partial- folder path for one load (or eviction) of key in this process, never used before.

    Unique per call (two loads of one folder at once in one process write apart), and ending in
    this process's token, so remove_abandoned_partials can tell when its writer is gone.
    """
    token = (process_token() or str(os.getpid())).replace(":", "-")
    return Path(root) / f"{PARTIAL_PREFIX}{key}-w{secrets.token_hex(4)}-{token}"


def remove_abandoned_partials(root: Path) -> None:
    """Remove .partial- folders whose writing process is gone (killed mid-load)."""
    for path in Path(root).glob(f"{PARTIAL_PREFIX}*"):
        token = _writer_token(path.name)
        if token is not None and not token_is_alive(token):
            remove_tree(path)


def _writer_token(partial_name: str) -> str | None:
    """The writer's process token from '.partial-<key>-<unique>-<pid>@<start>' (or '.partial-<key>-<pid>@<start>',
    or '-<pid>-<ticks>' written before psutil); None when the name holds none, so a folder of unknown
    origin is left alone."""
    parts = partial_name.rsplit("-", 2)
    if "@" in parts[-1]:
        return parts[-1]
    if len(parts) == 3 and parts[-2].isdigit() and parts[-1].isdigit():
        return f"{parts[-2]}:{parts[-1]}"
    return None


def remove_stale_variants(root: Path, variant: str, keep: Path) -> None:
    """Remove entries of the same variant as keep (an older state of the same folder, say)."""
    if not variant:
        return
    for entry in list_entries(root):
        if entry != keep and _read_variant(entry) == variant:
            remove_tree(entry)


def _read_variant(entry: Path) -> str:
    try:
        return json.loads((entry / "meta.json").read_text()).get("variant", "")
    except (OSError, ValueError):
        return ""


def tree_bytes(path: Path) -> int:
    """Bytes of every file under path (0 when missing)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # removed while we count
    return total


def request_status(request: CacheRequest, cache_dir: str | None = None) -> CacheStatus:
    """Whether request's entry is on disk, its size and the size of the whole cache."""
    root = request.root or cache_root(cache_dir)
    entry = request.entry
    cached = entry is not None and (entry / "meta.json").is_file()
    return CacheStatus(root=root, cached=cached, entry_bytes=tree_bytes(entry) if cached else 0,
                       total_bytes=cache_bytes(root), writable=is_writable(root))


def is_writable(root: Path) -> bool:
    """Whether root, or the nearest folder above it that exists, accepts new files (a read-only mount does not)."""
    folder = Path(root)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def cache_bytes(root: Path) -> int:
    """Bytes held by the cache under root: its entries and unfinished .partial- folders."""
    return sum(tree_bytes(path) for path in [*list_entries(root), *Path(root).glob(f"{PARTIAL_PREFIX}*")])


def clear_cache(cache_dir: str | None = None) -> int:
    """Remove every entry (and abandoned .partial- folder) under the cache root; return the bytes freed.

    Only folders the cache wrote are removed, so a cache dir pointed at a folder with other files in
    it loses nothing else. Runs reading an entry keep their memory maps (the files go once closed).
    """
    root = cache_root(cache_dir)
    freed = 0
    for entry in list_entries(root):
        freed += tree_bytes(entry)
        remove_tree(entry)
    if root.is_dir():
        before = cache_bytes(root)
        remove_abandoned_partials(root)
        freed += before - cache_bytes(root)
    return freed
