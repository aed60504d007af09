"""A PetImages-shaped stand-in for the Cats vs Dogs archive, for tests and benchmarks (numpy/PIL only).

The real archive holds PetImages/Cat/<n>.jpg and PetImages/Dog/<n>.jpg, 12,500 of each, photos of
roughly 150-500 px, and junk: a Thumbs.db per class, empty files, truncated JPEGs, PNG data named
.jpg, CMYK and grayscale JPEGs, and 1,738 files without a JFIF header that TFDS's builder drops.
write_pet_images draws the same layout with synthetic pets (gapdemo.data.synthetic) enlarged to random
sizes, with film-grain noise so files weigh about what photos do; write_cats_vs_dogs_archive zips
such a tree the way the builder expects it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gapdemo.data.synthetic import draw_pet

CLASS_FOLDERS = ("Cat", "Dog")  # label 0 and 1, as TFDS orders them
SIDE_RANGE = (150, 500)  # width and height in pixels, each drawn uniformly
DRAWN_SIZE = 96  # pets are drawn this size, then enlarged: drawing is the slow part
NOISE_SIGMA = 6.0  # grey levels of noise: cartoon flats compress far better than photos
JPEG_QUALITY = 85
NON_JFIF_FILES = 1738  # files of the real archive without "JFIF" in their first bytes
# Junk per class: (kind, how many per 12,500 files); at least one of each whatever the size.
JUNK_PER_12500 = {"empty": 1, "truncated": 5, "png_named_jpg": 25, "cmyk": 12, "grayscale": 60}
UNREADABLE_KINDS = ("empty", "truncated")  # the kinds a decoder must skip; the others decode fine
GRAIN_TILE_SIZE = 512  # noise is cropped from a few tiles drawn once: drawing it per photo cost more than the JPEG


@dataclass
class PetImagesSummary:
    """What write_pet_images wrote."""

    root: Path
    files_per_class: int  # .jpg files per class, junk included
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> files over both classes ("photo" included)
    unreadable: list[str] = field(default_factory=list)  # paths of the empty and truncated files
    total_bytes: int = 0


def write_pet_images(root, files_per_class: int, seed: int = 0, workers: int | None = None) -> PetImagesSummary:
    """Write root/Cat/<n>.jpg and root/Dog/<n>.jpg (n = 0 .. files_per_class - 1) plus a Thumbs.db each.

    Args:
        root: the PetImages folder to fill (created; existing files are overwritten).
        files_per_class: .jpg files per class, junk included.
        seed: the same seed writes the same bytes.
        workers: threads encoding JPEGs (PIL releases the GIL); None = every core.
    """
    root = Path(root)
    summary = PetImagesSummary(root=root, files_per_class=files_per_class)
    jobs = []
    for label, class_folder in enumerate(CLASS_FOLDERS):
        (root / class_folder).mkdir(parents=True, exist_ok=True)
        (root / class_folder / "Thumbs.db").write_bytes(_thumbs_db(seed + label))
        kinds = junk_plan(files_per_class, seed * 2 + label)
        jobs += [(root / class_folder / f"{index}.jpg", label, kinds[index], seed * 1_000_003 + label * 500_009 + index)
                 for index in range(files_per_class)]
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        sizes = list(pool.map(lambda job: _write_file(*job), jobs))
    for (path, _, kind, _), size in zip(jobs, sizes, strict=True):
        summary.kinds[kind] = summary.kinds.get(kind, 0) + 1
        summary.total_bytes += size
        if kind in UNREADABLE_KINDS:
            summary.unreadable.append(str(path))
    return summary


def junk_plan(files_per_class: int, seed: int) -> list[str]:
    """The kind of each file of a class ("photo" or a junk kind), junk at seeded random positions."""
    kinds = ["photo"] * files_per_class
    free = list(np.random.default_rng(seed).permutation(files_per_class))
    for kind, per_12500 in JUNK_PER_12500.items():
        for _ in range(min(max(1, round(files_per_class * per_12500 / 12_500)), len(free))):
            kinds[int(free.pop())] = kind
    return kinds


def photo_bytes(label: int, seed: int, image_format: str = "JPEG", mode: str = "RGB",
                side_range: tuple[int, int] = SIDE_RANGE) -> bytes:
    """One pet 'photo' of a random size in side_range, encoded as image_format in mode."""
    rng = np.random.default_rng(seed)
    drawn, _ = draw_pet(label, DRAWN_SIZE, rng)  # uint8 (96, 96, 3)
    width, height = (int(side) for side in rng.integers(side_range[0], side_range[1] + 1, size=2))
    enlarged = np.asarray(Image.fromarray(drawn).resize((width, height), Image.Resampling.BILINEAR), np.int16)
    tiles = _grain_tiles()
    tile = tiles[int(rng.integers(len(tiles)))]
    top, left = (int(offset) for offset in rng.integers(0, GRAIN_TILE_SIZE - max(side_range) + 1, size=2))
    grain = tile[top:top + height, left:left + width, None]  # (H, W, 1): one grain for R, G and B
    image = Image.fromarray(np.clip(enlarged + grain, 0, 255).astype(np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": JPEG_QUALITY} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def file_bytes(kind: str, label: int, seed: int, side_range: tuple[int, int] = SIDE_RANGE) -> bytes:
    """The bytes of one file of kind ("photo" or a key of JUNK_PER_12500)."""
    if kind == "empty":
        return b""
    if kind == "png_named_jpg":
        return photo_bytes(label, seed, "PNG", side_range=side_range)
    if kind in ("cmyk", "grayscale"):
        return photo_bytes(label, seed, mode="CMYK" if kind == "cmyk" else "L", side_range=side_range)
    data = photo_bytes(label, seed, side_range=side_range)
    return data[:len(data) // 2] if kind == "truncated" else data  # a copy cut off half-way


@functools.lru_cache(maxsize=1)
def _grain_tiles() -> tuple[np.ndarray, ...]:
    """Four int16 (512, 512) tiles of rounded Gaussian noise, drawn once per process."""
    return tuple(np.round(np.random.default_rng(tile).normal(0.0, NOISE_SIGMA, (GRAIN_TILE_SIZE,) * 2)).astype(np.int16)
                 for tile in range(4))


def _write_file(path: Path, label: int, kind: str, seed: int) -> int:
    data = file_bytes(kind, label, seed)
    path.write_bytes(data)
    return len(data)


def _thumbs_db(seed: int) -> bytes:
    # An OLE2 compound file's magic and noise: what Windows leaves in every folder it has shown.
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + np.random.default_rng(seed).bytes(4088)


def write_cats_vs_dogs_archive(path, photos_per_class: int, seed: int = 0, non_jfif_files: int = NON_JFIF_FILES,
                               side_range: tuple[int, int] = (48, 96)) -> int:
    """Zip a stand-in kagglecatsanddogs_5340.zip: PetImages/{Cat,Dog}/<n>.jpg as TFDS's builder reads it.

    Holds photos_per_class JFIF JPEGs per class, and non_jfif_files files without a JFIF header
    (the builder drops them and insists on finding exactly 1,738): a few CMYK JPEGs, PNGs named
    .jpg and empty files, the rest a few bytes each so the archive stays small. Plus a Thumbs.db
    per class and a readme, which the builder ignores. Returns the archive's size in bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("readme[1].txt", "A stand-in for the Microsoft Cats vs Dogs archive.\n")
        for label, class_folder in enumerate(CLASS_FOLDERS):
            archive.writestr(f"PetImages/{class_folder}/Thumbs.db", _thumbs_db(seed + label))
            for index in range(photos_per_class):
                archive.writestr(f"PetImages/{class_folder}/{index}.jpg",
                                 file_bytes("photo", label, int(rng.integers(2**31)), side_range))
        special = ["cmyk", "png_named_jpg", "empty"]
        for number in range(non_jfif_files):
            label = number % 2
            kind = special[number // 2] if number < 2 * len(special) else "tiny"
            data = (b"junk, not an image" if kind == "tiny"
                    else file_bytes(kind, label, int(rng.integers(2**31)), side_range))
            archive.writestr(f"PetImages/{CLASS_FOLDERS[label]}/{photos_per_class + number // 2}.jpg", data)
    return path.stat().st_size
