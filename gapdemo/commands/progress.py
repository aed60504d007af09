"""The CLI's progress on stderr (train, train --address, claims), through tqdm.

On a terminal: live tqdm bars redrawn in place, one per epoch with its batches, images per second and
the run's time left. Piped to a file or a program (nohup, CI, a log collector, the page's cluster runs):
plain lines that nothing redraws, one when a phase begins (loading data, compiling the training step, ...)
and one per finished epoch, plus one every HEARTBEAT_SECONDS through a long phase. Either way each
finished epoch is shown full with its own rate as its rows arrive, however short it was, and the run's
end (finished, stopped, failed and why) has a line of its own.
"""

from __future__ import annotations

import os
import re
import sys
import time

from tqdm import tqdm

from gapdemo.training.phases import phase_text, phase_words
from gapdemo.units import format_duration

HEARTBEAT_SECONDS = 60.0  # piped: a line at least this often through a long phase, so a log shows the run lives
LINE_PHASES = ("waiting", "starting", "loading data", "compiling")  # piped: a line of its own as each begins
EPOCH_BAR = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
LOADING_BAR = "{desc} {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"
STEP_BAR = "{percentage:3.0f}%|{bar:20}| [{elapsed}<{remaining}{postfix}]"


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time: gapdemo.quiet points it at the terminal through another
    descriptor while TensorFlow loads (descriptor 2 is then captured), so progress shows live meanwhile."""

    encoding = property(lambda self: getattr(sys.stderr, "encoding", None))

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def fileno(self) -> int:
        return sys.stderr.fileno()


STDERR = _CurrentStderr()


def is_terminal(stream) -> bool:
    """True when stream is a terminal (live bars); False for a file, a pipe or a closed stream (lines)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or closed
        return False


def bar_size(stream) -> dict:
    """tqdm's size options: follow the terminal's width, or 100 x 24 where it reports no size (a bare
    pseudo-terminal says 0 x 0, and tqdm would then draw nothing)."""
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        columns, lines = 0, 0
    if columns and lines:
        return {"dynamic_ncols": True}
    return {"ncols": columns or 100, "nrows": lines or 24}


def format_time_left(seconds: float | None) -> str:
    """'2 min 05 s left', '40 s left', or '' while there is no estimate yet."""
    shown = format_duration(seconds)
    return f"{shown} left" if shown else ""


def final_metrics(epoch_rows: list[dict]) -> dict:
    final = {}
    for row in epoch_rows:  # rows come in epoch order, so the last one per back-end wins
        final[row["backend"]] = {k: row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    return final


def rows_by_epoch(rows: list[dict]) -> list[list[dict]]:
    """Epoch rows (one per back-end per epoch, in epoch order) grouped into one list per epoch."""
    groups: list[list[dict]] = []
    for row in rows:
        if groups and int(groups[-1][0]["epoch"]) == int(row["epoch"]):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def epoch_details(progress: dict) -> list[str]:
    """['120 img/s', '1 min 05 s left'] while training; the phase instead of the time left otherwise."""
    details = [f"{progress['images_per_second']:.0f} img/s"] if progress.get("images_per_second") else []
    if progress.get("phase") != "training":
        details.append(phase_words(progress.get("phase")))
    elif format_time_left(progress.get("eta_seconds")):
        details.append(format_time_left(progress.get("eta_seconds")))
    return details


def epoch_status(progress: dict) -> str:
    """'epoch 2/5: 40% (4/10 batches, 120 img/s, 1 min 05 s left)', a line for the log mid-epoch."""
    batches = max(progress["batches_per_epoch"], 1)
    parts = [f"{progress['batch']}/{batches} batches", *epoch_details(progress)]
    return f"epoch {progress['epoch']}/{progress['epochs']}: {progress['batch'] / batches:.0%} ({', '.join(parts)})"


class RunProgress:
    """One training run's progress dicts and finished epochs on stderr: tqdm bars on a terminal, lines when piped.

    show(progress) as the run goes; end_epoch(rows) with each finished epoch's rows, which draws that
    epoch full with the rate of the newest progress seen during it; finish(...) once at the end.
    """

    def __init__(self, epochs: int, stream=None, live: bool | None = None):
        self.epochs = epochs
        self.stream = stream or STDERR
        self.live = is_terminal(self.stream) if live is None else live
        self.bar = None  # the live bar (terminal): loading data (bar_epoch None) or one epoch
        self.bar_epoch: int | None = None
        self.phase: str | None = None  # the phase shown last
        self.newest: dict[int, dict] = {}  # epoch -> newest progress seen during it (its rate at its end)
        self.batches_per_epoch: int | None = None  # the same for every epoch: known once any epoch is seen
        self.finished_epochs: set[int] = set()
        self.last_line = time.monotonic()

    def show(self, progress: dict) -> None:
        """Show a progress dict (phase, epoch, batch, images_per_second, eta_seconds; see TrainingEvents)."""
        if not progress or progress.get("epoch") in self.finished_epochs:
            return  # nothing yet, or late news of an epoch already shown in full
        self.remember(progress)
        changed, self.phase = progress.get("phase") != self.phase, progress.get("phase")
        if self.live:
            self._draw(progress, changed)
        elif changed and self.phase in LINE_PHASES:
            self._line(phase_words(self.phase))
        elif time.monotonic() - self.last_line >= HEARTBEAT_SECONDS:
            self._line(epoch_status(progress) if "batch" in progress else phase_text(progress))

    def remember(self, progress: dict) -> None:
        """Keep progress as the newest of its epoch, for the epoch's final line (a polled view calls
        this before end_epoch, so an epoch's last progress counts though it ends in the same poll)."""
        if "epoch" in progress and "batch" in progress and progress["epoch"] not in self.finished_epochs:
            self.newest[progress["epoch"]] = progress
            self.batches_per_epoch = progress["batches_per_epoch"]

    def end_epoch(self, rows: list[dict]) -> None:
        """One finished epoch's rows (one per back-end): its bar or line at 100% with its rate, then the rows."""
        epoch = int(rows[0]["epoch"])
        if epoch not in self.finished_epochs:
            self.finished_epochs.add(epoch)
            self._show_epoch_end(epoch, self.newest.get(epoch, {}))
        for row in rows:
            self._line(f"  epoch {epoch} {row['backend']}: acc {row['accuracy']:.3f} val_acc {row['val_accuracy']:.3f}")

    def print_line(self, text: str) -> None:
        """A line of its own (where the images came from, a run that starts again)."""
        self._line(text)

    def restart(self, text: str) -> None:
        """The run starts again from epoch 1 (a lost node): say so and forget the epochs shown."""
        self._close_bar()
        self.finished_epochs.clear()
        self.newest.clear()
        self.phase = None
        self._line(text)

    def finish(self, state: str, message: str, epochs_completed: int) -> None:
        """The run's end, always shown: 'run finished after 2/2 epochs'; a failure adds 'error: <why>'."""
        self._close_bar()
        reason = f": {message}" if message and state != "failed" else ""
        self._line(f"run {state} after {epochs_completed}/{self.epochs} epochs{reason}")
        if state == "failed":
            self._line(f"error: {message}")  # the CLI's error line, which the page's cluster runs read

    def tick(self) -> None:
        """Redraw the live bar (its elapsed time) while no news comes, as while TensorFlow loads."""
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        """Close the live bar, if one is open (finish does; this is for a run that ends another way)."""
        self._close_bar()

    # ----- drawing -----
    def _draw(self, progress: dict, changed: bool) -> None:
        if self.phase == "loading data":
            bar = self._bar_for(None, 100, "loading data", LOADING_BAR)
            bar.set_postfix_str(progress.get("message", ""), refresh=False)
            self._advance(bar, 100 * float(progress.get("fraction", 0.0)), changed)
        elif "epoch" in progress and "batch" in progress:
            bar = self._bar_for(progress["epoch"], max(progress["batches_per_epoch"], 1),
                                f"epoch {progress['epoch']}/{progress['epochs']}", EPOCH_BAR)
            bar.set_postfix_str(", ".join(epoch_details(progress)), refresh=False)
            self._advance(bar, progress["batch"], changed)
        elif changed:
            self._close_bar()
            self._line(phase_text(progress))

    @staticmethod
    def _advance(bar, n: float, redraw_now: bool) -> None:
        if redraw_now:
            bar.n = n
            bar.refresh()
        else:
            bar.update(n - bar.n)  # redraws at most every mininterval

    def _bar_for(self, epoch: int | None, total: int, desc: str, bar_format: str, initial: int = 0):
        """The open bar when it shows this epoch (None: loading data), else a new one in its place."""
        if self.bar is None or self.bar_epoch != epoch:
            if self.bar is not None and self.bar_epoch is None and self.bar.n < self.bar.total:
                self.bar.n = self.bar.total  # training begins, so the data are loaded: a poll missed the end
                self.bar.set_postfix_str("", refresh=False)
            self._close_bar()
            self.bar = tqdm(total=total, initial=initial, desc=desc, bar_format=bar_format, file=self.stream,
                            leave=True, mininterval=0.1, **bar_size(self.stream))
            self.bar_epoch = epoch
        return self.bar

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.bar_epoch = None, None

    def _show_epoch_end(self, epoch: int, progress: dict) -> None:
        rate = progress.get("images_per_second") or 0.0
        batches = progress.get("batches_per_epoch") or self.batches_per_epoch
        if self.live:  # a bar opened just for this starts full, so it never shows 0% first
            bar = self._bar_for(epoch, max(batches or 1, 1), f"epoch {epoch}/{self.epochs}", EPOCH_BAR,
                                initial=max(batches or 1, 1))
            bar.set_postfix_str(f"{rate:.0f} img/s" if rate else "", refresh=False)
            bar.n = bar.total
            self._close_bar()  # drawn once more, full, and left on the screen
            return
        parts = ([f"{batches}/{batches} batches"] if batches else []) + ([f"{rate:.0f} img/s"] if rate else [])
        self._line(f"epoch {epoch}/{self.epochs}: 100%" + (f" ({', '.join(parts)})" if parts else ""))

    def _line(self, text: str) -> None:
        if self.live:
            tqdm.write(text, file=self.stream)  # above an open bar, which is drawn again below it
        else:
            self.stream.write(text + "\n")
            self.stream.flush()
        self.last_line = time.monotonic()


class StepProgress:
    """progress(message, fraction) of a long job (claims): one tqdm bar on a terminal, a line per step when piped.

    A step is the message without its trailing '(...)' (an epoch and rate that change every second).
    """

    def __init__(self, stream=None, live: bool | None = None):
        self.stream = stream or STDERR
        self.live = is_terminal(self.stream) if live is None else live
        self.bar = None
        self.step: str | None = None
        self.last_line = time.monotonic()

    def __call__(self, message: str, fraction: float) -> None:
        percent = 100 * min(max(fraction, 0.0), 1.0)
        if self.live:
            if self.bar is None:  # smoothing 0: the time left extrapolates the average pace so far
                self.bar = tqdm(total=100, bar_format=STEP_BAR, file=self.stream, smoothing=0, mininterval=0.1,
                                **bar_size(self.stream))
            self.bar.set_postfix_str(message, refresh=False)
            self.bar.update(percent - self.bar.n)
            return
        step = re.sub(r"\s*\(.*\)$", "", message)
        if step != self.step or time.monotonic() - self.last_line >= HEARTBEAT_SECONDS:
            self.step, self.last_line = step, time.monotonic()
            self.stream.write(f"{percent:3.0f}% {message}\n")
            self.stream.flush()

    def end(self) -> None:
        """Close the bar (idempotent), so what follows starts on a line of its own."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
