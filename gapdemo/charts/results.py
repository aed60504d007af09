"""A run's results per back-end as a table: best and final validation accuracy, the train-validation gap."""

from __future__ import annotations

import pandas as pd

from gapdemo.charts.common import backend_label, backends_in, check_columns
from gapdemo.runs import EPOCH_FIELDS

RESULT_COLUMNS = ["Back-end", "Epochs", "Best val accuracy", "Best epoch", "Final val accuracy",
                  "Final train accuracy", "Train − val gap"]


def results_dataframe(epoch_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per back-end: best and final validation accuracy, the final train–validation gap
    (overfitting) and epochs trained; index = key. No time column: the back-ends train together in
    lockstep, so the run's time is one figure, not one per back-end."""
    check_columns(epoch_metrics, EPOCH_FIELDS, "epoch metrics")
    rows, keys = [], backends_in(epoch_metrics)
    for backend in keys:
        metrics = epoch_metrics[epoch_metrics["backend"] == backend].sort_values("epoch")
        best, final = metrics.loc[metrics["val_accuracy"].idxmax()], metrics.iloc[-1]
        rows.append([backend_label(backend), int(final["epoch"]), float(best["val_accuracy"]), int(best["epoch"]),
                     float(final["val_accuracy"]), float(final["accuracy"]),
                     float(final["accuracy"] - final["val_accuracy"])])
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS, index=keys)
    frame.index.name = "key"
    return frame
