"""The folder source: PATH/<class>/* images, split 80/10/10 per class, decoded on every core and cached.

Every file is decoded once per image size, in listing order (class by class, paths sorted), into
one cache entry; the seed's split and the training cap then pick rows from it (split_rows), so
another seed or cap opens the entry instead of decoding again. The cache key holds the folder's
listing (each image file's relative path, size and modification time), so adding, removing or
changing a file decodes the folder again on the next load.

Its errors name the folder's sub-folders and files for the operator; each carries a public sentence
naming none, which served work shows instead (gapdemo.data.audience): every visitor reads a failed
run's message.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
from dataclasses import dataclass

import numpy as np
from PIL import UnidentifiedImageError

from gapdemo.config import DataConfig
from gapdemo.data import decode
from gapdemo.data.audience import operator_hint
from gapdemo.data.cache import ENTRY_PART, CacheRequest, cache_root, entry_key, entry_label
from gapdemo.data.cache_writer import EntryWriter, load_or_decode
from gapdemo.data.checks import DataError
from gapdemo.data.roots import folder_path_problem
from gapdemo.data.splits import SPLITS, DecodedSource, Progress, split_sizes

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
DECODE_CHUNK = 256  # files handed to the decoding threads at a time (results are used in order)
PROGRESS_EVERY = 20  # files between two progress reports


@dataclass
class FolderListing:
    """The class folders and image files of a folder source, as found by one scan."""

    root: pathlib.Path
    class_names: list[str]  # the two sub-folders, sorted; index = label
    files: list[list[pathlib.Path]]  # per class, sorted
    fingerprint: str  # digest of every image file's relative path, size and mtime_ns


def load_folder(config: DataConfig, report: Progress) -> DecodedSource:
    """Scan config.data_dir, open its cache entry or decode it (see load_or_decode), then pick config's splits."""
    report("Scanning folder", 0.0)
    listing = scan_folder(config.data_dir)
    decoded = load_or_decode(cache_request(config, listing),
                             lambda writer: decode_listing(listing, config.image_size, writer, report), report)
    layout = decoded.layout
    return decoded.pick(split_rows(layout["files_per_class"], layout["skipped_positions"], config.seed,
                                   config.train_size))


def cache_request(config: DataConfig, listing: FolderListing) -> CacheRequest:
    """The cache entry of listing at config's image size: any change of files or size gives another key.

    The seed, split and training cap are not in it: they pick rows from the entry (split_rows).
    """
    settings = {"source": "folder", "root": str(listing.root), "image_size": config.image_size}
    return CacheRequest(root=cache_root(config.cache_dir),
                        label=entry_label("folder", listing.root.name, f"{config.image_size}px"),
                        key=entry_key({**settings, "files": listing.fingerprint}),
                        variant=entry_key(settings))


def scan_folder(data_dir: str | None) -> FolderListing:
    """The two class folders (sorted sub-folders) and each one's image files (sorted), with a fingerprint."""
    problem = folder_path_problem(data_dir, None)  # the gate's sentence (gapdemo.validation), and how to fix it
    if problem:
        raise DataError(f"{problem} Give a folder with one sub-folder per class, e.g. PetImages/ holding Cat/ and Dog/.")
    root = pathlib.Path(data_dir).expanduser()
    class_dirs = _class_folders(root)
    _refuse_names_differing_in_case(root, [path.name for path in class_dirs])
    if len(class_dirs) != 2:
        found = ", ".join(path.name for path in class_dirs) or "none"
        raise folder_error(f"Folder {root} must hold exactly two class sub-folders (e.g. Cat/ and Dog/) "
                           f"but has {len(class_dirs)} ({found}); arrange the images as {root}/<class>/*.jpg.",
                           "The folder must hold exactly two class sub-folders with images (e.g. Cat/ and Dog/) "
                           f"but has {len(class_dirs)}")
    digest, files = hashlib.sha256(), []
    for class_dir in class_dirs:
        found = _image_files(class_dir)  # [(path, size, mtime_ns)] sorted by path
        if not found:
            extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise folder_error(f"Class folder {class_dir} holds no images ({extensions}); add some or remove the folder.",
                               f"One of the folder's two class sub-folders holds no images ({extensions})")
        for path, size, mtime_ns in found:
            digest.update(f"{path.relative_to(root).as_posix()}\t{size}\t{mtime_ns}\n".encode())
        files.append([path for path, _, _ in found])
    return FolderListing(root.resolve(), [path.name for path in class_dirs], files, digest.hexdigest())


def folder_error(detail: str, public: str) -> DataError:
    """A DataError whose public sentence (public, naming no file or sub-folder) says where the operator reads detail."""
    return DataError(detail, f"{public}; {operator_hint('folder')}.")


def _class_folders(root: pathlib.Path) -> list[pathlib.Path]:
    """root's sub-folders but hidden ones, sorted by name; a DataError when root cannot be listed."""
    try:
        found = [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    except OSError as error:  # no permission, or removed since the path was checked
        raise folder_error(f"The folder {root} cannot be read ({error.strerror or error}).",
                           f"The folder cannot be read ({error.strerror or type(error).__name__})") from None
    return sorted(found, key=lambda path: path.name)


def _image_files(class_dir: pathlib.Path) -> list[tuple[pathlib.Path, int, int]]:
    """Non-hidden files with an image extension anywhere under class_dir, sorted, with size and mtime_ns."""
    found = []
    for folder, sub_folders, names in os.walk(class_dir):
        sub_folders[:] = [name for name in sub_folders if not name.startswith(".")]  # skip hidden trees
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed between listing and stat: not part of this scan
            if os.path.isfile(path):
                found.append((pathlib.Path(path), stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=_listing_order)


def _listing_order(item) -> tuple[str, ...]:
    """Sort key of an (path, size, mtime_ns) item: its path's parts as written. Windows' paths compare
    without case, so sorting the paths themselves would split a folder differently there."""
    return item[0].parts


def _refuse_names_differing_in_case(root: pathlib.Path, names: list[str]) -> None:
    """A DataError for class folders such as Cat/ and cat/: macOS (by default) and Windows hold them as
    one folder, so a data set that has both reads differently there."""
    folded = [name.casefold() for name in names]
    alike = sorted(name for name, key in zip(names, folded, strict=True) if folded.count(key) > 1)
    if alike:
        raise folder_error(f"Folder {root} has class folders whose names differ only in case ({', '.join(alike)}), "
                           "which macOS and Windows see as one folder; rename or merge them.",
                           "The folder has class sub-folders whose names differ only in case, which macOS and "
                           "Windows see as one folder: they must be renamed or merged")


def assign_splits(files_per_class, seed: int) -> dict[str, list]:
    """Stratified, seeded 80/10/10 split into (path, label) lists; train in a seeded mixed order."""
    rng = np.random.default_rng(seed)
    assigned = {name: [] for name in SPLITS}
    for label, files in enumerate(files_per_class):
        order = rng.permutation(len(files))
        train_count, validation_count, _ = split_sizes(len(files))
        bounds = {"train": (0, train_count), "validation": (train_count, train_count + validation_count),
                  "test": (train_count + validation_count, len(files))}
        for name, (start, stop) in bounds.items():
            assigned[name] += [(files[i], label) for i in order[start:stop]]
    # Mixing the classes before the cap keeps a capped training set balanced.
    assigned["train"] = [assigned["train"][i] for i in rng.permutation(len(assigned["train"]))]
    return assigned


def split_rows(files_per_class: list[int], skipped_positions: list[int], seed: int,
               train_size: int | None) -> dict[str, np.ndarray]:
    """Each split's rows of the folder's entry: the files assign_splits gives seed, minus the undecodable ones.

    Args:
        files_per_class: image files per class in the listing (the entry's files, class by class).
        skipped_positions: listing positions (0 .. sum - 1) of the files that could not be decoded.
        seed: the split's seed.
        train_size: keep the first train_size decodable training files (None = all); undecodable
            files before the cap do not count, as when each split was decoded on its own.

    Returns:
        {split: int64 (N,) rows of the entry's images, in the split's order}.
    """
    decodable = np.ones(sum(files_per_class), bool)  # (files,) in listing order
    decodable[np.asarray(skipped_positions, dtype=np.int64)] = False
    row_of_position = np.cumsum(decodable) - 1  # the entry holds the decodable files in listing order
    starts = np.cumsum([0, *files_per_class[:-1]])
    positions = [range(start, start + count) for start, count in zip(starts, files_per_class, strict=True)]
    rows = {}
    for name, assigned in assign_splits(positions, seed).items():
        kept = np.array([position for position, _ in assigned], dtype=np.int64)
        kept = kept[decodable[kept]]
        if name == "train" and train_size is not None:
            kept = kept[:train_size]
        rows[name] = row_of_position[kept]
    return rows


def decode_listing(listing: FolderListing, image_size: int, writer: EntryWriter, report: Progress):
    """Decode every file of listing, in order, into writer on all cores.

    Returns:
        (class names, skipped files [{"path", "reason"}], layout {"files_per_class", "skipped_positions"}).

    Raises:
        DataError when no file could be decoded, or when the folder changed while decoding.
    """
    items = [(path, label) for label, files in enumerate(listing.files) for path in files]  # listing order
    progress = _Counter(max(len(items), 1), report)
    skipped, skipped_positions = [], []
    images = writer.open_split(ENTRY_PART, len(items), image_size)
    with concurrent.futures.ThreadPoolExecutor(_worker_count(), thread_name_prefix="gapdemo-decode") as pool:
        for position, ((path, label), outcome) in enumerate(_decode_in_order(pool, items, image_size)):
            if isinstance(outcome, np.ndarray):
                images.append(outcome, label)
            else:
                skipped.append({"path": str(path), "reason": outcome})
                skipped_positions.append(position)
            progress.step()
    if images.count == 0:
        example = f" (for example {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise folder_error(f"None of the {len(skipped)} image files in {listing.root} could be decoded{example}; "
                           "replace them with readable JPEG or PNG photos.",
                           f"None of the folder's {len(skipped)} image files could be decoded: they must be "
                           "replaced with readable JPEG or PNG photos")
    _check_unchanged(listing)
    layout = {"files_per_class": [len(files) for files in listing.files], "skipped_positions": skipped_positions}
    return listing.class_names, skipped, layout


def _check_unchanged(listing: FolderListing) -> None:
    try:
        changed = scan_folder(str(listing.root)).fingerprint != listing.fingerprint
    except DataError:
        changed = True
    if changed:
        raise DataError(f"Folder {listing.root} changed while its images were being decoded (files added, "
                        "removed or modified); load it again once it is complete.",
                        "The folder changed while its images were being decoded (files added, removed or "
                        "modified); load it again once it is complete.")


def _decode_in_order(pool, items, image_size: int):
    """Yield (item, uint8 image or skip reason) in items' order, DECODE_CHUNK files at a time in the pool."""
    for start in range(0, len(items), DECODE_CHUNK):
        chunk = items[start:start + DECODE_CHUNK]
        yield from zip(chunk, pool.map(lambda item: _decode_or_reason(item[0], image_size), chunk), strict=True)


def _decode_or_reason(path, image_size: int):
    """The decoded image, or a short reason it could not be decoded (never raises)."""
    try:
        return decode.decode_image_file(path, image_size)
    except UnidentifiedImageError:
        return "not an image (unknown or corrupt format)"
    except FileNotFoundError:
        return "removed while loading"
    except Exception as error:  # truncated, bad pixel data, too large...: reported, never fatal
        return str(error) or type(error).__name__


def _worker_count() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)  # the cores this process may use
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Counter:
    """Counts files done and reports progress every PROGRESS_EVERY files and at the end."""

    def __init__(self, total: int, report: Progress):
        self.total, self.done, self.report = total, 0, report

    def step(self) -> None:
        self.done += 1
        if self.done % PROGRESS_EVERY == 0 or self.done == self.total:
            self.report(f"Decoding images {self.done}/{self.total}", min(self.done / self.total, 1.0))
