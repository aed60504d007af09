"""Accuracy and loss curves: one run's training (per batch, smoothed) and validation lines, and runs overlaid.

Every back-end keeps the colour of its registry entry; the maths (smoothing, downsampling, batch series)
lives in gapdemo.training.curves, and this module only draws what it returns.
"""

from __future__ import annotations

import functools

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from gapdemo.charts.common import backend_color, backend_label, backends_in, check_columns
from gapdemo.runs import BATCH_FIELDS, EPOCH_FIELDS
from gapdemo.training.curves import DEFAULT_SMOOTHING, MAX_POINTS, batch_series, downsample_indices, smooth_ema

RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _line(x_values, y_values, backend, split, max_points, **style) -> dict:
    """A training line of at most max_points (first, last and each window's extremes kept)."""
    chosen = downsample_indices(y_values, max_points)
    # a line needs two points: the first batch alone would draw nothing
    mode = "lines" if len(chosen) > 1 else "lines+markers"
    return {"type": "scatter", "x": x_values[chosen], "y": y_values[chosen], "mode": mode, "legendgroup": backend,
            "meta": {"backend": backend, "split": split}, **style}


def _train_traces(backend, epoch_rows, series, metric, max_points, smoothing) -> list[dict]:
    """The smoothed per-batch line (solid), with the raw values faint behind it; epoch points without batches."""
    color, label = backend_color(backend), backend_label(backend)
    hover = f"{label} train<br>epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra></extra>"
    line = {"color": color, "dash": "solid", "width": 2}
    if series is None or not len(series["step"]):
        rows = epoch_rows.sort_values("epoch")
        return [{"type": "scatter", "x": rows["epoch"].to_numpy(float), "y": rows[metric].to_numpy(float),
                 "mode": "lines+markers", "name": label, "legendgroup": backend,
                 "meta": {"backend": backend, "split": "train"}, "line": line, "hovertemplate": hover}]
    steps, raw = series["step"], series[metric]
    main = _line(steps, smooth_ema(raw, smoothing), backend, "train", max_points, name=label, line=line,
                 hovertemplate=hover)
    if smoothing == 0:
        return [main]
    faint = _line(steps, raw, backend, "train_raw", max_points, name=f"{label} (raw)", showlegend=False,
                  opacity=0.25, line={"color": color, "dash": "solid", "width": 1}, hoverinfo="skip")
    return [faint, main]


def _validation_trace(backend, epoch_rows, metric) -> dict:
    rows = epoch_rows.sort_values("epoch")
    return {
        "type": "scatter", "x": rows["epoch"].to_numpy(float), "y": rows[f"val_{metric}"].to_numpy(float),
        "mode": "lines+markers", "name": f"{backend_label(backend)} (validation)", "legendgroup": backend,
        "showlegend": False, "meta": {"backend": backend, "split": "validation"},
        "line": {"color": backend_color(backend), "dash": "dash", "width": 2}, "marker": {"size": 7},
        "hovertemplate": f"{backend_label(backend)} validation<br>epoch %{{x}}<br>{metric} %{{y:.3f}}<extra></extra>",
    }


@functools.cache
def _plotly_white() -> dict:
    """The plotly_white template as plain data, resolved once (resolving it took most of a figure's build)."""
    return pio.templates["plotly_white"].to_plotly_json()


def curves_figure(epoch_metrics: pd.DataFrame, batch_metrics: pd.DataFrame | dict | None = None,
                  metric: str = "accuracy", max_points: int = MAX_POINTS,
                  smoothing: float = DEFAULT_SMOOTHING) -> go.Figure:
    """Training (solid) and validation (dashed, markers at epochs) curves, one colour per back-end.

    Args:
        epoch_metrics: backend, epoch, loss, accuracy, val_loss, val_accuracy (one row per epoch).
        batch_metrics: per-batch values as rows (backend, epoch, batch, step, loss, accuracy) or as
            batch_series() / curves.CurveHistory.series() arrays; when given, the training line
            follows the batches (step = fractional epoch), smoothed, with the raw values faint behind.
        metric: "accuracy" or "loss".
        max_points: the most points of any line: long runs are downsampled, keeping extremes.
        smoothing: TensorBoard's smoothing weight, 0 (raw values, no faint copy) to below 1.

    The live page rebuilds this every poll that brings new batches, so the figure is assembled from
    plain data without Plotly's per-property validation (tests check its structure).
    """
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    check_columns(epoch_metrics, EPOCH_FIELDS, "epoch metrics")
    if isinstance(batch_metrics, pd.DataFrame):
        check_columns(batch_metrics, BATCH_FIELDS, "batch metrics")
        batch_metrics = batch_series(batch_metrics)
    series = batch_metrics or {}
    downsample_indices([], max_points)  # validates max_points
    smooth_ema([], smoothing)  # validates smoothing
    backends = backends_in(epoch_metrics) + [backend for backend in series if backend not in set(epoch_metrics["backend"])]
    train, validation = [], []
    for backend in backends:
        epoch_rows = epoch_metrics[epoch_metrics["backend"] == backend]
        train += _train_traces(backend, epoch_rows, series.get(backend), metric, max_points, smoothing)
        if len(epoch_rows):
            validation.append(_validation_trace(backend, epoch_rows, metric))
    # short enough for half a page: the live page shows accuracy and loss side by side
    training = f"training smoothed {smoothing:g} (raw faint)" if series and smoothing else "training (solid)"
    layout = {
        "title": {"text": f"{metric.capitalize()}: {training}, validation (dashed)"},
        "xaxis": {"title": {"text": "epoch"}}, "yaxis": {"title": {"text": metric}},
        "legend": {"title": {"text": "back-end"}}, "hovermode": "closest", "template": _plotly_white(),
        "uirevision": "curves",  # a redraw keeps the reader's zoom
    }
    if metric == "accuracy":
        layout["yaxis"]["tickformat"] = ".1%"  # whole percents repeat when the range is a few points wide
    # faint raw lines first, so every smoothed and validation line is drawn over them
    traces = sorted(train, key=lambda trace: trace["meta"]["split"] != "train_raw") + validation
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def overlay_runs_figure(runs: dict[str, pd.DataFrame], metric: str = "val_accuracy") -> go.Figure:
    """One curve per run and back-end: colour = back-end, dash style = run."""
    if metric not in EPOCH_FIELDS[2:]:
        raise ValueError(f"metric must be one of {', '.join(EPOCH_FIELDS[2:])}, got {metric!r}")
    figure = go.Figure()
    for index, (run_label, metrics) in enumerate(runs.items()):
        check_columns(metrics, EPOCH_FIELDS, f"metrics of run {run_label!r}")
        for backend in backends_in(metrics):
            rows = metrics[metrics["backend"] == backend].sort_values("epoch")
            figure.add_trace(go.Scatter(
                x=rows["epoch"].to_numpy(float), y=rows[metric].to_numpy(float), mode="lines+markers",
                name=f"{run_label} · {backend_label(backend)}", legendgroup=str(run_label),
                line={"color": backend_color(backend), "dash": RUN_DASHES[index % len(RUN_DASHES)]},
                meta={"backend": backend, "run": str(run_label)},
            ))
    figure.update_layout(title=f"{metric} across runs", xaxis_title="epoch", yaxis_title=metric,
                         template="plotly_white")
    return figure
