"""A sweep's numbers: one row per trial, mean and spread over seeds per grid point and back-end.

Spreads are gapdemo.sweep.seeds.spread's, as the claims' are: sample standard deviations (n - 1 in
the denominator); a grid point with a single finished seed has a spread of 0, and its n says so.
"""

from __future__ import annotations

import math

import pandas as pd

from gapdemo.sweep.grid import settings_label
from gapdemo.sweep.seeds import spread


def final_epoch_rows(epoch_metrics: pd.DataFrame) -> pd.DataFrame:
    """The last epoch's row of every (run, back-end)."""
    if not len(epoch_metrics):
        return epoch_metrics
    ordered = epoch_metrics.sort_values(["run_id", "backend", "epoch"])
    return ordered.groupby(["run_id", "backend"], as_index=False).tail(1)


def trial_rows(sweep: dict, epoch_metrics: pd.DataFrame) -> list[dict]:
    """One dict per trial: run_id, settings, seed, state, node and final accuracies per back-end."""
    finals = final_epoch_rows(epoch_metrics)
    rows = []
    for trial in sweep["trials"]:
        mine = finals[finals["run_id"] == trial["run_id"]] if len(finals) else finals
        rows.append({
            "run_id": trial["run_id"], "settings": trial["settings"], "seed": trial["seed"],
            "state": trial.get("state", "pending"), "node": trial.get("node"),
            "epochs_completed": int(mine["epoch"].max()) if len(mine) else 0,
            "final": {row.backend: {"train_accuracy": float(row.accuracy), "val_accuracy": float(row.val_accuracy)}
                      for row in mine.itertuples()},
        })
    return rows


def mean_std_count(values) -> tuple[float, float, int]:
    """seeds.spread's mean, sample std and count of values; NaN for mean and std when there is none."""
    numbers = spread(values)
    if not numbers["count"]:
        return math.nan, math.nan, 0
    return numbers["mean"], numbers["std"], numbers["count"]


def summary_rows(sweep: dict, trials: list[dict]) -> list[dict]:
    """One row per grid point x back-end over its finished trials: n, accuracy and gap mean and std."""
    rows = []
    points = []
    for trial in sweep["trials"]:
        if trial["settings"] not in points:
            points.append(trial["settings"])
    backends = sweep["base_config"]["model"]["backends"]
    for settings in points:
        done = [t for t in trials if t["settings"] == settings and t["state"] == "finished"]
        for backend in backends:
            finals = [t["final"][backend] for t in done if backend in t["final"]]
            accuracy_mean, accuracy_std, _ = mean_std_count([f["val_accuracy"] for f in finals])
            gap_mean, gap_std, _ = mean_std_count([f["train_accuracy"] - f["val_accuracy"] for f in finals])
            rows.append({"settings": settings, "label": settings_label(settings), "backend": backend,
                         "n": len(finals), "val_accuracy_mean": accuracy_mean, "val_accuracy_std": accuracy_std,
                         "gap_mean": gap_mean, "gap_std": gap_std})
    return rows


def epoch_bands(epoch_metrics: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """Per settings label x back-end x epoch: mean, std and n of metric over seeds."""
    keys, columns = ["settings", "backend", "epoch"], ["settings", "backend", "epoch", "mean", "std", "n"]
    if not len(epoch_metrics):
        return pd.DataFrame(columns=columns)
    rows = [(*key, *mean_std_count(values)) for key, values in epoch_metrics.groupby(keys)[metric]]
    return pd.DataFrame(rows, columns=columns)
