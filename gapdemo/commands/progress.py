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


def final_metrics(epoch_rows: list[dict]) -> dict:
    final = {}
    for row in epoch_rows:  # rows come in epoch order, so the last one per back-end wins
        final[row["backend"]] = {k: row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    return final


def progress_text(progress: dict, width: int = 30) -> str:
    """The progress line for a run's progress dict ('' when it says nothing to show)."""
    if progress.get("phase") == "loading data":
        return f"loading data: {progress.get('message', '')[:60]}"
    if progress.get("phase") == "compiling":
        return f"epoch 1/{progress['epochs']} {bar(0.0, width)} compiling the training step"
    if "epoch" in progress and "batch" in progress:
        done = progress["batch"] / max(progress["batches_per_epoch"], 1)
        return (f"epoch {progress['epoch']}/{progress['epochs']} {bar(done, width)} "
                f"{progress['images_per_second']:.0f} img/s {format_time_left(progress.get('eta_seconds'))}")
    return ""


def print_finished_epochs(rows: list[dict], shown_rows: int, line, progress: dict | None = None) -> int:
    """Print the epoch rows from shown_rows on; the number of rows shown now.

    progress: the newest progress seen. When it belongs to a finished epoch, that epoch's bar is
    first drawn full with its rate, so the final state shows however short the epoch was (a poll
    may never have caught it mid-way).
    """
    epoch_shown = None
    for row in rows[shown_rows:]:
        if progress and row["epoch"] == progress.get("epoch") and row["epoch"] != epoch_shown and "batch" in progress:
            line.show(progress_text({**progress, "batch": progress["batches_per_epoch"], "eta_seconds": None}))
            epoch_shown = row["epoch"]
        line.end()
        sys.stderr.write(f"  epoch {row['epoch']} {row['backend']}: acc {row['accuracy']:.3f} "
                         f"val_acc {row['val_accuracy']:.3f}\n")
    return len(rows)
