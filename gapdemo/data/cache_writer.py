"""Writing the decoded-image cache: a load decodes straight into a new entry, or reads the one it finds.

An entry holds every image of a source's files at one image size, once (gapdemo.data.splits' contract):
the seed, split and training cap pick rows from it afterwards, so they never decode again.
Images go into a .partial- folder's preallocated .npy memory maps (space reserved up front, so a
full disk fails before decoding, never with a bus error half-way); once every file is written
and fsync'd, the folder is renamed into place (gapdemo.data.cache describes the layout). An unwritable
or full cache directory turns the cache off for that load, which carries on in memory and says so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from gapdemo.data.cache import (
    CACHE_FORMAT,
    ENTRY_PART,
    CacheError,
    CacheRequest,
    new_partial_folder,
    remove_abandoned_partials,
    remove_stale_variants,
    remove_tree,
)
from gapdemo.data.cache_entries import evict_least_recently_used, read_entry
from gapdemo.data.splits import DecodedImages, Progress, Split

NPY_HEADER_BYTES = 128  # fixed, so the header can be rewritten in place once the image count is known
RESERVE_CHUNK_BYTES = 8 * 2**20  # zeros written at a time where the system cannot reserve space itself
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def load_or_decode(request: CacheRequest, decode, report: Progress) -> DecodedImages:
    """Open request's entry, or decode into a new one (or into memory when caching is off or fails).

    Args:
        request: where the entry lives (CacheRequest).
        decode: decode(writer: EntryWriter) -> (class_names, skipped, layout); fills
            writer.open_split(ENTRY_PART, ...) with every image, in the source's order.
        report: progress(message, fraction).
    """
    damage = ""
    entry = request.entry
    if entry is not None and entry.is_dir():
        try:
            report("Opening the cached images", 0.5)
            return read_entry(entry, request.key)
        except CacheError as error:
            if entry.is_dir():  # gone meanwhile (evicted by another load) is no damage: decode afresh
                damage = f"The cached images in {entry} were damaged ({error}), so they were decoded again"
                remove_tree(entry)
    writer = EntryWriter(request, damage)
    try:
        class_names, skipped, layout = decode(writer)
        return writer.commit(class_names, skipped, layout)
    finally:
        writer.abandon()


class EntryWriter:
    """Collects a load's images into a .partial- folder of its own, then renames it into place (commit).

    When the cache root cannot be written (read-only, full, not a folder), or caching is off, the
    splits go to memory instead and the load carries on; note() says why.
    """

    def __init__(self, request: CacheRequest, damage: str = ""):
        self.request = request
        self.damage = damage  # why an existing entry was thrown away ("" when there was none)
        self.problem = ""  # why the cache could not be written ("" when it could)
        self.writers: dict[str, SplitWriter] = {}
        self.partial: Path | None = None
        self.cache_off = request.root is None
        self.image_size = 0
        if request.root is not None:
            try:
                request.root.mkdir(parents=True, exist_ok=True)
                remove_abandoned_partials(request.root)
                self.partial = new_partial_folder(request.root, request.key)  # unique per load
                self.partial.mkdir()
            except OSError as error:
                self.disable(error)

    def disable(self, error: OSError) -> None:
        """Write to memory from now on and keep no entry, with one sentence saying why."""
        if not self.cache_off:
            self.problem = error.strerror or str(error)
        self.cache_off = True
        self.abandon()

    def open_split(self, name: str, capacity: int | None, image_size: int) -> SplitWriter:
        """A writer for the entry's part name (ENTRY_PART: every image), for at most capacity images
        (None = unknown: memory only)."""
        self.image_size = image_size
        writer = None
        if self.partial is not None and capacity:
            try:
                writer = SplitWriter(self.partial / f"{name}_images.npy", capacity, image_size)
            except OSError as error:
                self.disable(error)
        self.writers[name] = writer or SplitWriter(None, capacity, image_size)
        return self.writers[name]

    def commit(self, class_names: list[str], skipped: list[dict], layout: dict) -> DecodedImages:
        """Finish the images; rename the entry into place and reopen it read-only when caching.

        Args:
            class_names: index = label.
            skipped: [{"path", "reason"}] items that could not be decoded.
            layout: the source's small JSON record of which item is which row (kept in meta.json).
        """
        if ENTRY_PART not in self.writers:  # nothing was opened: an entry of no images
            self.open_split(ENTRY_PART, 0, self.image_size)
        splits = {name: writer.finish() for name, writer in self.writers.items()}
        failures = [writer.error for writer in self.writers.values() if writer.error is not None]
        if failures:
            self.disable(failures[0])  # a file could not be cut to length: its images stay mapped, nothing is lost
        if self.partial is not None and all(writer.on_disk for writer in self.writers.values()):
            try:
                entry = self._rename_into_place(class_names, skipped, layout, splits)
                decoded = read_entry(entry, self.request.key)  # read-only maps; the writable ones go
                decoded.cache_used, decoded.cache_note = False, self.cache_sentence(entry)
                return decoded
            except (OSError, CacheError) as error:
                self.disable(error if isinstance(error, OSError) else OSError(str(error)))
        elif self.partial is not None:
            self.abandon()  # images of unknown count went to memory: no complete entry to keep
        images = splits[ENTRY_PART]
        return DecodedImages(images=images.images, labels=images.labels, class_names=list(class_names),
                             skipped=skipped, layout=layout, cache_note=self.cache_sentence())

    def cache_sentence(self, entry: Path | None = None) -> str:
        """One sentence on what this load did with the cache ("" when caching was off from the start)."""
        if self.problem:
            text = (f"could not write the image cache in {self.request.root} ({self.problem}); training goes on "
                    "without it, so the next load decodes the images again.")
            return f"{self.damage}, but {text}" if self.damage else text[0].upper() + text[1:]
        if self.damage:
            return f"{self.damage} and cached afresh."
        return f"Decoded the images into the cache in {entry}." if entry else ""

    def _rename_into_place(self, class_names, skipped, layout, splits: dict[str, Split]) -> Path:
        for name, split in splits.items():
            _write_npy_durably(self.partial / f"{name}_labels.npy", split.labels)
        meta = {"format": CACHE_FORMAT, "key": self.request.key, "variant": self.request.variant,
                "image_size": self.image_size, "class_names": list(class_names), "skipped": skipped,
                "count": int(len(splits[ENTRY_PART].labels)), "layout": layout}
        _write_bytes_durably(self.partial / "meta.json", json.dumps(meta, indent=1).encode())
        _fsync_directory(self.partial)
        entry = self.request.entry
        try:
            _rename_with_maps_closed(self.partial, entry, splits)
        except OSError:
            if not (entry / "meta.json").is_file():
                raise
            self.abandon()  # another process committed the same entry first: theirs is as good as ours
        else:
            _fsync_directory(self.request.root)
            remove_stale_variants(self.request.root, self.request.variant, keep=entry)
            evict_least_recently_used(self.request.root, keep=entry)
        self.partial = None
        return entry

    def abandon(self) -> None:
        """Remove the .partial- folder; memory maps into it stay valid until dropped (Linux unlinks lazily)."""
        if self.partial is not None:
            remove_tree(self.partial)
            self.partial = None


class SplitWriter:
    """Images of one split, appended in order: into a preallocated .npy memory map, or into memory."""

    def __init__(self, path: Path | None, capacity: int | None, image_size: int):
        self.shape = (image_size, image_size, 3)
        self.count = 0
        self.labels: list[int] = []
        self.on_disk = path is not None
        self.error: OSError | None = None  # why the file could not be finished (its images stay mapped)
        if self.on_disk:
            self.path = path
            self.images = _create_npy_memmap(path, capacity, self.shape)  # (capacity, S, S, 3)
        else:
            self.images = np.empty((capacity, *self.shape), np.uint8) if capacity else []

    def append(self, image: np.ndarray, label: int) -> None:
        if isinstance(self.images, list):
            self.images.append(image)
        else:
            if self.count >= len(self.images):
                raise ValueError(f"more images than the {len(self.images)} this split was sized for")
            self.images[self.count] = image
        self.count += 1
        self.labels.append(int(label))

    def finish(self) -> Split:
        """The split as written: for a file, its header and length now say count images, mapped read-only.

        The writable map is closed before the file is cut to length (Windows refuses to cut a mapped
        file); should cutting fail all the same, self.error says why and the images stay mapped.
        """
        labels = np.asarray(self.labels, np.int64)
        if isinstance(self.images, list):
            images = np.stack(self.images) if self.images else np.zeros((0, *self.shape), np.uint8)
            return Split(images, labels)
        if not self.on_disk:
            return Split(self.images[:self.count], labels)
        self.images.flush()
        if not self.path.exists():  # the .partial- folder went (the cache was turned off later): keep the map
            self.on_disk = False
            return Split(self.images[:self.count], labels)
        self.images = None  # the map's only reference: dropping it unmaps the file
        try:
            _shrink_npy(self.path, self.count, self.shape)
        except OSError as error:
            self.on_disk, self.error = False, error
        return Split(_map_images(self.path, self.count, self.shape), labels)


def _npy_header(shape: tuple) -> bytes:
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    body_length = NPY_HEADER_BYTES - len(_NPY_MAGIC) - 2
    return _NPY_MAGIC + body_length.to_bytes(2, "little") + text.ljust(body_length - 1).encode() + b"\n"


def _create_npy_memmap(path: Path, capacity: int, shape: tuple) -> np.memmap:
    """A .npy file for capacity images, its space reserved now (ENOSPC here, not a SIGBUS mid-write)."""
    with open(path, "wb") as handle:
        handle.write(_npy_header((capacity, *shape)))
        handle.flush()
        _reserve_space(handle, path, NPY_HEADER_BYTES + capacity * int(np.prod(shape)))
    return np.memmap(path, np.uint8, mode="r+", offset=NPY_HEADER_BYTES, shape=(capacity, *shape))


def _reserve_space(handle, path: Path, size: int) -> None:
    """Grow handle's file (written up to its position) to size bytes on disk blocks set aside now.

    posix_fallocate does that where it exists. macOS and Windows lack it (and some Linux file systems
    refuse it): there the free space is checked first, so a full disk fails at once with the sizes,
    and then zeros are written. Writing only the last byte would leave a sparse file on macOS's APFS,
    whose blocks a later write through the memory map could still find taken.
    """
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
            return
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # not "this file system cannot"
                raise
    written = handle.tell()
    free = shutil.disk_usage(path.parent).free
    if size - written > free:
        raise OSError(errno.ENOSPC, f"No space left on device: the images need {_megabytes(size - written)} "
                                    f"there and {_megabytes(free)} are free")
    zeros = memoryview(bytes(min(RESERVE_CHUNK_BYTES, size - written)))
    while written < size:
        written += handle.write(zeros[:size - written])
    handle.flush()


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MB"


def _map_images(path: Path, count: int, shape: tuple) -> np.memmap:
    """The first count images of a .npy file written by _create_npy_memmap, mapped read-only."""
    return np.memmap(path, np.uint8, mode="r", offset=NPY_HEADER_BYTES, shape=(count, *shape))


def _rename_with_maps_closed(partial: Path, entry: Path, splits: dict[str, Split]) -> None:
    """os.rename(partial, entry) with the splits' maps of files in partial closed meanwhile.

    Windows refuses to rename a folder while a file in it is open. Afterwards every split maps its
    file again, from entry when the rename went through, else from partial: a refused rename loses
    no image, and the caller can carry on from the .partial- folder.
    """
    shapes = {name: split.images.shape for name, split in splits.items()}  # (count, S, S, 3)
    for split in splits.values():
        split.images = None  # the maps' only references (SplitWriter.finish keeps none): the files close
    folder = partial
    try:
        os.rename(partial, entry)
        folder = entry
    finally:
        for name, split in splits.items():
            split.images = _map_images(folder / f"{name}_images.npy", shapes[name][0], shapes[name][1:])


def _shrink_npy(path: Path, count: int, shape: tuple) -> None:
    """Rewrite the header for count images and cut the file there; fsync it."""
    with open(path, "r+b") as handle:
        handle.write(_npy_header((count, *shape)))
        handle.truncate(NPY_HEADER_BYTES + count * int(np.prod(shape)))
        handle.flush()
        os.fsync(handle.fileno())


def _write_npy_durably(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _write_bytes_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    """Make the names in path (a rename, a new file) durable. Windows cannot open a folder as a file,
    and NTFS journals its folder entries itself, so there is nothing to do there."""
    if os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
