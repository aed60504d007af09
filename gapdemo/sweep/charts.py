"""Sweep figures: per back-end curves with a mean line and a ± std band per grid point, and the summary.

Inputs are the frames of gapdemo.sweep.summary; nothing here reads files.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gapdemo.charts.common import backend_color, backend_label

METRIC_TITLES = {"val_accuracy": "Validation accuracy", "val_loss": "Validation loss",
                 "accuracy": "Training accuracy", "loss": "Training loss"}
POINT_COLORS = qualitative.Safe  # grid points; back-ends keep their own colours in the summary


def _rgba(hex_or_rgb: str, alpha: float) -> str:
    if hex_or_rgb.startswith("rgb("):
        return hex_or_rgb.replace("rgb(", "rgba(").replace(")", f", {alpha})")
    red, green, blue = (int(hex_or_rgb.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _band_traces(rows: pd.DataFrame, label: str, color: str) -> list[go.Scatter]:
    """A filled mean ± std band (upper edge, then lower edge filled to it) and the mean line on top."""
    rows = rows.sort_values("epoch")
    upper, lower = rows["mean"] + rows["std"], rows["mean"] - rows["std"]
    seeds = int(rows["n"].max())
    return [
        go.Scatter(x=rows["epoch"], y=upper, mode="lines", line={"width": 0}, hoverinfo="skip",
                   showlegend=False, legendgroup=label),
        go.Scatter(x=rows["epoch"], y=lower, mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=_rgba(color, 0.18), hoverinfo="skip", showlegend=False, legendgroup=label),
        go.Scatter(x=rows["epoch"], y=rows["mean"], mode="lines+markers", line={"color": color, "width": 2},
                   name=f"{label} (n={seeds})", legendgroup=label, customdata=rows[["std", "n"]],
                   hovertemplate="epoch %{x}: %{y:.3f} ± %{customdata[0]:.3f} over %{customdata[1]} seeds"),
    ]


def bands_figure(bands: pd.DataFrame, backend: str, metric: str = "val_accuracy") -> go.Figure:
    """One back-end's metric per epoch: for every grid point, the mean over seeds and a ± 1 std band."""
    figure = go.Figure()
    rows = bands[bands["backend"] == backend]
    for index, (label, point_rows) in enumerate(rows.groupby("settings", sort=False)):
        for trace in _band_traces(point_rows, label, POINT_COLORS[index % len(POINT_COLORS)]):
            figure.add_trace(trace)
    figure.update_layout(title=f"{backend_label(backend)}: {METRIC_TITLES.get(metric, metric)} (mean ± std over seeds)",
                         xaxis_title="Epoch", yaxis_title=METRIC_TITLES.get(metric, metric),
                         legend_title="Grid point", template="plotly_white", margin={"t": 60})
    figure.update_xaxes(dtick=1)
    return figure


def summary_frame(summary_rows: list[dict]) -> pd.DataFrame:
    """The summary as a table: grid point, back-end, n, accuracy and gap mean ± std."""
    columns = ["label", "backend", "n", "val_accuracy_mean", "val_accuracy_std", "gap_mean", "gap_std"]
    return pd.DataFrame(summary_rows, columns=[*columns, "settings"])[columns].rename(columns={"label": "grid point"})


def summary_figure(summary_rows: list[dict]) -> go.Figure:
    """Final validation accuracy and train − validation gap per grid point, one colour per back-end."""
    frame = pd.DataFrame(summary_rows)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Final validation accuracy", "Train − validation gap"))
    if not len(frame):
        return figure
    for backend, rows in frame.groupby("backend", sort=False):
        for column, (mean, std) in enumerate((("val_accuracy_mean", "val_accuracy_std"), ("gap_mean", "gap_std")), 1):
            figure.add_trace(go.Scatter(
                x=rows["label"], y=rows[mean], error_y={"type": "data", "array": rows[std], "visible": True},
                mode="lines+markers", name=backend_label(backend), legendgroup=backend, showlegend=column == 1,
                line={"color": backend_color(backend)}, customdata=rows["n"],
                hovertemplate="%{x}: %{y:.3f} ± %{error_y.array:.3f} (n=%{customdata})"), row=1, col=column)
    figure.update_layout(title="Sweep summary (mean ± std over seeds)", template="plotly_white", margin={"t": 80})
    figure.update_xaxes(title_text="Grid point")
    return figure
