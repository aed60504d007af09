"""The engine before #17, for side-by-side benchmarks only: gapdemo's trainer with the parts it had then.

  no compiled-model cache          every run builds, compiles and traces its training step afresh
  summed-loss step       Keras' own step over the back-ends' summed loss, every head's activations alive at
                         once (the shipped step, gapdemo.model.lockstep, takes one head at a time)
  tf.data autotuning on  deleting each epoch's iterators waits for the tuner's thread: idle cores after
                         every fit and evaluate (the shipped feeder, gapdemo.training.feeder, turns it off)

The product has no switch for it. benchmarks.training trains a BaselineJob beside a TrainingJob;
benchmarks.cli_run runs gapdemo's CLI in a child whose jobs train through BaselineTrainer.
"""

from __future__ import annotations

import dataclasses

from benchmarks import common
from gapdemo.model.backends import LockstepModels
from gapdemo.training.feeder import BatchFeeder
from gapdemo.training.fitter import LockstepFitter
from gapdemo.training.job import TrainingJob
from gapdemo.training.trainer import Trainer


class BaselineFeeder(BatchFeeder):
    """Feeds with tf.data's autotuning on."""

    def pipeline(self, dataset):
        return common.per_backend_labels(dataset, self.backends)


class BaselineStep(LockstepFitter):
    """No model pool, and Keras' own step over the summed loss."""

    def build_models(self, precision: str) -> LockstepModels:
        # here, not at the top: imported after gapdemo, whose hook keeps TensorFlow's start-up lines quiet
        import keras

        models = super().build_models(precision)
        outputs = {backend: models.backend_models[backend].outputs[0] for backend in self.backends}
        summed = keras.Model(models.training_model.inputs[0], outputs, name="lockstep")  # the same layers
        return dataclasses.replace(models, training_model=summed)

    def take_cached(self):
        return None

    def give_back(self) -> None:
        pass


class BaselineTrainer(Trainer):
    """gapdemo's Trainer with the parts of the engine before #17."""

    def __init__(self, config, run_dir, events=None, data_loader=None):
        super().__init__(config, run_dir, events, data_loader)
        self.feeder = BaselineFeeder(config, self.events, data_loader)
        self.step = BaselineStep(config)


class BaselineJob(TrainingJob):
    """A TrainingJob that trains through BaselineTrainer."""

    def new_trainer(self, events):
        return BaselineTrainer(self.config, self.run_dir, events, data_loader=self.data_loader)
