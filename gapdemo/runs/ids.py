"""Run ids: how gapdemo makes them and the one pattern every id read from a file or a command line must match.

A run id names a folder directly under the runs folder, so it may hold no path separator, cannot be "." or
"..", and must name a folder on every system (Windows refuses its device names and a trailing dot). Sweep
ids ("sweep-<hex>") and claims folders ("claims-<run id>") are made to match the same pattern.
"""

from __future__ import annotations

import datetime
import re
import secrets

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_RUN_ID_LENGTH = 100  # well under every file system's limit on one name (255), with room for suffixes
WINDOWS_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
                        *(f"LPT{n}" for n in range(1, 10))}


def new_run_id() -> str:
    """'20261207-153012-a1b2': the start time, then random hex so two runs started in one second differ."""
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def is_run_id(text) -> bool:
    """True when text can name a run folder on every system (see run_id_problems)."""
    return (isinstance(text, str) and len(text) <= MAX_RUN_ID_LENGTH and RUN_ID_PATTERN.fullmatch(text) is not None
            and not text.endswith(".") and text.split(".")[0].upper() not in WINDOWS_DEVICE_NAMES)


def run_id_problems(run_id: str | None) -> list[str]:
    """Why run_id cannot name a run folder on every system, as one sentence; [] for None (no id asked for)."""
    if run_id is None or is_run_id(run_id):
        return []
    return [f"A run id holds letters, digits, '.', '_' and '-' (at most {MAX_RUN_ID_LENGTH}), is no device name "
            f"and ends in no dot; {run_id!r} does not."]
