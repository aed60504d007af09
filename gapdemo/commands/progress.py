"""The CLI's progress on stderr: one line rewritten in place with a bar, the rate and the time left."""

from __future__ import annotations

import shutil
import sys
import time


def format_time_left(seconds: float | None) -> str:
    """'2 min 05 s left', '40 s left', or '' while there is no estimate yet."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f"{seconds} s left"


def bar(fraction: float, width: int = 30) -> str:
    """[#######       ] for a fraction from 0 to 1."""
    filled = int(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + " " * (width - filled) + "]"


class ProgressLine:
    """One stderr line rewritten in place; end() moves on to a fresh line."""

    def __init__(self, stream=None, max_width: int | None = None):
        self.stream = stream or sys.stderr
        # wider than the terminal, a line wraps and \r rewrites only its last part
        self.max_width = max_width or shutil.get_terminal_size((120, 24)).columns - 1
        self.shown = 0  # characters on the line now: a shorter text pads over them

    def show(self, text: str) -> None:
        text = text[:self.max_width]
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = len(text)

    def end(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = 0


class TimeLeft:
    """The time left from the fraction done so far, once a few percent and seconds have passed."""

    def __init__(self, min_fraction: float = 0.02, min_seconds: float = 5.0):
        self.started = time.monotonic()
        self.min_fraction, self.min_seconds = min_fraction, min_seconds

    def seconds(self, fraction: float) -> float | None:
        elapsed = time.monotonic() - self.started
        if fraction < self.min_fraction or elapsed < self.min_seconds or fraction >= 1.0:
            return None
        return elapsed / fraction * (1.0 - fraction)
