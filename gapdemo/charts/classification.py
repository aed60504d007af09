"""One image classified by every back-end: P(cat) and P(dog) side by side."""

from __future__ import annotations

import plotly.graph_objects as go

from gapdemo.charts.common import backend_color, backend_label


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
