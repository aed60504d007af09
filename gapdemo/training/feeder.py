"""Feeding the trainer: a run's data loaded, and each split turned into what the lockstep model takes.

Every epoch makes three tf.data iterators (training, batch-norm recalibration, validation). With
tf.data's autotuning on, deleting one waits for the tuner's thread to wake up: 0.8-1.4 s of idle
cores after every fit and evaluate at the defaults, about a fifth of a run. The feeder turns the
autotuning off on the pipelines it is given (fixed parallelism, ample for images already decoded in
memory), so the next phase starts within milliseconds (benchmarks/RESULTS.md, section 1-2).
"""

from __future__ import annotations

import tensorflow as tf

from gapdemo.config import RunConfig
from gapdemo.data import sources
from gapdemo.data.pipeline import without_autotuning
from gapdemo.training.events import TrainingEvents


class BatchFeeder:
    """Loads a run's data and hands each split over as (images, {backend: labels (batch, 1)}) batches.

    Args:
        config: the run's settings.
        events: told how the load goes (the "loading data" phase).
        data_loader: (DataConfig, batch_size, progress) -> LoadedData; None = gapdemo.data.sources.load_data.
    """

    def __init__(self, config: RunConfig, events: TrainingEvents, data_loader=None):
        self.config, self.events = config, events
        # looked up when the run starts, so a loader swapped in on the module (tests, a host) is the one used
        self.data_loader = data_loader or sources.load_data
        self.backends = list(config.model.backends)

    def load(self):
        """The run's LoadedData (gapdemo.data.sources), its progress told to the events."""

        def progress(message, fraction):
            self.events.on_progress({"phase": "loading data", "message": message, "fraction": float(fraction)})

        return self.data_loader(self.config.data, self.config.train.batch_size, progress)

    def pipeline(self, dataset):
        """dataset with one label per back-end output, and tf.data's autotuning off (see the module's docstring)."""
        backends = self.backends
        # labels (batch,) -> {backend: (batch, 1)}: one loss per back-end, shapes matching outputs
        dataset = dataset.map(lambda images, labels: (images, {b: tf.expand_dims(labels, -1) for b in backends}))
        return without_autotuning(dataset)


def epoch_size(data) -> tuple[int, int | None]:
    """(batches per epoch, training images per epoch when the data say so) of a LoadedData.

    The image count is what the batches hold in all: the last batch may be smaller.
    """
    return max(1, int(data.train.cardinality().numpy())), getattr(data.info, "splits", {}).get("train")
