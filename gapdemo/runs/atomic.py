"""The one atomic writer: a file is whole and on disk, or not there, even after a crash or a power cut.

Every write goes to a hidden temp file in the target's folder (a rename never crosses file systems),
which is flushed and fsync'd, then renamed over the target (retried on Windows while a reader holds
it), and last the folder is fsync'd so the rename itself survives a power cut. A failure at any step
leaves the previous file whole and no temp file. Libraries that write by path (Keras, np.savez) write
to atomic_target's temp path instead; bytes, text and JSON go through write_atomically.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Windows refuses to replace a file that another process holds open (the page reading status.json,
# the Classify tab loading a model); such a reader lets go within milliseconds, so there the writer
# tries again for up to a second. Elsewhere a file is replaced under its readers, and a refusal
# (a read-only folder) is final.
REPLACE_ATTEMPTS = 20 if os.name == "nt" else 1
REPLACE_PAUSE_S = 0.05
# fsync on a folder that some file systems (network, FUSE) decline: the rename stands, only less surely.
UNSYNCABLE_FOLDER_ERRORS = (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM)


def replace_file(source: Path, target: Path) -> None:
    """os.replace(source, target), retried while the target is held open (Windows; see REPLACE_ATTEMPTS)."""
    for attempt in range(1, REPLACE_ATTEMPTS + 1):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == REPLACE_ATTEMPTS:
                raise
            time.sleep(REPLACE_PAUSE_S)


def fsync_folder(folder: Path) -> None:
    """Make the names in folder (a rename, a new file) durable. Windows cannot open a folder as a file,
    and NTFS journals its folder entries itself, so there is nothing to do there; a system that refuses
    to open or sync a folder the same way is passed by too."""
    if os.name == "nt":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except PermissionError:  # a folder that cannot be opened as a file, as on Windows
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in UNSYNCABLE_FOLDER_ERRORS:
            raise
    finally:
        os.close(descriptor)


def temporary_path(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden, unique name beside path: '.status.json.<pid>.<random>.tmp' (listings skip dot files)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def fsync_file(path: Path) -> None:
    """Flush path's bytes to the disk (opened for writing: Windows will not commit a read-only handle)."""
    with open(path, "r+b") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path beside path for a library that writes by name; when the block ends the file is
    fsync'd and renamed over path, and the folder fsync'd. A failure removes the temp file.

    suffix: what the library insists on (Keras: '.keras'; np.savez adds '.npz' unless it is there)."""
    path = Path(path)
    temporary = temporary_path(path, suffix)
    try:
        yield temporary
        fsync_file(temporary)
        replace_file(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_atomically(path: Path, write: Callable, mode: int = 0o666) -> None:
    """Call write(handle) on a new binary temp file beside path, then (atomic_target) fsync it, rename it
    over path and fsync the folder; a failure leaves the previous file whole and no temp file.

    mode: the temp file's permissions from its creation (0o600: private; the umask applies)."""
    with atomic_target(path) as temporary:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write data to path atomically and durably (write_atomically)."""
    write_atomically(path, lambda handle: handle.write(data), mode)


def write_text_atomic(path: Path, text: str, mode: int = 0o666) -> None:
    """Write text (UTF-8) to path atomically and durably (write_atomically)."""
    write_bytes_atomic(path, text.encode("utf-8"), mode)
