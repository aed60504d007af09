"""A figure as a self-contained HTML page and a table as CSV: the formats that need no browser."""

from __future__ import annotations

import plotly.graph_objects as go


def figure_to_html(figure: go.Figure) -> bytes:
    """A full HTML page with plotly.js inlined, so it opens offline."""
    html = figure.to_html(include_plotlyjs=True, full_html=True, include_mathjax=False,
                          config={"displaylogo": False})
    return html.encode("utf-8")


def dataframe_to_csv(frame, index: bool | None = None) -> bytes:
    """UTF-8 CSV; the index is written when it has a name (e.g. the back-end key) unless index says."""
    if index is None:
        index = frame.index.name is not None
    return frame.to_csv(index=index).encode("utf-8")
