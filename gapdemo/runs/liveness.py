"""Is a run's writer still alive? A process token (pid + start time) checked with psutil on every platform."""

from __future__ import annotations

import os

import psutil

# Two readings of one process's start time may differ a little: on Linux psutil adds the start ticks
# to a boot time read in whole seconds, which NTP can move by one. A pid reused by another process
# starts after the writer lived its life (minutes for a run), far more than this apart.
START_TIME_TOLERANCE_S = 2.0


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

    Any other token, such as the 'pid:ticks' of versions before psutil, counts as a dead writer.
    """
    if not isinstance(token, str) or "@" not in token:
        return False
    pid, _, recorded = token.partition("@")
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: it writes nothing more
            return False
        return abs(process.create_time() - float(recorded)) <= START_TIME_TOLERANCE_S
    except (psutil.Error, ValueError, OverflowError):
        return False

def writer_is_alive(status: dict) -> bool:
    """True when the process named in a status dict's "process" token still runs."""
    return token_is_alive(status.get("process"))
