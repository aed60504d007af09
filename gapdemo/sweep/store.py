"""The sweep folder's only owner: <runs_dir>/sweeps/<sweep_id>/ with sweep.json and plan.json.

sweep.json holds what the sweep is (base config, grid, seeds, one entry per trial with its run id)
and what the driver last saw (state, message, the Ray node of each trial). plan.json is the plan
(gapdemo.sweep.grid.SweepPlan) the page hands the process that trains the sweep. The trials' results
live in ordinary run folders, <runs_dir>/<run_id>/, read through gapdemo.runs, so the Runs tab,
export and classify work on them unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from gapdemo import runs
from gapdemo.sweep.grid import SweepPlan, settings_label

SWEEPS_FOLDER = "sweeps"
PLAN_FILE = "plan.json"
ACTIVE_STATES = ("running", "stopping")


def sweeps_root(runs_dir) -> Path:
    return Path(runs_dir) / SWEEPS_FOLDER


def sweep_path(runs_dir, sweep_id: str) -> Path:
    return sweeps_root(runs_dir) / sweep_id / "sweep.json"


def create_or_resume(runs_dir, plan: SweepPlan) -> dict:
    """The stored sweep of plan's id when it holds plan's trials (resumed: same run ids), else a new one
    with fresh run ids."""
    stored = runs.read_json(sweep_path(runs_dir, plan.sweep_id))
    planned = [(trial.index, trial.settings, trial.seed) for trial in plan.trials]
    if planned == [(trial["index"], trial["settings"], trial["seed"]) for trial in stored.get("trials", [])]:
        return stored
    sweep = {
        "sweep_id": plan.sweep_id, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "base_config": plan.base.to_dict(), "grid": plan.grid, "seeds": plan.seeds, "state": "running",
        "message": "", "nodes": {},
        "trials": [{"index": t.index, "run_id": runs.new_run_id(), "settings": t.settings, "seed": t.seed}
                   for t in plan.trials],
    }
    save(runs_dir, sweep)
    return sweep


def write_plan(plan: SweepPlan) -> Path:
    """Write plan as JSON into its sweep's folder under plan.base.train.runs_dir; the file's path."""
    path = sweeps_root(plan.base.train.runs_dir) / plan.sweep_id / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(path, plan.to_dict())
    return path


def read_plan(path) -> SweepPlan:
    """The plan write_plan wrote to path; ValueError, one sentence, when the file holds none."""
    try:
        return SweepPlan.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except KeyError as error:
        raise ValueError(f"{path} is not a sweep plan: it has no {error} field") from None
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"cannot read a sweep plan from {path}: {error}") from None


def save(runs_dir, sweep: dict) -> None:
    path = sweep_path(runs_dir, sweep["sweep_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(path, {**sweep, "process": runs.process_token(),
                                  "updated": time.strftime("%Y-%m-%d %H:%M:%S")})


def load(runs_dir, sweep_id: str) -> dict:
    """sweep.json with each trial's state read from its run folder; FileNotFoundError if absent."""
    sweep = runs.read_json(sweep_path(runs_dir, sweep_id))
    if not sweep:
        raise FileNotFoundError(f"no sweep {sweep_id!r} in {sweeps_root(runs_dir)}")
    if sweep.get("state") in ACTIVE_STATES and not runs.writer_is_alive(sweep):
        sweep["state"] = "interrupted"
        sweep["message"] = "The process running this sweep ended; run the same command again to resume it."
    for trial in sweep["trials"]:
        status = runs.read_status(Path(runs_dir) / trial["run_id"])
        trial["state"] = status.get("state", "pending")
        trial["message"] = status.get("message", "")
        trial["node"] = sweep.get("nodes", {}).get(trial["run_id"])
    return sweep


def trial_epoch_metrics(runs_dir, sweep: dict) -> pd.DataFrame:
    """Every trial's metrics.csv rows in one DataFrame, with run_id, seed and settings label added."""
    frames = []
    for trial in sweep["trials"]:
        frame = runs.read_epoch_metrics(Path(runs_dir) / trial["run_id"])
        if len(frame):
            frames.append(frame.assign(run_id=trial["run_id"], seed=trial["seed"],
                                       settings=settings_label(trial["settings"])))
    if not frames:
        return pd.DataFrame(columns=[*runs.EPOCH_FIELDS, "run_id", "seed", "settings"])
    return pd.concat(frames, ignore_index=True)


def list_sweeps(runs_dir) -> list[dict]:
    """Every stored sweep (without per-trial reads), newest first."""
    root = sweeps_root(runs_dir)
    if not root.is_dir():
        return []
    found = [runs.read_json(path / "sweep.json") for path in root.iterdir() if path.is_dir()]
    return sorted((s for s in found if s.get("sweep_id")), key=lambda s: s.get("created", ""), reverse=True)
