"""What the feature maps of fixed probe images show: per-channel averages, class means, class activation maps."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gapdemo.charts.common import backend_label
from gapdemo.config import CLASS_NAMES

CLASS_COLORS = {"cat": "#56B4E9", "dog": "#E69F00"}


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
