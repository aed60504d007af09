"""Writing the decoded-image cache: a load decodes straight into a new entry, or reads the one it finds.

An entry holds every image of a source's files at one image size, once (gapdemo.data.splits' contract):
the seed, split and training cap pick rows from it afterwards, so they never decode again.
Images go into a .partial- folder's preallocated .npy memory maps (gapdemo.data.npy_maps: space reserved
up front, so a full disk fails before decoding, never with a bus error half-way); once every file is written
and fsync'd, the folder is renamed into place (gapdemo.data.cache describes the layout). An unwritable
or full cache directory turns the cache off for that load, which carries on in memory and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from gapdemo.data import npy_maps
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
from gapdemo.runs.atomic import fsync_folder, write_atomically, write_bytes_atomic


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
            write_atomically(self.partial / f"{name}_labels.npy",
                             lambda handle, labels=split.labels: np.save(handle, labels, allow_pickle=False))
        meta = {"format": CACHE_FORMAT, "key": self.request.key, "variant": self.request.variant,
                "image_size": self.image_size, "class_names": list(class_names), "skipped": skipped,
                "count": int(len(splits[ENTRY_PART].labels)), "layout": layout}
        write_bytes_atomic(self.partial / "meta.json", json.dumps(meta, indent=1).encode())  # fsyncs the folder
        entry = self.request.entry
        try:
            _rename_with_maps_closed(self.partial, entry, splits)
        except OSError:
            if not (entry / "meta.json").is_file():
                raise
            self.abandon()  # another process committed the same entry first: theirs is as good as ours
        else:
            fsync_folder(self.request.root)
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
            self.images = npy_maps.create_npy_memmap(path, capacity, self.shape)  # (capacity, S, S, 3)
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
            npy_maps.shrink_npy(self.path, self.count, self.shape)
        except OSError as error:
            self.on_disk, self.error = False, error
        return Split(npy_maps.map_images(self.path, self.count, self.shape), labels)


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
            split.images = npy_maps.map_images(folder / f"{name}_images.npy", shapes[name][0], shapes[name][1:])
