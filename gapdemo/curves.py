"""Training curves as arrays: each batch's own values, TensorBoard-like smoothing, bounded downsampling.

Maths only (numpy): gapdemo.trainer turns Keras' running means into per-batch values with
BatchValues, gapdemo.charts draws what smooth_ema and downsample_indices return, and the page keeps
a run's curves in CurveHistory, appending only the rows that arrived since its last poll.
"""

from __future__ import annotations

import threading

import numpy as np

DEFAULT_SMOOTHING = 0.6  # TensorBoard's default weight for its scalar smoothing slider
MAX_POINTS = 600  # points per line sent to the browser, however long the run


class BatchValues:
    """The mean of the batches since the previous report, from running means since the epoch began.

    Keras reports, after every call into TensorFlow, each metric's mean since the epoch began. With
    count_k items averaged by report k, the items since report j average
    (count_k * mean_k - count_j * mean_j) / (count_k - count_j): one batch's own value, or the mean of
    a call's batches when a call trains several (TrainConfig.steps_per_execution).
    """

    def __init__(self):
        self.totals: dict[str, tuple[float, float]] = {}  # name -> (count so far, count * mean)

    def start_epoch(self) -> None:
        self.totals = {}

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

    Non-finite values pass through unchanged and leave the average alone, as in TensorBoard.
    """
    values = np.asarray(values, dtype=float)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing must be at least 0 and below 1, got {weight}")
    if weight == 0.0 or values.size == 0:
        return values.copy()
    smoothed, last, steps = np.empty_like(values), 0.0, 0
    for index, value in enumerate(values.tolist()):
        if not np.isfinite(value):
            smoothed[index] = value
            continue
        last, steps = last * weight + (1.0 - weight) * value, steps + 1
        smoothed[index] = last / (1.0 - weight ** steps)  # the debias: early points are not pulled to 0
    return smoothed


def downsample_indices(values, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most max_points sorted indices into values: the first, the last, and each window's extremes.

    The points between the first and the last are cut into (max_points - 2) // 2 windows of equal
    length; each keeps its lowest and its highest value, so a spike survives however long the run.
    """
    values = np.asarray(values, dtype=float)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    count = values.size
    if count <= max_points:
        return np.arange(count)
    inner = np.where(np.isfinite(values[1:-1]), values[1:-1], np.nan)
    edges = np.linspace(0, inner.size, (max_points - 2) // 2 + 1).astype(int)
    chosen = [0, count - 1]
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        window = inner[start:stop]
        if window.size == 0:
            continue
        if np.all(np.isnan(window)):
            chosen.append(start + 1)
            continue
        chosen += [start + 1 + int(np.nanargmin(window)), start + 1 + int(np.nanargmax(window))]
    return np.unique(chosen)


class CurveHistory:
    """One run's per-batch series per back-end, grown from a job's snapshots a few rows at a time.

    Thread-safe: one history serves every browser tab watching the run, so each new row is read once.
    """

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.rows_read = 0  # batch rows taken from the job so far (JobSnapshot.batch_start of the next read)
        self.version = -1  # the snapshot version last read
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, list[float]]] = {}  # backend -> step/loss/accuracy lists

    def extend(self, rows: list[dict], version: int) -> None:
        """Append batch rows (gapdemo.runs.BATCH_FIELDS) that follow the ones already read."""
        with self._lock:
            for row in rows:
                columns = self._columns.setdefault(row["backend"], {"step": [], "loss": [], "accuracy": []})
                for name, values in columns.items():
                    values.append(float(row[name]))
            self.rows_read += len(rows)
            self.version = max(self.version, version)

    def series(self) -> dict[str, dict[str, np.ndarray]]:
        """backend -> {"step", "loss", "accuracy"} arrays, back-ends in order of first appearance."""
        with self._lock:
            return {backend: {name: np.asarray(values, dtype=float) for name, values in columns.items()}
                    for backend, columns in self._columns.items()}
