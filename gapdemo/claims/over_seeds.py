"""Measuring the four claims over several seeds, saved as <runs_dir>/claims-<id>/claims.json.

Per seed, run_claims trains one ordinary lockstep run (any data source) and one unseen-position
run (synthetic pets, objects left at training, right at test). All seeds' runs train as trials on
the sweep engine (Ray: this machine, or the cluster named by GAPDEMO_RAY_ADDRESS), each a normal
run directory under claims-<id>/runs/; then the saved models are scored here. Phases are
cancellable: a stop request ends the training runs after the batches in flight and raises
ClaimsStopped.

Layout of one claims directory:
    claims.json      the result: parameters, overfitting, localization, translation, verdicts
    runs/<run_id>/   every training run it made (config.json, metrics.csv, models/*.keras, ...)
    tune/            Ray Tune's own record of the trials
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gapdemo import runs
from gapdemo.claims import measures, scoring, summary
from gapdemo.claims.measured import write_measures
from gapdemo.claims.saved import CLAIMS_FILE, CLAIMS_PREFIX
from gapdemo.cluster import connection, trials
from gapdemo.config import DEFAULT_SEEDS, MAX_SEEDS, RunConfig
from gapdemo.data.checks import synthetic_problems
from gapdemo.data.sources import load_data
from gapdemo.sweep.seeds import repeat_seed, seeded_config
from gapdemo.validation import validate_run_config

# Relative cost of each phase, for the progress fraction: training dominates.
PHASE_WEIGHTS = {"timing": 0.3, "train": 4.0, "evaluate": 1.5, "train_unseen": 4.0, "evaluate_unseen": 0.2}

Progress = Callable[[str, float], None]


class ClaimsStopped(Exception):
    """The user asked to stop; nothing is saved for an unfinished claims job."""


class ClaimsFailed(RuntimeError):
    """A training run of the claims job failed; str() names the run and says why."""


class _ClaimsProgress:
    """Turns (phase, fraction within the phase) into one progress fraction and message."""

    def __init__(self, seeds: int, progress: Progress | None, stop_event: threading.Event | None):
        self.total = seeds * sum(PHASE_WEIGHTS.values())
        self.done = 0.0
        self.progress = progress or (lambda message, fraction: None)
        self.stop_event = stop_event

    def report(self, phase: str, message: str, within: float = 0.0) -> None:
        """Stop here if asked (ClaimsStopped), else publish the message and overall fraction."""
        self.check_stop()
        self.show(phase, message, within)

    def show(self, phase: str, message: str, within: float = 0.0) -> None:
        self.progress(message, min((self.done + PHASE_WEIGHTS[phase] * within) / self.total, 1.0))

    def advance(self, weight: float, within: float, message: str) -> None:
        """Progress through a stretch of `weight` that spans several phases (training on Ray)."""
        self.progress(message, min((self.done + weight * within) / self.total, 1.0))

    def finish(self, phase: str) -> None:
        self.done += PHASE_WEIGHTS[phase]

    def check_stop(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise ClaimsStopped("stopped by the user")


def _training_specs(config: RunConfig, seeds: int, claims_dir: Path) -> list:
    """Per seed, two trials: the chosen data, and synthetic pets confined to one half (unseen positions)."""
    specs = []
    for index in range(seeds):
        seeded = seeded_config(config, repeat_seed(config.data.seed, index), claims_dir / "runs")
        for kind, loader in (("chosen data", None), ("unseen positions", measures.unseen_position_loader)):
            tags = {"claims": {"id": claims_dir.name, "seed": seeded.data.seed, "kind": kind}}
            specs.append(trials.TrialSpec(runs.new_run_id(), seeded.to_dict(), tags, loader))
    return specs


def _train_all(config: RunConfig, seeds: int, claims_dir: Path, plan: _ClaimsProgress,
               max_concurrent: int | None = None) -> list[Path]:
    """Train every seed's two runs as trials on the sweep engine; their run folders, in spec order."""
    specs = _training_specs(config, seeds, claims_dir)
    weight = seeds * (PHASE_WEIGHTS["train"] + PHASE_WEIGHTS["train_unseen"])

    def show(snapshot: dict) -> None:
        fractions = [_trial_fraction(snapshot.get(spec.run_id, {})) for spec in specs]
        states = [snapshot.get(spec.run_id, {}).get("state", "waiting") for spec in specs]
        plan.advance(weight, sum(fractions) / len(specs),
                     f"training {len(specs)} runs on Ray: {states.count('running')} running, "
                     f"{states.count('finished')} finished{_epoch_text(snapshot)}")

    plan.report("train", f"starting Ray for {len(specs)} training runs")
    started_here = connection.connect(connection.resolve_address(None))
    try:
        outcome = trials.run_trials(specs, claims_dir / "runs", claims_dir / "tune", max_concurrent=max_concurrent,
                                    stop_event=plan.stop_event, on_update=show)
    finally:
        if started_here:
            connection.disconnect()
    plan.check_stop()  # only now, so stopped trials have ended before ClaimsStopped leaves
    for spec in specs:
        entry = outcome.get(spec.run_id, {})
        if entry.get("state") != "finished":
            raise ClaimsFailed(f"training run {claims_dir / 'runs' / spec.run_id} {entry.get('state', 'lost')}: "
                               f"{entry.get('message', '')}")
    plan.done += weight
    return [claims_dir / "runs" / spec.run_id for spec in specs]


def _trial_fraction(entry: dict) -> float:
    if entry.get("state") in ("finished", "failed", "stopped"):
        return 1.0
    progress = entry.get("progress") or {}
    if "epoch" not in progress:
        return 0.0
    batches = max(progress.get("batches_per_epoch", 1), 1)
    return ((progress["epoch"] - 1) * batches + progress.get("batch", 0)) / (progress["epochs"] * batches)


def _epoch_text(snapshot: dict) -> str:
    """' (epoch 3/10, 180 images/s)': the slowest running trial's epoch and all running trials' rate."""
    running = [e["progress"] for e in snapshot.values()
               if "epoch" in (e.get("progress") or {}) and e.get("state") == "running"]
    if not running:
        return ""
    rate = sum(progress.get("images_per_second") or 0.0 for progress in running)
    epoch, epochs = min((progress["epoch"], progress["epochs"]) for progress in running)
    return f" (epoch {epoch}/{epochs}" + (f", {rate:.0f} images/s)" if rate else ")")


def _time_steps(config: RunConfig, index: int, seeds: int, plan: _ClaimsProgress) -> dict:
    """Seconds per training step of each back-end, timed while nothing else trains."""
    def report(backend: str) -> None:
        plan.report("timing", f"seed {index + 1}/{seeds}: timing one training step of {backend}")

    step_seconds = scoring.time_steps(config, repeat_seed(config.data.seed, index), before_each=report)
    plan.finish("timing")
    return step_seconds


def _score_seed(config: RunConfig, index: int, seeds: int, run_dirs: tuple[Path, Path], plan: _ClaimsProgress,
                shifts, step_seconds: dict, parameters: dict) -> dict:
    """One seed's measures from its two trained runs: the data are drawn again here, as the trial drew them.

    The ordinary run is scored as pooling scores any run (gapdemo.claims.scoring), and its measures are kept
    in its folder (claims_measures.json), so pooling the claims job's runs later measures nothing again.
    """
    seeded = seeded_config(config, repeat_seed(config.data.seed, index), run_dirs[0].parent)
    title = f"seed {index + 1}/{seeds}"
    plan.report("evaluate", f"{title}: scoring maps, shifted test images and shift consistency")
    data = load_data(seeded.data, seeded.train.batch_size)
    scored = {"parameters": parameters, "step_seconds": step_seconds,
              **scoring.score_models(run_dirs[0], runs.load_models(run_dirs[0]), data, seeded, shifts)}
    write_measures(run_dirs[0], seeded, scored)
    plan.finish("evaluate")
    plan.report("evaluate_unseen", f"{title}: testing on right-half objects")
    unseen_data = measures.unseen_position_loader(seeded.data, seeded.train.batch_size)
    unseen = measures.unseen_position_measures(runs.load_models(run_dirs[1]), unseen_data)
    plan.finish("evaluate_unseen")
    return {"seed": seeded.data.seed, "run_dir": str(run_dirs[0]), "unseen_run_dir": str(run_dirs[1]), **scored,
            "unseen": unseen}


def check_arguments(config: RunConfig, seeds: int, *, served: bool = False) -> None:
    """Raise ValueError (one sentence per problem) unless config and seeds can run (served: see
    gapdemo.validation.validate_run_config)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds must be an integer from 1 to {MAX_SEEDS}, got {seeds!r}")
    problems = validate_run_config(config, served=served)
    if config.data.dataset != "synthetic":  # the gate asked these of a synthetic run; the unseen-position test draws one
        problems += synthetic_problems(config.data)
    if problems:
        raise ValueError(" ".join(problems))


def summarize(config: RunConfig, per_seed: list[dict]) -> dict:
    """The four claims (mean and spread per back-end) and their verdicts, from every seed's measures."""
    return summary.summarize(per_seed, config.model.backends, config.data.image_size, config.train.batch_size)


def run_claims(config: RunConfig, seeds: int = DEFAULT_SEEDS, progress: Progress | None = None,
               stop_event: threading.Event | None = None, *, served: bool = False,
               max_concurrent: int | None = None) -> dict:
    """Measure the four claims over `seeds` seeds and save claims.json; return the same dict.

    Args:
        config: data source, back-ends, image size, epochs, ...; config.train.runs_dir is where
            the claims-<id>/ folder goes. Seed i draws data, weights and order from
            gapdemo.sweep.seeds.repeat_seed(config.data.seed, i), as a sweep's trials do.
        seeds: independent repeats (1 to MAX_SEEDS).
        progress: optional progress(message, fraction 0..1), called from this thread.
        stop_event: set it to stop between phases (a training run stops after the batches in flight).
        served: asked from a page served to others: data paths must lie under the data roots.
        max_concurrent: training runs at once (None: as Ray's CPUs allow); the page's job gives its slots.

    Raises:
        ValueError for bad arguments, ClaimsStopped when stopped, ClaimsFailed when a run fails.
    """
    check_arguments(config, seeds, served=served)
    started = time.time()
    claims_dir = Path(config.train.runs_dir) / f"{CLAIMS_PREFIX}{runs.new_run_id()}"
    (claims_dir / "runs").mkdir(parents=True)
    plan = _ClaimsProgress(seeds, progress, stop_event)
    shifts = measures.usable_shifts(config.data.image_size)
    step_seconds = [_time_steps(config, index, seeds, plan) for index in range(seeds)]
    run_dirs = _train_all(config, seeds, claims_dir, plan, max_concurrent)
    parameters = scoring.parameter_counts(config)
    per_seed = [_score_seed(config, index, seeds, (run_dirs[2 * index], run_dirs[2 * index + 1]), plan, shifts,
                            step_seconds[index], parameters) for index in range(seeds)]
    result = {"id": claims_dir.name, "claims_dir": str(claims_dir), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.time() - started, 1), "seeds": seeds, "config": config.to_dict(),
              **summarize(config, per_seed), "per_seed": per_seed}
    result = json.loads(json.dumps(summary.json_ready(result), allow_nan=False))
    runs.write_json_atomic(claims_dir / CLAIMS_FILE, result)
    if progress:
        progress("Claims measured", 1.0)
    return result
