"""Amounts as people read them: bytes in binary units (MiB, GiB, as GAPDEMO_*_BYTES settings are read)
and durations in minutes and seconds. A leaf: it imports nothing of gapdemo, so every layer may use it."""

from __future__ import annotations

import math

BINARY_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(count: float) -> str:
    """Bytes in binary units, one decimal where it says something: 22869018214 -> '21.3 GiB',
    20 * 2**30 -> '20 GiB', 524288000 -> '500 MiB', 2048 -> '2 KiB', 512 -> '512 bytes'."""
    for unit, size in BINARY_UNITS:
        if count >= size:
            return f"{count / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(count)} bytes"


def format_duration(seconds: float | None) -> str:
    """42.4 -> '42 s', 125 -> '2 min 05 s', 4000 -> '66 min 40 s'; '' while there is none (None, NaN,
    below zero: no estimate yet)."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
