"""The sweep folder's only owner: <runs_dir>/sweeps/<sweep_id>/ with sweep.json and plan.json.

sweep.json holds what the sweep is (base config, grid, seeds, one entry per trial with its run id)
and what the driver last saw (state, message, the Ray node of each trial). plan.json is the plan
(gapdemo.sweep.grid.SweepPlan) the page hands the process that trains the sweep. The trials' results
live in ordinary run folders, <runs_dir>/<run_id>/, read through gapdemo.runs, so the Runs tab,
export and classify work on them unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from gapdemo import runs
from gapdemo.sweep.checks import check_resumable, sweep_problem
from gapdemo.sweep.grid import SweepPlan, settings_label

SWEEPS_FOLDER = "sweeps"
SWEEP_FILE, PLAN_FILE = "sweep.json", "plan.json"
ACTIVE_STATES = ("running", "stopping")


def sweeps_root(runs_dir) -> Path:
    return Path(runs_dir) / SWEEPS_FOLDER


def sweep_folder(runs_dir, sweep_id: str) -> Path:
    """<runs_dir>/sweeps/<sweep_id>; RunFileError when sweep_id is no id or a link stands on the way: every
    file of a sweep is written there, so it must lie inside the runs folder (gapdemo.runs.trust)."""
    root = sweeps_root(runs_dir)
    if runs.is_link(root):
        raise runs.RunFileError(f"The runs folder's {SWEEPS_FOLDER} folder is a symbolic link; it was refused and "
                                "not followed.")
    return runs.run_folder(root, sweep_id, "This sweep", kind="sweep")


def sweep_path(runs_dir, sweep_id: str) -> Path:
    return sweep_folder(runs_dir, sweep_id) / SWEEP_FILE


def create_or_resume(runs_dir, plan: SweepPlan) -> dict:
    """The stored sweep of plan's id when it holds plan's trials (resumed: same run ids), else a new one
    with fresh run ids.

    Raises:
        RunFileError (one sentence) when the stored sweep holds plan's trials but one of them may not be
        cleared and trained again (gapdemo.sweep.checks.check_resumable): nothing is written then.
    """
    stored = runs.read_json(sweep_path(runs_dir, plan.sweep_id))
    planned = [(trial.index, trial.settings, trial.seed) for trial in plan.trials]
    if planned == _stored_trial_keys(stored):
        check_resumable(runs_dir, stored)
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


def _stored_trial_keys(stored: dict) -> list | None:
    """[(index, settings, seed)] of a stored sweep's trials; None when it holds no such list."""
    trials = stored.get("trials")
    if not isinstance(trials, list) or not all(isinstance(trial, dict) for trial in trials):
        return None
    return [(trial.get("index"), trial.get("settings"), trial.get("seed")) for trial in trials]


def write_plan(plan: SweepPlan) -> Path:
    """Write plan as JSON into its sweep's folder under plan.base.train.runs_dir; the file's path."""
    path = sweep_folder(plan.base.train.runs_dir, plan.sweep_id) / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(path, plan.to_dict())
    return path


def read_plan(path) -> SweepPlan:
    """The plan write_plan wrote to path; ValueError, one sentence, when the file holds none, or a
    RunFileError when it names a sweep id that is none, or, lying in a runs folder's sweeps/, another runs folder."""
    values = runs.read_json(path)
    if not values:
        raise ValueError(f"cannot read a sweep plan from {path}: the file is missing or holds no JSON object")
    try:
        plan = SweepPlan.from_dict(values)
    except KeyError as error:
        raise ValueError(f"{path} is not a sweep plan: it has no {error} field") from None
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"cannot read a sweep plan from {path}: {error}") from None
    if not runs.is_run_id(plan.sweep_id):
        raise runs.RunFileError(f"The sweep plan in {Path(path).name} names no sweep id; it was refused.")
    folder = Path(path).resolve().parent
    if folder.parent.name == SWEEPS_FOLDER and folder.parents[1] != Path(plan.base.train.runs_dir).resolve():
        raise runs.RunFileError(f"The sweep plan of {folder.name} names another runs folder than its own; "
                                "it was refused.")
    return plan


def save(runs_dir, sweep: dict) -> None:
    path = sweep_path(runs_dir, sweep["sweep_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(path, {**sweep, "process": runs.process_token(),
                                  "updated": time.strftime("%Y-%m-%d %H:%M:%S")})


def load(runs_dir, sweep_id: str) -> dict:
    """sweep.json with each trial's state read from its run folder; FileNotFoundError if absent.

    A sweep.json that may not be shown (gapdemo.sweep.checks.sweep_problem, or past the size cap) comes back
    as a sweep with no trials whose state is "refused" and whose message says why in one sentence.
    """
    try:
        sweep = runs.read_json(sweep_path(runs_dir, sweep_id))
        problem = sweep_problem(runs_dir, sweep, sweep_id) if sweep else None
    except runs.RunFileError as error:
        sweep, problem = {"sweep_id": sweep_id}, str(error)
    if problem:
        return refused_sweep(sweep_id, problem)
    if not sweep:
        raise FileNotFoundError(f"no sweep {sweep_id!r} in {sweeps_root(runs_dir)}")
    if sweep.get("state") in ACTIVE_STATES and not runs.writer_is_alive(sweep):
        sweep["state"] = "interrupted"
        sweep["message"] = "The process running this sweep ended; run the same command again to resume it."
    nodes = sweep.get("nodes") if isinstance(sweep.get("nodes"), dict) else {}
    for trial in sweep["trials"]:
        try:
            status = runs.read_status(Path(runs_dir) / trial["run_id"])
        except runs.RunFileError as error:
            status = {"state": "refused", "message": str(error)}
        trial["state"] = status.get("state", "pending")
        trial["message"] = status.get("message", "")
        trial["node"] = nodes.get(trial["run_id"])
    return sweep


def refused_sweep(sweep_id: str, message: str) -> dict:
    """What the Sweeps tab shows of a sweep file it may not read: its id, no trials and the sentence why."""
    return {"sweep_id": sweep_id, "created": "", "state": "refused", "message": message, "grid": {}, "seeds": 0,
            "base_config": {"model": {"backends": []}}, "trials": []}


def trial_epoch_metrics(runs_dir, sweep: dict) -> pd.DataFrame:
    """Every trial's metrics.csv rows in one DataFrame, with run_id, seed and settings label added (a trial
    whose metrics are refused for their size is left out: its state in load() says why)."""
    frames = []
    for trial in sweep["trials"]:
        try:
            frame = runs.read_epoch_metrics(Path(runs_dir) / trial["run_id"])
        except runs.RunFileError:
            continue
        if len(frame):
            frames.append(frame.assign(run_id=trial["run_id"], seed=trial["seed"],
                                       settings=settings_label(trial["settings"])))
    if not frames:
        return pd.DataFrame(columns=[*runs.EPOCH_FIELDS, "run_id", "seed", "settings"])
    return pd.concat(frames, ignore_index=True)


def list_sweeps(runs_dir) -> list[dict]:
    """Every stored sweep (without per-trial reads), newest first; one that may not be shown comes as
    refused_sweep's. Folders that are links or not named by an id are no sweeps of gapdemo's and are passed by."""
    root = sweeps_root(runs_dir)
    if not root.is_dir() or runs.is_link(root):
        return []
    found = []
    for folder in root.iterdir():
        if runs.is_link(folder) or not folder.is_dir() or not runs.is_run_id(folder.name):
            continue
        try:
            sweep = runs.read_json(folder / SWEEP_FILE)
            problem = sweep_problem(runs_dir, sweep, folder.name) if sweep else None
        except runs.RunFileError as error:
            sweep, problem = {}, str(error)
        if problem:
            found.append(refused_sweep(folder.name, problem))
        elif sweep:  # no sweep.json yet: a plan waiting for its process
            found.append(sweep)
    return sorted(found, key=lambda s: str(s.get("created", "")), reverse=True)
