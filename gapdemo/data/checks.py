"""What a DataConfig must be before any source loads it, as sentences: the one home of these rules.

gapdemo.validation's gate lists them (with the data paths' problems) before anything runs; the sources
refuse with them (DataError) when called directly; the claims ask the synthetic bounds of any source,
since their unseen-position test always draws synthetic pets.
"""

from __future__ import annotations

from gapdemo.config import (
    DATASETS,
    MAX_SYNTHETIC_TRAIN_SIZE,
    MIN_SYNTHETIC_SIZE,
    MIN_TRAIN_SIZE,
    DataConfig,
    validate_image_size,
)


class DataError(ValueError):
    """A data problem the user can fix; str() is one readable sentence (what is wrong + what to do).
    Here, beside the rules, so the gate reads them without numpy (gapdemo.data.splits re-exports it)."""


def config_problems(config: DataConfig) -> list[str]:
    """Every reason no source can load config, read from config alone, one sentence each (empty when none).

    The image size, the data set's name, the number of training images and, for the synthetic source,
    its bounds (synthetic_problems).
    """
    problems = []
    try:
        validate_image_size(config.image_size)
    except ValueError as error:
        problems.append(str(error).capitalize() + ".")
    if config.dataset not in DATASETS:
        problems.append(f"Unknown data set {config.dataset!r}; choose one of {', '.join(DATASETS)}.")
    train_size = config.train_size
    if train_size is not None and (isinstance(train_size, bool) or not isinstance(train_size, int)):
        problems.append(f"The number of training images must be a whole number, got {train_size!r}.")
    elif train_size is not None and train_size < MIN_TRAIN_SIZE:
        problems.append(f"Use at least {MIN_TRAIN_SIZE} training images.")
    if config.dataset == "synthetic":
        problems += synthetic_problems(config)
    return problems


def synthetic_problems(config: DataConfig) -> list[str]:
    """Why the synthetic source cannot draw config's set, one sentence each: fewer than MIN_SYNTHETIC_SIZE images,
    or more than MAX_SYNTHETIC_TRAIN_SIZE training images (the claims' unseen-position test asks this of any source)."""
    problems = []
    if config.synthetic_size < MIN_SYNTHETIC_SIZE:
        problems.append(f"The synthetic data set needs at least {MIN_SYNTHETIC_SIZE} images, "
                        f"got {config.synthetic_size}.")
    if isinstance(config.train_size, int) and config.train_size > MAX_SYNTHETIC_TRAIN_SIZE:
        problems.append(f"The synthetic data set draws at most {MAX_SYNTHETIC_TRAIN_SIZE:,} training images "
                        f"(all held in memory), got {config.train_size:,}.")
    return problems


def refuse_problems(problems: list[str]) -> None:
    """Raise DataError with problems' sentences, if there are any."""
    if problems:
        raise DataError(" ".join(problems))


def refuse_unloadable(config: DataConfig) -> None:
    """Raise DataError with config_problems' sentences, if there are any."""
    refuse_problems(config_problems(config))
