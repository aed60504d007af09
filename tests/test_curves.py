from types import SimpleNamespace

import numpy as np
import pytest

from gapdemo.training.curves import MAX_POINTS, BatchValues, CurveHistory, downsample_indices, smooth_ema


def running_means(values, weights):
    """What Keras reports after each batch: the weighted mean since the epoch began."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    return np.cumsum(values * weights) / np.cumsum(weights), np.cumsum(weights)


@pytest.mark.parametrize("weights", [[1, 1, 1, 1, 1], [64, 64, 64, 64, 16]])
def test_batch_values_undo_the_running_mean(weights):
    own = [0.9, 0.2, 0.7, 0.4, 0.1]
    means, counts = running_means(own, weights)
    values = BatchValues()
    recovered = [values.update({"loss": mean}, {"loss": count})["loss"] for mean, count in zip(means, counts, strict=True)]
    np.testing.assert_allclose(recovered, own, rtol=1e-12)


def test_batch_values_of_a_call_of_several_batches_are_their_mean():
    own = [0.8, 0.6, 0.4, 0.2, 1.0, 0.0]
    means, counts = running_means(own, [1] * 6)
    values = BatchValues()
    calls = [values.update({"accuracy": means[k]}, {"accuracy": counts[k]})["accuracy"] for k in (1, 3, 5)]
    np.testing.assert_allclose(calls, [0.7, 0.3, 0.5])  # two batches per call


def test_smoothing_zero_returns_the_raw_values():
    raw = np.array([0.5, 0.1, np.nan, 0.9, 0.3])
    np.testing.assert_array_equal(smooth_ema(raw, 0.0), raw)


def test_smoothing_is_tensorboards_debiased_moving_average():
    smoothed = smooth_ema([1.0, 0.0, np.nan, 0.0], 0.6)
    # TensorBoard: last = last * w + (1 - w) * v, shown divided by 1 - w ** (finite points so far)
    assert smoothed[0] == pytest.approx(1.0)  # the first point is not pulled towards 0
    assert smoothed[1] == pytest.approx(0.6 * 0.4 / (1 - 0.36))
    assert np.isnan(smoothed[2])
    assert smoothed[3] == pytest.approx(0.36 * 0.4 / (1 - 0.216))
    with pytest.raises(ValueError, match="smoothing"):
        smooth_ema([1.0], 1.0)


@pytest.mark.parametrize("size", [8, 5_000])
@pytest.mark.parametrize("weight", [0.3, 0.6, 0.95])
def test_smoothing_matches_tensorboards_loop_on_noisy_series_with_gaps(weight, size):
    """pandas' ewm against TensorBoard's own loop, non-finite points (first, last, inside) skipped."""
    values = np.random.default_rng(size).normal(size=size)
    values[[0, size // 3, size - 1]] = np.nan
    values[size // 2] = np.inf
    expected, last, steps = values.copy(), 0.0, 0
    for index, value in enumerate(values):
        if np.isfinite(value):
            last, steps = last * weight + (1 - weight) * value, steps + 1
            expected[index] = last / (1 - weight ** steps)
    np.testing.assert_allclose(smooth_ema(values, weight), expected, rtol=1e-9, atol=1e-12)


def test_downsampling_keeps_first_last_and_each_windows_extremes():
    rng = np.random.default_rng(0)
    values = rng.normal(size=5_000)
    values[1234], values[4321] = 50.0, -50.0  # spikes that even spacing would drop
    indices = downsample_indices(values, 100)
    assert len(indices) <= 100 and indices[0] == 0 and indices[-1] == len(values) - 1
    assert np.all(np.diff(indices) > 0)
    assert {1234, 4321} <= set(indices.tolist())
    length = -(-(len(values) - 2) // ((100 - 2) // 2))  # windows of equal length between first and last
    for start in range(1, len(values) - 1, length):
        window = values[start:min(start + length, len(values) - 1)]
        assert start + int(np.argmin(window)) in indices and start + int(np.argmax(window)) in indices


def test_a_ten_thousand_batch_history_yields_at_most_the_bound():
    values = np.sin(np.arange(10_000) / 50.0)
    assert len(downsample_indices(values)) <= MAX_POINTS
    assert len(downsample_indices(values, 7)) <= 7
    np.testing.assert_array_equal(downsample_indices(values[:10], 600), np.arange(10))
    with pytest.raises(ValueError, match="max_points"):
        downsample_indices(values, 3)


def test_downsampling_survives_non_finite_values():
    values = np.full(1_000, np.nan)
    values[500] = 1.0
    indices = downsample_indices(values, 20)
    assert len(indices) <= 20 and 500 in indices and indices[0] == 0 and indices[-1] == 999


class FakeJob:
    """A job's snapshot(batch_start) over a growing list of batch rows, as TrainingJob.snapshot gives them."""

    def __init__(self):
        self.rows, self.asked = [], []

    def add(self, *rows):
        self.rows.extend(rows)

    def snapshot(self, batch_start=0):
        self.asked.append(batch_start)
        return SimpleNamespace(batch_metrics=self.rows[batch_start:])


def batch_row(backend, step, loss, accuracy=0.5):
    return {"backend": backend, "epoch": 1, "batch": 1, "step": step, "loss": loss, "accuracy": accuracy}


def test_curve_history_appends_only_new_rows_per_backend():
    history, job = CurveHistory("run"), FakeJob()
    job.add(batch_row("fc", 0.5, 0.7), batch_row("gap", 0.5, 0.6))
    history.read(job.snapshot)
    job.add(batch_row("fc", 1.0, 0.5), batch_row("gap", 1.0, 0.4))
    assert history.read(job.snapshot).batch_metrics == job.rows[2:]
    series = history.series()
    assert list(series) == ["fc", "gap"] and history.rows_read == 4 and job.asked == [0, 2]
    np.testing.assert_array_equal(series["fc"]["step"], [0.5, 1.0])
    np.testing.assert_array_equal(series["gap"]["loss"], [0.6, 0.4])


def test_live_charts_take_new_rows_at_once_then_at_most_once_per_interval():
    history, job = CurveHistory("run"), FakeJob()
    assert history.rows_to_chart(10.0, now=100.0) == 0  # nothing read yet
    job.add(batch_row("gap", 0.1, 0.7))
    history.read(job.snapshot)
    assert history.rows_to_chart(10.0, now=100.5) == 1  # the first point shows at once
    job.add(batch_row("gap", 0.2, 0.6, 0.6))
    history.read(job.snapshot)
    assert history.rows_to_chart(10.0, now=105.0) == 1  # the charts keep their figure meanwhile
    assert history.rows_to_chart(10.0, now=110.5) == 2  # ten seconds on: the new row
    assert history.rows_to_chart(10.0, now=111.0) == 2


def test_live_charts_take_every_row_read_when_an_epoch_ends_between_refreshes():
    history, job = CurveHistory("run"), FakeJob()
    job.add(batch_row("gap", 0.5, 0.7))
    history.read(job.snapshot)
    assert history.rows_to_chart(30.0, epochs_completed=0, now=100.0) == 1
    job.add(batch_row("gap", 1.0, 0.6, 0.6))
    history.read(job.snapshot)
    assert history.rows_to_chart(30.0, epochs_completed=0, now=105.0) == 1  # within the interval: kept
    assert history.rows_to_chart(30.0, epochs_completed=1, now=106.0) == 2  # epoch 1 ended: its last batch too
    job.add(batch_row("gap", 1.5, 0.5, 0.7))
    history.read(job.snapshot)
    assert history.rows_to_chart(30.0, epochs_completed=1, now=110.0) == 2  # same epoch count: throttled again
    assert history.rows_to_chart(30.0, epochs_completed=1, now=136.5) == 3
