"""Parameter counts per back-end: the shared conv head against the back-end, as a table and as bars."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from gapdemo.charts.common import backend_color, backend_label

HEAD_COLOR = "#999999"
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
