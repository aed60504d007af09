"""A sweep's files read back from the shared runs folder: what they must hold before a sweep is shown or resumed.

Anyone who may write into the runs folder may write a sweep.json. Its trials name run folders by id, and
resuming a sweep clears and writes the folders of its unfinished trials, so every id must be a run id whose
folder is no symbolic link (gapdemo.runs.run_folder), and, before a resume, an existing folder must be that
very trial's run: its config.json carries the sweep's tag (the collector writes it with the config), or the
folder holds nothing but a run's own files (a trial cut short as it arrived). A refusal is one sentence
(gapdemo.runs.RunFileError); nothing the file names is followed.
"""

from __future__ import annotations

from pathlib import Path

from gapdemo import runs


def sweep_problem(runs_dir, sweep: dict, sweep_id: str) -> str | None:
    """Why sweep (sweep.json's values) cannot be shown as sweep_id's, in one sentence; None when it can."""
    where = f"The file sweep.json of sweep {sweep_id}"
    if sweep.get("sweep_id") != sweep_id:
        return f"{where} names another sweep; it was refused."
    trials = sweep.get("trials")
    if not (isinstance(sweep.get("grid"), dict) and _is_number(sweep.get("seeds")) and isinstance(trials, list)
            and all(_is_trial(trial) for trial in trials) and base_backends(sweep) is not None):
        return f"{where} does not hold a sweep as gapdemo writes it (grid, seeds, base settings, trials); it was refused."
    for trial in trials:
        try:
            runs.run_folder(runs_dir, trial["run_id"], f"Sweep {sweep_id}'s trial {trial['index']}")
        except runs.RunFileError as error:
            return str(error)
    run_ids = [trial["run_id"] for trial in trials]
    if len(set(run_ids)) != len(run_ids):
        return f"{where} names one run for two trials; it was refused."
    return None


def check_resumable(runs_dir, sweep: dict) -> None:
    """Raise RunFileError (one sentence) unless every trial of the stored sweep may be cleared and trained again:
    sweep_problem finds nothing, and each trial's existing folder is that trial's own run."""
    sweep_id = sweep.get("sweep_id")
    problem = sweep_problem(runs_dir, sweep, sweep_id)
    if problem:
        raise runs.RunFileError(problem)
    for trial in sweep["trials"]:
        folder = Path(runs_dir) / trial["run_id"]
        if folder.exists() and not _is_trial_run(folder, sweep_id, trial["index"]):
            raise runs.RunFileError(f"Sweep {sweep_id}'s trial {trial['index']} names the run {trial['run_id']}, "
                                    "whose folder holds something else; it was refused, and nothing was cleared "
                                    "or written.")


def base_backends(sweep: dict) -> list[str] | None:
    """The back-ends of the sweep's base settings, or None when sweep.json holds no list of names there."""
    base = sweep.get("base_config")
    model = base.get("model") if isinstance(base, dict) else None
    backends = model.get("backends") if isinstance(model, dict) else None
    if isinstance(backends, list) and all(isinstance(name, str) for name in backends):
        return backends
    return None


def _is_trial_run(folder: Path, sweep_id: str, index: int) -> bool:
    """True when folder is the run of the sweep's trial index, or a trial folder cut short (run files only)."""
    config = runs.read_config(folder)
    if not config:
        return runs.holds_only_run_files(folder)
    tag = config.get("sweep")
    return isinstance(tag, dict) and tag.get("sweep_id") == sweep_id and tag.get("index") == index


def _is_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_trial(trial) -> bool:
    return (isinstance(trial, dict) and _is_number(trial.get("index")) and _is_number(trial.get("seed"))
            and isinstance(trial.get("settings"), dict) and "run_id" in trial)
