"""Plotly figure builders: metrics DataFrames, probe arrays and parameter counts -> go.Figure.

Every chart gives a back-end the colour of its registry entry (gapdemo.model.backends.BACKENDS). Nothing
here imports TensorFlow (the back-end registry is import-light), so runs on disk are charted from
their CSV files alone.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from gapdemo.config import CLASS_NAMES
from gapdemo.model.backends import check_backend
from gapdemo.runs import BATCH_FIELDS, EPOCH_FIELDS
from gapdemo.training.curves import DEFAULT_SMOOTHING, MAX_POINTS, batch_series, downsample_indices, smooth_ema

CLASS_COLORS = {"cat": "#56B4E9", "dog": "#E69F00"}
HEAD_COLOR = "#999999"
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def backend_color(backend: str) -> str:
    """The fixed colour of backend on every chart, from its registry entry; ValueError for an unknown key."""
    return check_backend(backend).color


def backend_label(backend: str) -> str:
    """The human label of backend, from its registry entry; ValueError for an unknown key."""
    return check_backend(backend).label


def _check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _backends_in(*frames) -> list[str]:
    """Back-ends in order of first appearance across frames (None frames skipped)."""
    seen = []
    for frame in frames:
        if frame is not None and len(frame):
            seen.extend(key for key in frame["backend"].drop_duplicates() if key not in seen)
    return seen


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
    _check_columns(epoch_metrics, EPOCH_FIELDS, "epoch metrics")
    if isinstance(batch_metrics, pd.DataFrame):
        _check_columns(batch_metrics, BATCH_FIELDS, "batch metrics")
        batch_metrics = batch_series(batch_metrics)
    series = batch_metrics or {}
    downsample_indices([], max_points)  # validates max_points
    smooth_ema([], smoothing)  # validates smoothing
    backends = _backends_in(epoch_metrics) + [backend for backend in series if backend not in set(epoch_metrics["backend"])]
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
        _check_columns(metrics, EPOCH_FIELDS, f"metrics of run {run_label!r}")
        for backend in _backends_in(metrics):
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


def _probe_arrays(probes: dict) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(probes["labels"]).astype(int).ravel()
    averages = np.asarray(probes["feature_averages"], dtype=float)
    if averages.ndim != 2 or averages.shape[0] != labels.size:
        raise ValueError(f"feature_averages must be (probes, channels) with {labels.size} rows, got {averages.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise ValueError(f"labels must be 0 (cat) or 1 (dog), got {sorted(set(labels.tolist()))}")
    return labels, averages


def probe_row_names(labels: np.ndarray) -> list[str]:
    """'cat 1', 'cat 2', ..., 'dog 1', ... for labels already in display order."""
    counts = {name: 0 for name in CLASS_NAMES}
    names = []
    for label in labels:
        counts[CLASS_NAMES[label]] += 1
        names.append(f"{CLASS_NAMES[label]} {counts[CLASS_NAMES[label]]}")
    return names


def feature_averages_figure(probes_for_backend: dict, backend: str) -> go.Figure:
    """Heatmap probes x channels of per-channel feature-map averages, cat rows above dog rows."""
    labels, averages = _probe_arrays(probes_for_backend)
    order = np.argsort(labels, kind="stable")  # cats (0) first, probe order kept within a class
    figure = go.Figure(go.Heatmap(
        z=averages[order], x=np.arange(averages.shape[1]), y=probe_row_names(labels[order]),
        colorscale="Viridis", colorbar={"title": "average"},
        hovertemplate="%{y}<br>channel %{x}<br>average %{z:.3f}<extra></extra>",
    ))
    figure.update_layout(title=f"{backend_label(backend)}: average of each feature map per image",
                         xaxis_title="channel", template="plotly_white")
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def class_means_figure(probes_for_backend: dict, backend: str | None = None) -> go.Figure:
    """Cat-mean and dog-mean channel averages; the Dense weight per channel on a second axis."""
    labels, averages = _probe_arrays(probes_for_backend)
    channels = np.arange(averages.shape[1])
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for class_index, name in enumerate(CLASS_NAMES):
        if np.any(labels == class_index):
            figure.add_trace(go.Bar(x=channels, y=averages[labels == class_index].mean(axis=0),
                                    name=f"{name} mean", marker_color=CLASS_COLORS[name]), secondary_y=False)
    weights = probes_for_backend.get("dense_weights")
    if weights is not None:
        figure.add_trace(go.Scatter(x=channels, y=np.asarray(weights, dtype=float).ravel(), mode="lines+markers",
                                    name="Dense weight (+ = dog)", line={"color": "black"}), secondary_y=True)
        figure.update_yaxes(title_text="Dense weight", secondary_y=True, zeroline=True)
    prefix = f"{backend_label(backend)}: " if backend else ""
    figure.update_layout(title=f"{prefix}mean channel average per class", barmode="group",
                         xaxis_title="channel", template="plotly_white")
    figure.update_yaxes(title_text="mean average", secondary_y=False)
    return figure


def cam_grid_figure(probes_for_backend: dict, columns: int = 4) -> go.Figure:
    """Class activation maps as small heatmaps (red = evidence for dog, blue = for cat)."""
    cams = probes_for_backend.get("cams")
    if cams is None:
        figure = go.Figure()
        figure.add_annotation(text="No class activation maps for this back-end", showarrow=False)
        figure.update_layout(xaxis_visible=False, yaxis_visible=False, template="plotly_white")
        return figure
    cams = np.asarray(cams, dtype=float)  # (probes, s, s)
    labels = np.asarray(probes_for_backend["labels"]).astype(int).ravel()
    if cams.ndim != 3 or cams.shape[0] != labels.size:
        raise ValueError(f"cams must be (probes, s, s) with {labels.size} maps, got {cams.shape}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, max(len(cams), 1))
    rows = max(1, -(-len(cams) // columns))
    titles = [f"{CLASS_NAMES[label]} (probe {index + 1})" for index, label in enumerate(labels)]
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles,
                           horizontal_spacing=0.02, vertical_spacing=0.08)
    for index, cam in enumerate(cams):
        figure.add_trace(go.Heatmap(z=cam, coloraxis="coloraxis", name=titles[index]),
                         row=index // columns + 1, col=index % columns + 1)
    limit = float(np.abs(cams).max()) or 1.0  # symmetric range: white is exactly 0
    figure.update_layout(coloraxis={"colorscale": "RdBu_r", "cmin": -limit, "cmax": limit},
                         title="Class activation maps", template="plotly_white")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed")
    return figure


PARAMETER_COLUMNS = {"head_params": "Head params", "backend_params": "Back-end params",
                     "total_params": "Total params", "trainable_params": "Trainable params"}


def parameter_dataframe(parameter_table: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Readable table: Back-end (label), Head / Back-end / Total / Trainable params; index = key."""
    rows = []
    for backend, counts in parameter_table.items():
        missing = [key for key in PARAMETER_COLUMNS if key not in counts]
        if missing:
            raise ValueError(f"parameter counts of {backend!r} lack {', '.join(missing)}")
        rows.append({"Back-end": backend_label(backend),
                     **{title: int(counts[key]) for key, title in PARAMETER_COLUMNS.items()}})
    frame = pd.DataFrame(rows, columns=["Back-end", *PARAMETER_COLUMNS.values()], index=list(parameter_table))
    frame.index.name = "key"
    return frame


def backend_parameter_ratio(parameter_table: dict, numerator: str = "fc", denominator: str = "gap") -> float | None:
    """How many times more back-end parameters numerator has than denominator; None if either is absent."""
    if numerator not in parameter_table or denominator not in parameter_table:
        return None
    below = parameter_table[denominator]["backend_params"]
    if below <= 0:
        raise ValueError(f"{denominator!r} has no back-end parameters to compare with")
    return parameter_table[numerator]["backend_params"] / below


def parameter_figure(parameter_table: dict[str, dict[str, int]]) -> go.Figure:
    """Grouped bars per back-end: the shared conv head (grey) and the back-end (its colour); log y."""
    frame = parameter_dataframe(parameter_table)
    colors = [backend_color(backend) for backend in frame.index]
    figure = go.Figure([
        go.Bar(x=frame["Back-end"], y=frame["Head params"], name="conv head", marker_color=HEAD_COLOR,
               text=[f"{value:,}" for value in frame["Head params"]], textposition="outside"),
        go.Bar(x=frame["Back-end"], y=frame["Back-end params"], name="back-end", marker_color=colors,
               text=[f"{value:,}" for value in frame["Back-end params"]], textposition="outside"),
    ])
    figure.update_layout(title="Parameters: conv head vs back-end", barmode="group", yaxis_type="log",
                         yaxis_title="parameters (log scale)", template="plotly_white")
    return figure


def classification_figure(result: dict[str, dict]) -> go.Figure:
    """P(cat) (hatched) and P(dog) (solid) per back-end, in the back-end colours."""
    backends = list(result)
    names = [f"{backend_label(b)}<br>→ {result[b].get('label', '?')}" for b in backends]
    colors = [backend_color(b) for b in backends]
    figure = go.Figure()
    for class_name, pattern in (("cat", "/"), ("dog", "")):
        values = [float(result[b][f"p_{class_name}"]) for b in backends]
        figure.add_trace(go.Bar(
            x=names, y=values, name=f"P({class_name})", marker={"color": colors, "pattern_shape": pattern},
            text=[f"{class_name} {value:.0%}" for value in values], textposition="outside",
            customdata=[result[b].get("method", "") for b in backends],
            hovertemplate=f"P({class_name}) %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
        ))
    figure.update_layout(title="Prediction per back-end", barmode="group", yaxis_range=[0, 1.1],
                         yaxis_tickformat=".0%", template="plotly_white")
    return figure


RESULT_COLUMNS = ["Back-end", "Epochs", "Best val accuracy", "Best epoch", "Final val accuracy",
                  "Final train accuracy", "Train − val gap"]


def results_dataframe(epoch_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per back-end: best and final validation accuracy, the final train–validation gap
    (overfitting) and epochs trained; index = key. No time column: the back-ends train together in
    lockstep, so the run's time is one figure, not one per back-end."""
    _check_columns(epoch_metrics, EPOCH_FIELDS, "epoch metrics")
    rows, keys = [], _backends_in(epoch_metrics)
    for backend in keys:
        metrics = epoch_metrics[epoch_metrics["backend"] == backend].sort_values("epoch")
        best, final = metrics.loc[metrics["val_accuracy"].idxmax()], metrics.iloc[-1]
        rows.append([backend_label(backend), int(final["epoch"]), float(best["val_accuracy"]), int(best["epoch"]),
                     float(final["val_accuracy"]), float(final["accuracy"]),
                     float(final["accuracy"] - final["val_accuracy"])])
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS, index=keys)
    frame.index.name = "key"
    return frame
