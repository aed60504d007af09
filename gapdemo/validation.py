"""Checks a RunConfig against the data sources and the back-end registry before anything trains.

It sits apart from config.py because it reads the back-end registry (models.py), which in turn
reads config.py's image-size bounds: config stays a leaf that everything may import.
"""

from __future__ import annotations

import dataclasses

from gapdemo.budget.disk import runs_disk_problem
from gapdemo.budget.duration import duration_problem
from gapdemo.budget.memory import budget_problem, memory_budget_bytes
from gapdemo.config import (
    MAX_BATCH_SIZE,
    MAX_DROPOUT_RATE,
    MAX_EPOCHS,
    MAX_LEARNING_RATE,
    MAX_STEPS_PER_EXECUTION,
    MAX_SYNTHETIC_SIZE,
    MAX_TRAIN_SIZE,
    MIN_LEARNING_RATE,
    MIN_SYNTHETIC_SIZE,
    RunConfig,
)
from gapdemo.data.checks import config_problems
from gapdemo.data.roots import allowed_roots, folder_path_problem
from gapdemo.data.tfds_folder import tfds_folder_problem
from gapdemo.model.backends import BACKENDS
from gapdemo.model.precision import precision_problems
from gapdemo.runs.stored import parse_stored_config
from gapdemo.runs.trust import RunFileError


def validate_run_config(config: RunConfig, *, served: bool) -> list[str]:
    """The one gate: every reason config may not run here, one readable sentence each (empty when it may).

    Every way in asks it before anything trains or reads data: the page's Start, Measure the claims and
    Start sweep, the jobs behind them when called directly, the sweep planner and the commands.

    Args:
        config: the run's settings.
        served: the page that asks is reachable from other machines (gapdemo.serving), so data paths
            must lie under the data roots (gapdemo.data.roots); False (a local page, the CLI) restricts
            them only when GAPDEMO_DATA_ROOTS is set, and the run's estimated peak memory must fit the
            budget of a run (gapdemo.budget.memory). No default: each caller says which it is.
    """
    problems = [*data_problems(config, served=served), *model_problems(config), *training_problems(config)]
    if served:
        problems += served_limit_problems(config) + disk_problems(config)
    return problems + memory_problems(config) + duration_problems(config) if served and not problems else problems


def served_limit_problems(config: RunConfig) -> list[str]:
    """On a served page every value stays within the sidebar's own limits, whatever a client or a sweep's
    typed values send: one sentence per value outside them, naming the bound."""
    limits = (
        ("Epochs", config.train.epochs, 1, MAX_EPOCHS),
        ("Training images", config.data.train_size or 0, 0, MAX_TRAIN_SIZE),
        ("Batch size", config.train.batch_size, 1, MAX_BATCH_SIZE),
        ("Dropout rate", config.model.dropout_rate, 0.0, MAX_DROPOUT_RATE),
        ("Learning rate", config.train.learning_rate, MIN_LEARNING_RATE, MAX_LEARNING_RATE),
        ("The synthetic set's size", config.data.synthetic_size, MIN_SYNTHETIC_SIZE, MAX_SYNTHETIC_SIZE),
    )
    problems = [f"{name} must be from {_number(low)} to {_number(high)} on a served page, got {_number(value)}."
                for name, value, low, high in limits if not low <= value <= high]
    if config.data.cache_dir is not None:  # a folder the server would write into, named by a client
        problems.append("A served page keeps decoded images in its own cache folder; leave the cache folder unset.")
    return problems


def _number(value) -> str:
    """12345 -> '12,345'; 0.0001 -> '0.0001'; 0.9 -> '0.9'."""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def memory_problems(config: RunConfig) -> list[str]:
    """The served half of the memory budget: a run whose estimated peak is over it is refused at once;
    a run that grows past it anyway is stopped by the watchdog (gapdemo.jobs.processes), served or not."""
    problem = budget_problem(config, memory_budget_bytes())
    return [problem] if problem else []


def disk_problems(config: RunConfig) -> list[str]:
    """The served bound on disk: no new work while the runs folder is past GAPDEMO_RUNS_MAX_BYTES."""
    problem = runs_disk_problem(config.train.runs_dir)
    return [problem] if problem else []


def duration_problems(config: RunConfig) -> list[str]:
    """The served bound on work: a run estimated to train longer than GAPDEMO_MAX_RUN_MINUTES is refused."""
    problem = duration_problem(config)
    return [problem] if problem else []


def data_problems(config: RunConfig, *, served: bool) -> list[str]:
    """The data half of validate_run_config: gapdemo.data.checks' rules, then the paths under the roots."""
    return [*config_problems(config.data), *validate_data_paths(config, served=served)]


def model_problems(config: RunConfig) -> list[str]:
    problems = []
    if not config.model.backends:
        problems.append("Choose at least one back-end.")
    unknown = [key for key in config.model.backends if key not in BACKENDS]
    if unknown:
        problems.append(f"Unknown back-end(s) {', '.join(unknown)}; valid: {', '.join(BACKENDS)}.")
    if len(set(config.model.backends)) != len(config.model.backends):
        problems.append("Each back-end may be chosen once.")
    if not 0.0 <= config.model.dropout_rate < 1.0:
        problems.append("Dropout rate must be at least 0 and below 1.")
    if not 0.0 < config.model.bn_momentum < 1.0:
        problems.append("Batch-norm momentum must be above 0 and below 1.")
    return problems


def training_problems(config: RunConfig) -> list[str]:
    problems = []
    if config.train.epochs < 1:
        problems.append("Train for at least 1 epoch.")
    if config.train.batch_size < 1:
        problems.append("Batch size must be at least 1.")
    if not 1 <= config.train.steps_per_execution <= MAX_STEPS_PER_EXECUTION:
        problems.append(f"Batches per TensorFlow call must be from 1 to {MAX_STEPS_PER_EXECUTION}.")
    if not 0.0 < config.train.learning_rate <= 1.0:
        problems.append("Learning rate must be above 0 and at most 1.")
    problems += precision_problems(config.train.precision)
    train_size = config.data.train_size
    if isinstance(train_size, int) and train_size < config.train.batch_size:
        problems.append(
            f"Batch size {config.train.batch_size} is larger than the {config.data.train_size} "
            "training images; lower it or use more images."
        )
    return problems


def validate_data_paths(config: RunConfig, *, served: bool) -> list[str]:
    """Problems with the folder source's path or the TFDS data directory (see validate_run_config).

    A path outside the data roots gets the sentence of a missing folder (gapdemo.data.roots), so the
    answer never tells whether something exists outside them. A served page without roots offers the
    synthetic set alone, and reads Cats vs Dogs only where the operator prepared it (gapdemo.data.tfds_folder).
    """
    roots = allowed_roots(served)
    if config.data.dataset == "folder":
        problem = folder_path_problem(config.data.data_dir, roots)
    elif config.data.dataset == "cats_vs_dogs":
        problem = tfds_folder_problem(config.data.data_dir, roots, served=served)
    else:
        problem = None
    return [problem] if problem else []


# ----- a run's stored settings, asked as a new run's before they build anything (gapdemo.runs.stored) -----
def stored_run_config(run_dir) -> RunConfig:
    """The run's settings, for using its models: the data checks that need no data (image size, data set,
    sizes; gapdemo.data.checks) and the back-ends' (model_problems) must pass.

    Raises:
        gapdemo.runs.RunFileError (one sentence) when config.json is missing, past its size cap, not settings of this
        version of gapdemo, or refused by those checks.
    """
    config = parse_stored_config(run_dir)
    refuse_stored([*config_problems(config.data), *model_problems(config)])
    return config


def stored_data_config(run_dir, *, served: bool) -> RunConfig:
    """The run's settings, for drawing its data again (the Mistakes tab, evaluate): stored_run_config's checks,
    then the data paths under the data roots; served, also the memory budget, and the server's own image cache
    whatever cache folder the file names.

    Args:
        served: asked from a page served to others (see validate_run_config).

    Raises:
        RunFileError (one sentence), as stored_run_config.
    """
    config = stored_run_config(run_dir)
    try:
        problems = validate_data_paths(config, served=served)
    except (ValueError, OSError):  # a path the system refuses outright (a NUL byte, a name too long)
        problems = ["The run's data folder does not exist."]
    refuse_stored(problems + (memory_problems(config) if served and not problems else []))
    if served:  # a served page reads its own image cache, never a folder a run file names
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, cache_dir=None))
    return config


def refuse_stored(problems: list[str]) -> None:
    if problems:
        raise RunFileError(" ".join(problems))
