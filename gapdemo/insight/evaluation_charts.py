"""Plotly figures and tables for gapdemo.insight.evaluation: confusion matrices side by side, per-class numbers.

Inputs are the arrays gapdemo.insight.evaluation and gapdemo.insight.predictions return; nothing here imports TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gapdemo.model.backends import check_backend

CONFUSION_COLORSCALE = "Blues"  # colour = share of the true class, so rows of unequal size compare


def _row_shares(confusion: np.ndarray) -> np.ndarray:
    """(C, C) counts -> (C, C) share of each row (true class); 0 for a class without images."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


def _check_confusions(confusions: dict, class_names) -> dict[str, np.ndarray]:
    if not confusions:
        raise ValueError("need at least one back-end's confusion matrix")
    checked = {}
    for backend, confusion in confusions.items():
        confusion = np.asarray(confusion)
        if confusion.shape != (len(class_names), len(class_names)):
            raise ValueError(f"confusion of {backend!r} must be {len(class_names)}x{len(class_names)} "
                             f"(one row and column per class), got shape {confusion.shape}")
        checked[backend] = confusion
    return checked


def confusion_figure(confusions: dict, class_names, title: str = "Confusion matrices on the test split") -> go.Figure:
    """One heatmap per back-end, side by side: rows = true class, columns = predicted class.

    Args:
        confusions: {backend: (C, C) counts}, in the order to draw them.
        class_names: C names, index = label.

    Each cell shows its count and its share of the true class; the colour is that share.
    """
    confusions = _check_confusions(confusions, class_names)
    titles = []
    for backend, confusion in confusions.items():
        total = int(confusion.sum())
        accuracy = f"{np.trace(confusion) / total:.1%}" if total else "n/a"
        titles.append(f"{check_backend(backend).label} · accuracy {accuracy}")
    figure = make_subplots(rows=1, cols=len(confusions), subplot_titles=titles, horizontal_spacing=0.08)
    for column, (backend, confusion) in enumerate(confusions.items(), start=1):
        shares = _row_shares(confusion)
        text = [[f"{count}<br>{share:.0%}" for count, share in zip(row_counts, row_shares, strict=True)]
                for row_counts, row_shares in zip(confusion, shares, strict=True)]
        figure.add_trace(go.Heatmap(
            z=shares, x=[f"→ {name}" for name in class_names], y=list(class_names), text=text,
            texttemplate="%{text}", textfont={"size": 16}, coloraxis="coloraxis", name=check_backend(backend).label,
            hovertemplate="true %{y}, predicted %{x}<br>%{text}<extra></extra>",
        ), row=1, col=column)
    figure.update_layout(
        title=title, template="plotly_white", height=340, margin={"t": 90},
        coloraxis={"colorscale": CONFUSION_COLORSCALE, "cmin": 0.0, "cmax": 1.0, "showscale": False},
    )
    figure.update_xaxes(title_text="predicted", side="bottom")
    figure.update_yaxes(autorange="reversed", scaleanchor=None)
    figure.update_yaxes(title_text="true class", row=1, col=1)
    return figure


def per_class_frame(reports: dict, class_names) -> pd.DataFrame:
    """One row per back-end and class: images, per-class accuracy (= recall) and precision.

    Args:
        reports: {backend: gapdemo.insight.predictions.backend_report(...)}.
        class_names: index = label.
    """
    rows = []
    for backend, report in reports.items():
        confusion = np.asarray(report["confusion"])
        for index, name in enumerate(class_names):
            rows.append({"Back-end": check_backend(backend).label, "Class": name,
                         "Test images": int(confusion[index].sum()),
                         "Per-class accuracy (recall)": float(report["per_class_accuracy"][index]),
                         "Precision": float(report["precision"][index])})
    return pd.DataFrame(rows)
