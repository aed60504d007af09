"""How much the runs folder holds against this server's cap, GAPDEMO_RUNS_MAX_BYTES: past it, new work waits.

Runs are never deleted here: past the cap the operator makes room. The folder is measured by walking it
without following symbolic links (a link counts its own few bytes, not what it points at, so a link to a
large folder elsewhere neither fills nor hides the cap), and one walk serves every caller for
WALK_MAX_AGE_SECONDS, so a page may ask on every draw: a class drawing every few seconds walks the folder
once per few seconds, not once per visitor.
"""

from __future__ import annotations

import os
import threading
import time

from gapdemo import settings
from gapdemo.runs.trust import is_link
from gapdemo.units import format_bytes

RUNS_MAX_BYTES_VARIABLE = settings.RUNS_MAX_BYTES.name
DEFAULT_RUNS_MAX_BYTES = settings.RUNS_MAX_BYTES.default  # 20 GiB: what GAPDEMO_RUNS_MAX_BYTES=20GB reads as
WALK_MAX_AGE_SECONDS = 5.0  # a walk this recent is reused: new files show within this long

_walks: dict[str, tuple[float, int]] = {}  # absolute folder path -> (monotonic time of the walk, bytes)
_walk_lock = threading.Lock()  # one walk at a time: callers that come during a walk wait and reuse it


def runs_max_bytes(environ=None) -> int:
    """GAPDEMO_RUNS_MAX_BYTES as bytes ('20GB', '500MB', '8G', '1073741824'; binary units), else 20 GiB.

    Raises:
        ValueError, one sentence, when the setting is no size.
    """
    return settings.runs_max_bytes(environ)


def folder_bytes(folder) -> int:
    """Bytes of every file under folder, symbolic links not followed; 0 for a missing folder.

    Files that vanish or cannot be read during the walk (a run replacing its status.json) are skipped.
    """
    total, pending = 0, [os.fspath(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False) and not is_link(entry.path):  # no junction
                            pending.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:  # gone, or not ours to read
            continue
    return total


def runs_folder_bytes(runs_dir, max_age_seconds: float | None = None) -> int:
    """folder_bytes(runs_dir), from a walk at most max_age_seconds (default WALK_MAX_AGE_SECONDS) old;
    thread-safe, one walk at a time."""
    max_age_seconds = WALK_MAX_AGE_SECONDS if max_age_seconds is None else max_age_seconds
    key = os.path.abspath(os.fspath(runs_dir))
    with _walk_lock:
        walked = _walks.get(key)
        if walked is None or time.monotonic() - walked[0] > max_age_seconds:
            walked = (time.monotonic(), folder_bytes(key))
            _walks[key] = walked
        return walked[1]


def runs_disk_problem(runs_dir, environ=None) -> str | None:
    """One sentence when the runs folder holds more than GAPDEMO_RUNS_MAX_BYTES (runs_max_bytes), else None.

    Cheap enough for every page draw (runs_folder_bytes reuses a walk for a few seconds).

    Args:
        runs_dir: the runs folder.
        environ: where GAPDEMO_RUNS_MAX_BYTES is read; os.environ by default.

    Raises:
        ValueError, one sentence, when GAPDEMO_RUNS_MAX_BYTES is no size.
    """
    cap = runs_max_bytes(environ)
    held = runs_folder_bytes(runs_dir)
    if held <= cap:
        return None
    shown, limit = format_bytes(held), format_bytes(cap)
    shown = f"more than {limit}" if shown == limit else shown  # just past the cap rounds to the cap itself
    return (f"The runs folder holds {shown}, past this server's cap of {limit} ({RUNS_MAX_BYTES_VARIABLE}); "
            "new work waits until the operator makes room.")
