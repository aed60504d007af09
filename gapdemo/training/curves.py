"""Training curves as arrays: each batch's own values, TensorBoard-like smoothing, bounded downsampling.

Maths only (numpy, and pandas' exponential average): gapdemo.training.streaming turns Keras' running means into per-batch values with
BatchValues, gapdemo.charts.curves draws what smooth_ema and downsample_indices return, and the page keeps
a run's curves in CurveHistory, appending only the rows that arrived since its last poll.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd

DEFAULT_SMOOTHING = 0.6  # TensorBoard's default weight for its scalar smoothing slider
MAX_POINTS = 600  # points per line sent to the browser, however long the run
SERIES_FIELDS = ("step", "loss", "accuracy")  # what a per-batch series holds, per back-end


class BatchValues:
    """The mean of the batches since the previous report, from running means since the epoch began.

    Keras reports, after every call into TensorFlow, each metric's mean since the epoch began. With
    count_k items averaged by report k, the items since report j average
    (count_k * mean_k - count_j * mean_j) / (count_k - count_j): one batch's own value, or the mean of
    a call's batches when a call trains several (TrainConfig.steps_per_execution).
    """

    def __init__(self):
        self.totals: dict[str, tuple[float, float]] = {}  # name -> (count so far, count * mean)

    def update(self, means: dict[str, float], counts: dict[str, float]) -> dict[str, float]:
        """Values since the last update; means and counts are cumulative within the epoch, keyed alike."""
        values = {}
        for name, mean in means.items():
            count, total = float(counts[name]), float(counts[name]) * float(mean)
            previous_count, previous_total = self.totals.get(name, (0.0, 0.0))
            values[name] = (total - previous_total) / (count - previous_count) if count > previous_count else float(mean)
            self.totals[name] = (count, total)
        return values


def smooth_ema(values, weight: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average; weight 0 returns the values.

    TensorBoard keeps last = weight * last + (1 - weight) * value from last = 0 and shows it divided by
    1 - weight ** (points so far); that is pandas' ewm(alpha=1 - weight, adjust=True). Non-finite values
    pass through unchanged and leave the average alone, as in TensorBoard.
    """
    values = np.asarray(values, dtype=float)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing must be at least 0 and below 1, got {weight}")
    if weight == 0.0 or values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    smoothed = values.copy()
    smoothed[finite] = pd.Series(values[finite]).ewm(alpha=1.0 - weight, adjust=True).mean().to_numpy()
    return smoothed


def downsample_indices(values, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most max_points sorted indices into values: the first, the last, and each window's extremes.

    The points between the first and the last are cut into at most (max_points - 2) // 2 windows of
    equal length (the last may be shorter); each keeps its lowest and its highest finite value, so a
    spike survives however long the run.
    """
    values = np.asarray(values, dtype=float)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    count = values.size
    if count <= max_points:
        return np.arange(count)
    inner = values[1:-1]
    length = -(-inner.size // ((max_points - 2) // 2))  # points per window, rounded up
    grid = np.full((-(-inner.size // length), length), np.nan)  # (windows, length), padded with NaN
    grid.flat[:inner.size] = inner
    finite = np.isfinite(grid)
    lowest = np.where(finite, grid, np.inf).argmin(axis=1)  # a window without finite values keeps its first
    highest = np.where(finite, grid, -np.inf).argmax(axis=1)
    starts = 1 + length * np.arange(grid.shape[0])
    return np.unique(np.concatenate([[0, count - 1], starts + lowest, starts + highest]))


def batch_series(batch_rows) -> dict[str, dict[str, np.ndarray]]:
    """backend -> {"step", "loss", "accuracy"} arrays in step order, from a DataFrame of batch rows
    (gapdemo.runs.BATCH_FIELDS); back-ends in order of first appearance."""
    series = {}
    for backend in batch_rows["backend"].drop_duplicates():
        rows = batch_rows[batch_rows["backend"] == backend].sort_values("step")
        series[backend] = {name: rows[name].to_numpy(float) for name in SERIES_FIELDS}
    return series


class CurveHistory:
    """One run's per-batch series per back-end, grown from a job's snapshots a few rows at a time.

    Thread-safe: one history serves every browser tab watching the run, so each new row is read once.
    """

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.rows_read = 0  # batch rows taken from the job so far (JobSnapshot.batch_start of the next read)
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, list[float]]] = {}  # backend -> step/loss/accuracy lists
        self.charted_rows, self.charted_at = 0, 0.0  # rows the live charts last showed, and when (monotonic)
        self.charted_epochs = 0  # epochs finished when the live charts last took new rows

    def rows_to_chart(self, min_interval_seconds: float, epochs_completed: int = 0, now: float | None = None) -> int:
        """How many rows the live charts should show: all rows read, when an epoch has ended since the
        last refresh, else at most once per min_interval_seconds.

        Between refreshes the charts keep their last row count (and so their cached figures, which the
        browser does not draw again); the first rows show at once, and so does each epoch's end.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            due = (self.charted_rows == 0 or epochs_completed != self.charted_epochs
                   or now - self.charted_at >= min_interval_seconds)
            if due and self.rows_read != self.charted_rows:
                self.charted_rows, self.charted_at = self.rows_read, now
            if due:
                self.charted_epochs = epochs_completed
            return self.charted_rows

    def read(self, snapshot_from):
        """Take the rows not read yet from snapshot_from(batch_start) (gapdemo.training.job.TrainingJob.snapshot)
        and return that snapshot; one caller at a time, so two tabs never append the same rows."""
        with self._lock:
            snapshot = snapshot_from(self.rows_read)
            for row in snapshot.batch_metrics:  # gapdemo.runs.BATCH_FIELDS
                columns = self._columns.setdefault(row["backend"], {name: [] for name in SERIES_FIELDS})
                for name, values in columns.items():
                    values.append(float(row[name]))
            self.rows_read += len(snapshot.batch_metrics)
            return snapshot

    def series(self) -> dict[str, dict[str, np.ndarray]]:
        """backend -> {"step", "loss", "accuracy"} arrays, back-ends in order of first appearance."""
        with self._lock:
            return {backend: {name: np.asarray(values, dtype=float) for name, values in columns.items()}
                    for backend, columns in self._columns.items()}
