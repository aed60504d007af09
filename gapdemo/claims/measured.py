"""A run's claims measures, computed once and kept in its folder as claims_measures.json.

    {"version": 1, "signature": groups.config_signature(the run's settings), "run_id", "measured" (time),
     "seconds" (time taken to measure), "parameters", "step_seconds", "overfitting", "localization",
     "shifts", "shift_accuracy", "consistency"}   (the sections: gapdemo.claims.scoring)

measure_run computes and writes it (atomically; TensorFlow is imported there, in a background job or the
command); read_measures reads it back without TensorFlow. The file lies in the shared runs folder, so it is
read as untrusted: past the JSON cap, behind a link, of another version or settings, or not holding numbers
where gapdemo writes them, it is refused with one sentence and treated as never written. The page then leaves
the run out of the table and says why; measuring (the command, the page's background job) writes it again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from gapdemo import runs
from gapdemo.claims import scoring
from gapdemo.claims.groups import config_signature
from gapdemo.claims.summary import json_ready
from gapdemo.config import RunConfig
from gapdemo.insight.evaluation import CONSISTENCY_SHIFTS
from gapdemo.runs.files import CLAIMS_MEASURES_FILE, is_plain_file
from gapdemo.validation import stored_data_config

MEASURES_FILE = CLAIMS_MEASURES_FILE
MEASURES_VERSION = 1


def measures_path(run_dir) -> Path:
    return Path(run_dir) / MEASURES_FILE


def write_measures(run_dir, config: RunConfig, measures: dict, seconds: float | None = None) -> dict:
    """Write a run's measures (scoring's sections) with their version and signature, atomically; return them."""
    run_dir = Path(run_dir)
    values = json_ready({"version": MEASURES_VERSION, "signature": config_signature(config), "run_id": run_dir.name,
                         "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "seconds": None if seconds is None else round(seconds, 2), **measures})
    runs.write_json_atomic(measures_path(run_dir), values)
    return values


def measure_run(run_dir, *, served: bool = False) -> dict:
    """Score a finished run's claims (scoring.score_run) and write claims_measures.json; return what was written.

    This is the slow part (seconds to a minute at the defaults; TensorFlow): call it from a background job or
    the command, never while a page draws.

    Args:
        served: asked from a page served to others: the run's data must lie under the data roots.

    Raises:
        ValueError (RunFileError among them) in one sentence when the run is not finished, its settings are
        refused, its data cannot be drawn again or its models cannot be loaded.
    """
    run_dir = Path(run_dir)
    state = runs.read_status(run_dir).get("state")
    if state != "finished":
        raise ValueError(f"Run {run_dir.name} is {state or 'without a status'}; only finished runs are measured.")
    config = stored_data_config(run_dir, served=served)
    started = time.perf_counter()
    measures = scoring.score_run(run_dir, config)
    return write_measures(run_dir, config, measures, time.perf_counter() - started)


def read_measures(run_dir, config: RunConfig) -> tuple[dict | None, str | None]:
    """(measures, None) when claims_measures.json holds what gapdemo wrote for these settings;
    (None, None) when there is none yet; (None, one sentence) when it is refused (then measure again)."""
    run_dir, path = Path(run_dir), measures_path(run_dir)
    if not path.exists() and not path.is_symlink():
        return None, None
    where = f"The file {MEASURES_FILE} in {run_dir.name}"
    if not is_plain_file(run_dir, MEASURES_FILE):
        return None, f"{where} is not a plain file; it was not followed."
    try:
        values = runs.read_json(path)
    except runs.RunFileError as error:
        return None, str(error)
    if values.get("version") != MEASURES_VERSION or values.get("signature") != config_signature(config):
        return None, f"{where} was measured by another version of gapdemo or for other settings; it was set aside."
    if not measures_hold_numbers(values, list(config.model.backends)):
        return None, f"{where} does not hold the claims' measures as gapdemo writes them; it was set aside."
    return values, None


# --- the file's shape, checked before any number is used -----------------------------------------


def _number(value, none_allowed: bool = False) -> bool:
    if value is None:
        return none_allowed
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values, length: int | None = None) -> bool:
    return (isinstance(values, list) and (length is None or len(values) == length)
            and all(_number(value) for value in values))


def _per_backend(section, backends, check) -> bool:
    return isinstance(section, dict) and all(backend in section and check(section[backend]) for backend in backends)


def _overfitting_holds(values) -> bool:
    return (isinstance(values, dict) and _numbers(values.get("epochs")) and _numbers(values.get("gap"), len(values["epochs"]))
            and len(values["epochs"]) > 0 and _number(values.get("final_gap"))
            and _number(values.get("final_val_accuracy")) and _number(values.get("val_loss_slope"), none_allowed=True))


def _localization_holds(values, backends) -> bool:
    if not isinstance(values, dict) or not isinstance(values.get("available"), bool):
        return False
    if not values["available"]:
        return isinstance(values.get("reason"), str)
    return _number(values.get("baseline")) and _per_backend(
        values.get("backends"), backends, lambda scores: isinstance(scores, dict) and isinstance(scores.get("method"), str)
        and _number(scores.get("pointing_game")) and _number(scores.get("energy_in_box")))


def measures_hold_numbers(values: dict, backends: list[str]) -> bool:
    """True when every section holds numbers for every back-end where gapdemo writes them."""
    shifts = values.get("shifts")
    step_seconds = values.get("step_seconds")
    return (_numbers(shifts) and len(shifts) > 0
            and _per_backend(values.get("parameters"), backends, lambda counts: isinstance(counts, dict) and all(
                _number(counts.get(name)) for name in ("backend_params", "total_params")))
            and (step_seconds == {} or _per_backend(step_seconds, backends, _number))
            and _per_backend(values.get("overfitting"), backends, _overfitting_holds)
            and _localization_holds(values.get("localization"), backends)
            and _per_backend(values.get("shift_accuracy"), backends, lambda curve: _numbers(curve, len(shifts)))
            and _per_backend(values.get("consistency"), backends,
                             lambda curve: _numbers(curve, len(CONSISTENCY_SHIFTS))))
