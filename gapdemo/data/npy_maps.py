"""The cache's image files: .npy files of uint8 images, their space reserved up front and written through
a memory map, then cut to the count written (gapdemo.data.cache_writer fills them).

The header has a fixed length, so it can be rewritten in place once the image count is known. Space is
reserved before the first image (ENOSPC at once, never a bus error through the map half-way).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np

from gapdemo.units import format_bytes

NPY_HEADER_BYTES = 128  # fixed, so the header can be rewritten in place once the image count is known
RESERVE_CHUNK_BYTES = 8 * 2**20  # zeros written at a time where the system cannot reserve space itself
NPY_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(shape: tuple) -> bytes:
    """A .npy header of NPY_HEADER_BYTES for uint8 images of shape (count, S, S, 3)."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    body_length = NPY_HEADER_BYTES - len(NPY_MAGIC) - 2
    return NPY_MAGIC + body_length.to_bytes(2, "little") + text.ljust(body_length - 1).encode() + b"\n"


def create_npy_memmap(path: Path, capacity: int, shape: tuple) -> np.memmap:
    """A .npy file for capacity images, its space reserved now (ENOSPC here, not a SIGBUS mid-write)."""
    with open(path, "wb") as handle:
        handle.write(npy_header((capacity, *shape)))
        handle.flush()
        reserve_space(handle, path, NPY_HEADER_BYTES + capacity * int(np.prod(shape)))
    return np.memmap(path, np.uint8, mode="r+", offset=NPY_HEADER_BYTES, shape=(capacity, *shape))


def reserve_space(handle, path: Path, size: int) -> None:
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
        raise OSError(errno.ENOSPC, f"No space left on device: the images need {format_bytes(size - written)} "
                                    f"there and {format_bytes(free)} are free")
    zeros = memoryview(bytes(min(RESERVE_CHUNK_BYTES, size - written)))
    while written < size:
        written += handle.write(zeros[:size - written])
    handle.flush()


def map_images(path: Path, count: int, shape: tuple) -> np.memmap:
    """The first count images of a .npy file written by create_npy_memmap, mapped read-only."""
    return np.memmap(path, np.uint8, mode="r", offset=NPY_HEADER_BYTES, shape=(count, *shape))


def shrink_npy(path: Path, count: int, shape: tuple) -> None:
    """Rewrite the header for count images and cut the file there; fsync it."""
    with open(path, "r+b") as handle:
        handle.write(npy_header((count, *shape)))
        handle.truncate(NPY_HEADER_BYTES + count * int(np.prod(shape)))
        handle.flush()
        os.fsync(handle.fileno())
