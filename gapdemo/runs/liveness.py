"""Is a run's writer still alive? A process token (pid + start time) checked with psutil on every platform."""

from __future__ import annotations

import os

import psutil

# Two readings of one process's start time may differ a little: on Linux psutil adds the start ticks
# to a boot time read in whole seconds, which NTP can move by one. A pid reused by another process
# starts after the writer lived its life (minutes for a run), far more than this apart.
START_TIME_TOLERANCE_S = 2.0

PROC_ROOT = "/proc"  # where tokens written before psutil can be checked (Linux only)

def process_token(pid: int | None = None) -> str | None:
    """'<pid>@<start time>' of pid (default: this process), so a reused pid is not mistaken for the writer.

    The start time (seconds since the epoch) comes from psutil, on Linux, macOS and Windows alike.
    None when no such process exists or it may not be inspected.
    """
    pid = os.getpid() if pid is None else pid
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.Error, ValueError, OverflowError):  # gone, a zombie, access denied, not a pid
        return None
    return f"{pid}@{started:.2f}"

def token_is_alive(token) -> bool:
    """True when the process that wrote token still runs (not a zombie, not a reused pid).

    Tokens written before gapdemo used psutil read 'pid:ticks' (field 22 of /proc/<pid>/stat). Such a
    token was only ever written on Linux (elsewhere the old code wrote none), so it is checked against
    /proc where /proc exists, and counts as dead elsewhere: a folder copied from Linux has no writer here.
    """
    if not isinstance(token, str):
        return False
    if "@" not in token:
        return _legacy_token_is_alive(token)
    pid, _, recorded = token.partition("@")
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: it writes nothing more
            return False
        return abs(process.create_time() - float(recorded)) <= START_TIME_TOLERANCE_S
    except (psutil.Error, ValueError, OverflowError):
        return False

def _legacy_token_is_alive(token: str) -> bool:
    pid, _, ticks = token.partition(":")
    if not pid.isdigit() or not ticks.isdigit():
        return False
    try:
        with open(f"{PROC_ROOT}/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return False
    return len(fields) > 19 and fields[0] != "Z" and fields[19] == ticks

def writer_is_alive(status: dict) -> bool:
    """True when the process named in a status dict's "process" token still runs."""
    return token_is_alive(status.get("process"))
