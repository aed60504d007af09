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
from gapdemo.data.audience import work_is_served


class DataError(ValueError):
    """A data problem the user can fix; str() is one readable sentence (what is wrong + what to do).
    Here, beside the rules, so the gate reads them without numpy (gapdemo.data.splits re-exports it).

    A sentence that names what lies in a data folder (its sub-folders, files, paths the user did not
    type) comes with a public one that names none of it. In served work (gapdemo.data.audience) str()
    is the public one, so every place that shows the error (the run's status, the traceback in
    log.txt, a command's error line) shows that one without having to choose.

    Args:
        detail: the full sentence, for the operator and a local page.
        public: the sentence for a served page's visitors; None when detail names nothing private.
    """

    def __init__(self, detail: str, public: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.public = detail if public is None else public

    def __str__(self) -> str:
        return self.public if work_is_served() else self.detail

    def __reduce__(self):
        # Both sentences cross a process boundary (a Ray task's error), not the detail alone.
        return type(self), (self.detail, self.public)


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
