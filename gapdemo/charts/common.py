"""What every chart shares: a back-end's colour and label from its registry entry, and checks of the input.

Nothing here imports TensorFlow (the back-end registry is import-light), so runs on disk are charted from
their CSV files alone.
"""

from __future__ import annotations

import pandas as pd

from gapdemo.model.backends import check_backend


def backend_color(backend: str) -> str:
    """The fixed colour of backend on every chart, from its registry entry; ValueError for an unknown key."""
    return check_backend(backend).color


def backend_label(backend: str) -> str:
    """The human label of backend, from its registry entry; ValueError for an unknown key."""
    return check_backend(backend).label


def check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    """ValueError unless frame is a DataFrame holding every one of columns (what names it in the message)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def backends_in(*frames) -> list[str]:
    """Back-ends in order of first appearance across frames (None frames skipped)."""
    seen = []
    for frame in frames:
        if frame is not None and len(frame):
            seen.extend(key for key in frame["backend"].drop_duplicates() if key not in seen)
    return seen
