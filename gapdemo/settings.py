"""Reading GAPDEMO_* settings by shared rules, so each variable's value means the same wherever it is read.

A leaf module: it imports nothing of gapdemo, so the run folder's readers (gapdemo.runs) and the jobs
(gapdemo.jobs) may both use it without depending on each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}  # binary: 1G = 1 GiB


def parse_bytes(text: str, variable: str) -> int:
    """'8G', '8 GiB', '20GB', '512M', '1073741824' -> bytes (binary units); ValueError naming variable otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{variable} must be a size such as 20GB, 8G or 512M, got {text!r}.")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def byte_size_setting(variable: str, environ: Mapping[str, str] | None = None) -> int | None:
    """The variable's size in bytes, or None when it is unset or blank."""
    environ = os.environ if environ is None else environ
    text = environ.get(variable, "").strip()
    return parse_bytes(text, variable) if text else None
