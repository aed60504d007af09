"""A sweep's numbers: one row per trial, mean and spread over seeds per grid point and back-end.

Spreads are sample standard deviations (n - 1 in the denominator); a grid point with a single
finished seed has a spread of 0, and its n says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gapdemo.sweep.grid import settings_label


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


def spread(values) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for a single value)."""
    values = np.asarray(list(values), dtype=float)
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


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
            accuracy_mean, accuracy_std = spread(f["val_accuracy"] for f in finals)
            gap_mean, gap_std = spread(f["train_accuracy"] - f["val_accuracy"] for f in finals)
            rows.append({"settings": settings, "label": settings_label(settings), "backend": backend,
                         "n": len(finals), "val_accuracy_mean": accuracy_mean, "val_accuracy_std": accuracy_std,
                         "gap_mean": gap_mean, "gap_std": gap_std})
    return rows


def epoch_bands(epoch_metrics: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """Per settings label x back-end x epoch: mean, std and n of metric over seeds."""
    columns = ["settings", "backend", "epoch", "mean", "std", "n"]
    if not len(epoch_metrics):
        return pd.DataFrame(columns=columns)
    grouped = epoch_metrics.groupby(["settings", "backend", "epoch"])[metric]
    frame = grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    frame["std"] = frame["std"].fillna(0.0)  # one seed: no spread to show
    return frame[columns]
