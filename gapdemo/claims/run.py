"""Measuring the four claims over several seeds, saved as <runs_dir>/claims-<id>/claims.json.

Per seed, run_claims trains one ordinary lockstep run (any data source) and one unseen-position
run (synthetic pets, objects left at training, right at test) with TrainingJob, each a normal
run directory under claims-<id>/runs/, then scores the saved models. Phases are cancellable:
a stop request ends the current training run after the batches in flight and raises ClaimsStopped.

Layout of one claims directory:
    claims.json      the result: parameters, overfitting, localization, translation, verdicts
    runs/<run_id>/   every training run it made (config.json, metrics.csv, models/*.keras, ...)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gapdemo import runs
from gapdemo.claims import measures, summary
from gapdemo.config import RunConfig
from gapdemo.job import TrainingJob
from gapdemo.validation import validate_run_config

DEFAULT_SEEDS = 3
MAX_SEEDS = 10
# Relative cost of each phase, for the progress fraction: training dominates.
PHASE_WEIGHTS = {"timing": 0.3, "train": 4.0, "evaluate": 0.6, "train_unseen": 4.0, "evaluate_unseen": 0.2}

Progress = Callable[[str, float], None]


class ClaimsStopped(Exception):
    """The user asked to stop; nothing is saved for an unfinished claims job."""


class ClaimsFailed(RuntimeError):
    """A training run of the claims job failed; str() names the run and says why."""


class _Plan:
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

    def finish(self, phase: str) -> None:
        self.done += PHASE_WEIGHTS[phase]

    def check_stop(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise ClaimsStopped("stopped by the user")


class _KeepingLoader:
    """A TrainingJob data_loader that keeps what it loaded, so the run's test images can be scored."""

    def __init__(self, loader):
        self.loader, self.data = loader, None

    def __call__(self, data_config, batch_size, progress=None):
        self.data = self.loader(data_config, batch_size, progress)
        return self.data


def seed_config(config: RunConfig, index: int, runs_dir: Path) -> RunConfig:
    """config with data, weights and batch order all drawn from seed config.data.seed + index."""
    values = config.to_dict()
    seed = config.data.seed + index
    values["data"]["seed"] = values["model"]["seed"] = values["train"]["seed"] = seed
    values["train"]["runs_dir"] = str(runs_dir)
    return RunConfig.from_dict(values)


def _train(config: RunConfig, loader, plan: _Plan, phase: str, title: str) -> Path:
    """Train one run in a helper thread, reporting epochs; stop it when the user asks."""
    job = TrainingJob(config, data_loader=loader)
    thread = threading.Thread(target=job.run, name="gapdemo-claims-training", daemon=True)
    thread.start()
    while not job.wait(0.5):
        if plan.stop_event is not None and plan.stop_event.is_set():
            job.stop()
            continue
        progress = job.snapshot().progress
        if progress.get("phase") == "loading data":
            plan.show(phase, f"{title}: loading data")
        elif "epoch" in progress:
            batches = max(progress["batches_per_epoch"], 1)
            within = ((progress["epoch"] - 1) * batches + progress["batch"]) / (progress["epochs"] * batches)
            plan.show(phase, f"{title}: epoch {progress['epoch']}/{progress['epochs']}", within)
    thread.join()
    plan.check_stop()  # only now, so a stopped run has ended before ClaimsStopped leaves
    if job.state != "finished":
        raise ClaimsFailed(f"training run {job.run_dir} {job.state}: {job.snapshot().message}")
    plan.finish(phase)
    return job.run_dir


def _evaluation_slice(data):
    """(images, labels, boxes or None) of the run's test split, capped for speed."""
    count = measures.MAX_EVALUATION_IMAGES
    boxes = None if data.test_boxes is None else data.test_boxes[:count]
    return data.test_images[:count], data.test_labels[:count], boxes


def _evaluate_lockstep(run_dir: Path, data, config: RunConfig, shifts: list[int]) -> dict:
    models = runs.load_models(run_dir)
    images, labels, boxes = _evaluation_slice(data)
    if boxes is None:
        localization = {"available": False, "reason": (
            f"the {config.data.dataset} data set has no object boxes; only the synthetic pets know where each "
            "object is, so choose the synthetic source to score the maps")}
    else:
        localization = {"available": True, "reason": None,
                        **measures.localization_measures(models, images, boxes, config.data.image_size)}
    shift_curves = {b: measures.shift_accuracy(measures.model_predictor(m), images, labels, shifts)
                    for b, m in models.items()}
    overfitting = measures.overfitting_measures(runs.read_epoch_metrics(run_dir))
    return {"overfitting": overfitting, "localization": localization, "shift_accuracy": shift_curves}


def _measure_seed(config: RunConfig, index: int, seeds: int, claims_dir: Path, plan: _Plan, shifts) -> dict:
    """Everything one seed contributes: step times, a lockstep run and an unseen-position run."""
    from gapdemo.data import load_data

    seeded = seed_config(config, index, claims_dir / "runs")
    title = f"seed {index + 1}/{seeds}"
    step_seconds = {}
    for backend in config.model.backends:
        plan.report("timing", f"{title}: timing one training step of {backend}")
        step_seconds[backend] = measures.measure_step_seconds(
            backend, config.data.image_size, config.train.batch_size, seeded.model.seed,
            config.model.dropout_rate, config.model.bn_momentum, config.train.learning_rate)
    plan.finish("timing")
    loader = _KeepingLoader(load_data)
    run_dir = _train(seeded, loader, plan, "train", f"{title}: training on {config.data.dataset}")
    plan.report("evaluate", f"{title}: scoring maps and shifted test images")
    evaluated = _evaluate_lockstep(run_dir, loader.data, seeded, shifts)
    plan.finish("evaluate")
    unseen_loader = _KeepingLoader(measures.unseen_position_loader)
    unseen_dir = _train(seeded, unseen_loader, plan, "train_unseen", f"{title}: training on left-half objects")
    plan.report("evaluate_unseen", f"{title}: testing on right-half objects")
    unseen = measures.unseen_position_measures(runs.load_models(unseen_dir), unseen_loader.data)
    plan.finish("evaluate_unseen")
    return {"seed": seeded.data.seed, "run_dir": str(run_dir), "unseen_run_dir": str(unseen_dir),
            "step_seconds": step_seconds, **evaluated, "unseen": unseen}


def check_arguments(config: RunConfig, seeds: int) -> None:
    """Raise ValueError (one sentence per problem) unless config and seeds can run."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds must be an integer from 1 to {MAX_SEEDS}, got {seeds!r}")
    problems = validate_run_config(config)
    if config.data.synthetic_size < 10:  # the unseen-position test always draws synthetic pets
        problems.append(f"The synthetic data set needs at least 10 images, got {config.data.synthetic_size}.")
    if problems:
        raise ValueError(" ".join(problems))


def summarize(config: RunConfig, per_seed: list[dict], shifts: list[int]) -> dict:
    """The four claims (mean and spread per back-end) and their verdicts, from every seed's measures."""
    from gapdemo.models import parameter_table

    backends = list(config.model.backends)
    table = parameter_table(backends, config.data.image_size, config.model.dropout_rate)
    step_seconds = {b: [seed["step_seconds"][b] for seed in per_seed] for b in backends}
    result = {
        "parameters": summary.summarize_parameters(table, step_seconds, config.data.image_size,
                                                   config.train.batch_size),
        "overfitting": summary.summarize_overfitting([seed["overfitting"] for seed in per_seed]),
        "localization": summary.summarize_localization([seed["localization"] for seed in per_seed]),
        "translation": summary.summarize_translation(shifts, [seed["shift_accuracy"] for seed in per_seed],
                                                     [seed["unseen"] for seed in per_seed]),
    }
    result["verdicts"] = summary.verdicts(result)
    return result


def run_claims(config: RunConfig, seeds: int = DEFAULT_SEEDS, progress: Progress | None = None,
               stop_event: threading.Event | None = None) -> dict:
    """Measure the four claims over `seeds` seeds and save claims.json; return the same dict.

    Args:
        config: data source, back-ends, image size, epochs, ...; config.train.runs_dir is where
            the claims-<id>/ folder goes. Seed i uses config.data.seed + i for data, weights and order.
        seeds: independent repeats (1 to MAX_SEEDS).
        progress: optional progress(message, fraction 0..1), called from this thread.
        stop_event: set it to stop between phases (a training run stops after the batches in flight).

    Raises:
        ValueError for bad arguments, ClaimsStopped when stopped, ClaimsFailed when a run fails.
    """
    check_arguments(config, seeds)
    started = time.time()
    claims_dir = Path(config.train.runs_dir) / f"claims-{runs.new_run_id()}"
    (claims_dir / "runs").mkdir(parents=True)
    plan = _Plan(seeds, progress, stop_event)
    shifts = measures.usable_shifts(config.data.image_size)
    per_seed = [_measure_seed(config, index, seeds, claims_dir, plan, shifts) for index in range(seeds)]
    result = {"id": claims_dir.name, "claims_dir": str(claims_dir), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.time() - started, 1), "seeds": seeds, "config": config.to_dict(),
              **summarize(config, per_seed, shifts), "per_seed": per_seed}
    result = json.loads(json.dumps(summary.json_ready(result), allow_nan=False))
    runs.write_json_atomic(claims_dir / "claims.json", result)
    if progress:
        progress("Claims measured", 1.0)
    return result


def list_claims(runs_dir) -> list[Path]:
    """claims-*/ folders under runs_dir that hold a claims.json, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [path for path in runs_dir.glob("claims-*") if (path / "claims.json").is_file()]
    return sorted(found, key=lambda path: path.name, reverse=True)


def latest_claims(runs_dir) -> dict | None:
    """The newest saved claims result under runs_dir, or None."""
    for path in list_claims(runs_dir):
        result = runs.read_json(path / "claims.json")
        if result:
            return result
    return None

