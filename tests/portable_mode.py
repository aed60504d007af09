"""Running the core paths as macOS and Windows would, on Linux.

portable_mode(monkeypatch) removes from os the calls that only Linux has, makes multiprocessing
start processes by spawn (macOS's and Windows' default: nothing is inherited, everything is pickled),
and holds the file system to Windows' rules where this process can see its own memory maps
(/proc/self/maps): a file mapped in memory, or a folder holding one, cannot be renamed, replaced,
deleted or cut to length, and no name may hold a character Windows forbids.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import re
import signal
from pathlib import Path

LINUX_ONLY_CALLS = ("posix_fallocate", "posix_fadvise", "fork", "forkpty", "sched_getaffinity", "getloadavg")
WINDOWS_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}
IN_USE = "The process cannot access the file because it is being used by another process"


def windows_name_problem(name: str) -> str | None:
    """Why Windows would refuse name for a file or folder, or None when it takes it."""
    if WINDOWS_FORBIDDEN.search(name):
        return f"{name!r} holds a character Windows forbids"
    if name.endswith((".", " ")):
        return f"{name!r} ends with a dot or a space"
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        return f"{name!r} is a device name on Windows"
    return None


def mapped_files() -> set[str] | None:
    """The files this process maps in memory (from /proc/self/maps), or None where that cannot be read."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    fields = (line.split(maxsplit=5) for line in lines)
    return {parts[5] for parts in fields if len(parts) == 6 and parts[5].startswith("/")}


def refuse_if_mapped(path, dir_fd=None) -> None:
    """PermissionError, as Windows raises it, when path is mapped or is a folder holding a mapped file."""
    mapped = mapped_files()
    if mapped is None:
        return  # not Linux: the real system's own rules apply
    path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    real = os.path.realpath(path)
    if any(name == real or name.startswith(real + os.sep) for name in mapped):
        raise PermissionError(errno.EACCES, IN_USE, path)


def _check_name(path) -> None:
    problem = windows_name_problem(os.path.basename(os.fsdecode(path)))
    if problem:
        raise OSError(errno.EINVAL, f"Windows would refuse this name: {problem}", os.fsdecode(path))


def _guard_move(move):
    def guarded(source, target, **kwargs):
        refuse_if_mapped(source, kwargs.get("src_dir_fd"))
        refuse_if_mapped(target, kwargs.get("dst_dir_fd"))
        _check_name(target)
        return move(source, target, **kwargs)

    return guarded


def _guard_delete(delete):
    def guarded(path, **kwargs):
        refuse_if_mapped(path, kwargs.get("dir_fd"))
        return delete(path, **kwargs)

    return guarded


def _guard_create(create):
    def guarded(path, *args, **kwargs):
        _check_name(path)
        return create(path, *args, **kwargs)

    return guarded


def _refuse_fork(set_start_method):
    def checked(method, *args, **kwargs):
        if method == "fork":
            raise ValueError("cannot find context for 'fork' (macOS and Windows start processes by spawn)")
        return set_start_method(method, *args, **kwargs)

    return checked


@contextlib.contextmanager
def portable_mode(monkeypatch, shrink_owner=None):
    """Run the block as on macOS or Windows (see the module's docstring).

    shrink_owner: a module whose shrink_npy(path, ...) cuts a file to length, held to Windows' rule
    too (a Python file object's truncate calls the C library directly, out of os's reach).
    """
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    previous_method, set_start_method = multiprocessing.get_start_method(allow_none=True), multiprocessing.set_start_method
    for name in LINUX_ONLY_CALLS:
        monkeypatch.delattr(os, name, raising=False)
    set_start_method("spawn", force=True)
    monkeypatch.setattr(multiprocessing, "set_start_method", _refuse_fork(set_start_method))
    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, _guard_move(getattr(os, name)))
    for name in ("unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, _guard_delete(getattr(os, name)))
    monkeypatch.setattr(os, "mkdir", _guard_create(os.mkdir))
    if shrink_owner is not None:
        shrink = shrink_owner.shrink_npy
        monkeypatch.setattr(shrink_owner, "shrink_npy", lambda path, *args: (refuse_if_mapped(path), shrink(path, *args)))
    try:
        yield
    finally:
        set_start_method(previous_method, force=True)
        for number, handler in handlers.items():  # commands run in-process install their own
            signal.signal(number, handler)
