"""Typed settings for data, models and training, with commented defaults.

Every tunable value of gapdemo lives here. The dashboard, the CLI and the tests all build
these dataclasses; nothing else reads settings from globals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

DATASETS = ("synthetic", "cats_vs_dogs", "folder")
CLASS_NAMES = ("cat", "dog")  # index = label, in every source (the order of TFDS cats_vs_dogs)
MIN_IMAGE_SIZE = 32  # the head needs 3 conv+pool blocks: 32 px leaves a 2x2 map
MAX_IMAGE_SIZE = 256  # beyond this a CPU run stops being interactive
# The synthetic set grows with the training images asked for, up to this many: drawing them takes
# ~20 s and their 100x100 pixels ~0.6 GB (4 GB at 256x256), held in memory for the whole run.
MAX_SYNTHETIC_TRAIN_SIZE = 20_000
MIN_SYNTHETIC_SIZE = 10  # the synthetic set's fewest images: 80/10/10 leaves one for validation and test
MIN_TRAIN_SIZE = 2  # fewest training images: one of each class can be drawn
MAX_TRAIN_SIZE = 100_000  # most training images the sidebar offers (more than Cats vs Dogs has)
MAX_EPOCHS = 50  # the sidebar's longest run; the CLI takes any positive number
MAX_STEPS_PER_EXECUTION = 64  # training batches per call into TensorFlow: more only delays curves and Stop
MAX_SEED = 1_000_000  # seeds offered by the sidebar: 0 to this
# The sidebar's other limits. A served page holds every run, claims job and sweep trial to them, whatever a
# client or the Sweeps tab's typed values send (gapdemo.validation.served_limit_problems); the CLI takes any
# value that can train, unless GAPDEMO_SERVED=1.
BATCH_SIZE_CHOICES = (8, 16, 32, 64, 128, 256)  # the sidebar's batch sizes
LEARNING_RATE_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # the sidebar's learning rates
MAX_BATCH_SIZE = BATCH_SIZE_CHOICES[-1]
MIN_LEARNING_RATE, MAX_LEARNING_RATE = LEARNING_RATE_CHOICES[0], LEARNING_RATE_CHOICES[-1]
MAX_DROPOUT_RATE = 0.9  # the sidebar's top dropout rate (a run takes anything below 1)
MAX_SYNTHETIC_SIZE = round(MAX_SYNTHETIC_TRAIN_SIZE / 0.8)  # that many training images, split 80/10/10
DEFAULT_SEEDS = 3  # independent repeats of a claims measurement or of each sweep grid point
MAX_SEEDS = 10  # more repeats than this rarely change a verdict and cost hours on a CPU


@dataclass
class DataConfig:
    """Where images come from and how they are prepared."""

    dataset: str = "synthetic"  # one of DATASETS
    data_dir: str | None = None  # TFDS data dir (cats_vs_dogs) or the PATH/<class>/* tree (folder)
    image_size: int = 100  # images are resized to image_size x image_size, as in the tutorial
    train_size: int | None = 2000  # cap on training images (None = all); keeps runs interactive
    # The synthetic set's smallest size, split 80/10/10; it grows so that its training split covers
    # train_size (up to MAX_SYNTHETIC_TRAIN_SIZE). None = all takes this size's 80%.
    synthetic_size: int = 2500
    seed: int = 0  # drives generation, the folder split and shuffling
    # Where decoded folder / Cats vs Dogs images are cached (gapdemo.data.cache); None = $GAPDEMO_CACHE_DIR,
    # else ~/.cache/gapdemo ($XDG_CACHE_HOME honoured). Never changes what is loaded, only how fast.
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    """Which back-ends to build on the shared conv head, and their settings."""

    backends: tuple[str, ...] = ("fc", "fc_dropout", "gap")  # keys of models.BACKENDS
    dropout_rate: float = 0.5  # used by fc_dropout only (the tutorial's value)
    # Keras' default 0.99 needs thousands of steps before BN's moving statistics catch up; a short
    # interactive run then scores ~0.5 in inference mode. 0.9 converges within a few dozen steps.
    bn_momentum: float = 0.9
    seed: int = 0  # initial weights: the same seed gives every back-end the same head weights


@dataclass
class TrainConfig:
    """How the back-ends are trained."""

    epochs: int = 10  # full passes over the training images
    batch_size: int = 64  # the tutorial's batch size
    learning_rate: float = 1e-3  # Adam's learning rate, as in the tutorial
    seed: int = 0  # batch order; the same for every back-end
    runs_dir: str = "runs"  # where runs/<run_id>/ folders are written
    # Before each validation, replace batch norm's moving statistics by their average over a few
    # training batches at the current weights. Short runs otherwise validate with statistics that
    # lag far behind the weights (see ModelConfig.bn_momentum) and score near chance.
    recalibrate_bn: bool = True
    # Training batches averaged when recalibrating (4 x 64 = 256 images): at 100x100, validation
    # accuracy after 4 was within a point of after 16, at a quarter of the cost.
    recalibration_batches: int = 4
    # Training batches per call into TensorFlow (Keras' steps_per_execution). Curves, the speed
    # estimate and Stop act once per call. Fewer round trips help small, fast models; at 100x100 on
    # two cores 1, 4 and 8 trained equally fast (benchmarks/RESULTS.md, section 3), so the default
    # keeps every batch live.
    steps_per_execution: int = 1
    # Arithmetic: "float32", or "mixed_bfloat16" (bfloat16 compute, float32 variables and sigmoid
    # outputs) where the processor has bfloat16 instructions: 1.16x the images per second on two cores
    # but only 1.11x sooner to a default run's end, under the 1.15x a new default needs, so float32
    # stays the default (benchmarks/RESULTS.md, section 3b). gapdemo.model.precision checks the processor.
    precision: str = "float32"


@dataclass
class RunConfig:
    """Everything needed to repeat a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        model_values = dict(values.get("model", {}))
        if "backends" in model_values:
            model_values["backends"] = tuple(model_values["backends"])
        return cls(
            data=DataConfig(**values.get("data", {})),
            model=ModelConfig(**model_values),
            train=TrainConfig(**values.get("train", {})),
        )


def validate_image_size(image_size: int) -> None:
    """Raise ValueError when the head cannot be built for image_size."""
    if not isinstance(image_size, int) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(
            f"image size must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, "
            f"got {image_size!r}"
        )


def tiny_config(runs_dir: str = "runs", backends: tuple[str, ...] = ("fc", "gap")) -> RunConfig:
    """A preset for tests and smoke runs: 32x32 images, a few dozen of them, one epoch."""
    return RunConfig(
        data=DataConfig(image_size=32, train_size=48, synthetic_size=80, seed=0),
        model=ModelConfig(backends=backends, seed=0),
        train=TrainConfig(epochs=1, batch_size=16, runs_dir=runs_dir, seed=0),
    )
