"""A sweep from start to summary: plan its trials, ask the gate, resume what is stored, train the rest on Ray.

Running the same sweep again (same base settings, grid and seeds: the same plan) resumes it: trials
whose run finished are kept and not trained again; the others start from epoch 1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gapdemo import runs
from gapdemo.cluster import connection, trials
from gapdemo.config import RunConfig
from gapdemo.serving import max_served_trials
from gapdemo.sweep import store
from gapdemo.sweep.grid import SweepPlan, Trial, plan_trials, trial_config
from gapdemo.sweep.summary import summary_rows, trial_rows
from gapdemo.validation import validate_run_config


def plan_sweep(base: RunConfig, grid: dict, seeds: int, *, served: bool = False) -> SweepPlan:
    """The sweep's plan (gapdemo.sweep.grid.plan_trials), asked of the gate first (check_plan)."""
    plan = plan_trials(base, grid, seeds)
    check_plan(plan, served=served)
    return plan


def check_plan(plan: SweepPlan, *, served: bool) -> None:
    """ValueError naming the first trial whose settings may not run here (gapdemo.validation's gate;
    served: asked from a page served to others), or, when served, for more than max_served_trials() trials."""
    if served and len(plan.trials) > max_served_trials():
        raise ValueError(f"A sweep on a served page trains at most {max_served_trials()} runs; this one asks for "
                         f"{len(plan.trials)}. Use fewer values or seeds.")
    for trial in plan.trials:
        problems = validate_run_config(trial_config(plan.base, trial, plan.base.train.runs_dir), served=served)
        if problems:
            raise ValueError(f"trial {trial.settings or 'base'} seed {trial.seed}: {' '.join(problems)}")


def pending_specs(sweep: dict, base: RunConfig, runs_dir) -> list[trials.TrialSpec]:
    """A TrialSpec for every stored trial whose run has not finished."""
    specs = []
    for stored in sweep["trials"]:
        if runs.read_status(Path(runs_dir) / stored["run_id"]).get("state") == "finished":
            continue
        trial = Trial(stored["index"], stored["settings"], stored["seed"])
        tags = {"sweep": {"sweep_id": sweep["sweep_id"], "index": trial.index, "settings": trial.settings,
                          "seed": trial.seed}}
        specs.append(trials.TrialSpec(stored["run_id"], trial_config(base, trial, runs_dir).to_dict(), tags))
    return specs


def run_sweep(base: RunConfig, grid: dict, seeds: int, **options) -> dict:
    """Plan the sweep of grid x seeds on base (gapdemo.sweep.grid.plan_trials) and run it; options as run_plan's."""
    return run_plan(plan_trials(base, grid, seeds), **options)


def run_plan(plan: SweepPlan, *, address: str | None = None, max_concurrent: int | None = None,
             cpus_per_trial: float = 1, gpus_per_trial: float = 0, stop_event: threading.Event | None = None,
             on_update: Callable[[dict], None] | None = None, served: bool = False) -> dict:
    """Train exactly plan's trials, with their seeds, except those whose run finished before; return
    sweep_result(). ValueError from check_plan (served: started from a page served to others) before
    anything trains; EngineError if Ray is unusable."""
    check_plan(plan, served=served)
    runs_dir = Path(plan.base.train.runs_dir)
    sweep = store.create_or_resume(runs_dir, plan)
    specs = pending_specs(sweep, plan.base, runs_dir)
    started_here = connection.connect(connection.resolve_address(address)) if specs else False
    sweep.update(state="running", message="")
    store.save(runs_dir, sweep)

    def record(snapshot: dict) -> None:
        sweep["nodes"].update({run_id: entry["node"] for run_id, entry in snapshot.items() if entry.get("node")})
        sweep["progress"] = {run_id: entry.get("progress", {}) for run_id, entry in snapshot.items()}
        store.save(runs_dir, sweep)
        if on_update is not None:
            on_update(snapshot)

    try:
        if specs:
            outcome = trials.run_trials(specs, runs_dir, store.sweep_path(runs_dir, plan.sweep_id).parent,
                                        max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial,
                                        gpus_per_trial=gpus_per_trial, stop_event=stop_event, on_update=record)
            record(outcome)
        stopped = stop_event is not None and stop_event.is_set()
        sweep.update(state="stopped" if stopped else "finished",
                     message="Stopped; finished trials are kept. Run it again to resume." if stopped else "")
    except BaseException as error:  # Ctrl-C or a dead cluster: say so on disk, then let it rise
        sweep.update(state="failed", message=f"The sweep ended early ({type(error).__name__}: {error}).")
        raise
    finally:
        sweep.pop("progress", None)
        store.save(runs_dir, sweep)
        if started_here:
            connection.disconnect()
    return sweep_result(runs_dir, plan.sweep_id)


def sweep_result(runs_dir, sweep_id: str) -> dict:
    """The CLI's JSON: sweep_id, engine, nodes, state, trials and summary (mean and std per grid point)."""
    sweep = store.load(runs_dir, sweep_id)
    trials = trial_rows(sweep, store.trial_epoch_metrics(runs_dir, sweep))
    return {
        "sweep_id": sweep_id, "engine": "ray", "state": sweep["state"], "message": sweep.get("message", ""),
        "nodes": len({trial["node"] for trial in trials if trial.get("node")}),
        "grid": sweep["grid"], "seeds": sweep["seeds"], "trials": trials, "summary": summary_rows(sweep, trials),
    }
