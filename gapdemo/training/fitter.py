"""A run's lockstep model, compiled or taken from the compiled-model cache, fitted one epoch at a time.

A compiled model of the same shape left by the run before (gapdemo.model.compiled_cache) is reused with this
run's fresh initial state: its traced training step saves seconds before the first batch. Saved
models and probes compute in float32 whatever the run trained in, so every reader of a run folder
gets float32 outputs; under mixed precision a float32 twin takes the trained weights.
"""

from __future__ import annotations

from gapdemo.config import RunConfig
from gapdemo.model import compiled_cache
from gapdemo.model.backends import LockstepModels, build_lockstep_models
from gapdemo.model.batchnorm import training_forward
from gapdemo.model.lockstep import compile_lockstep_model
from gapdemo.model.precision import dtype_policy


class LockstepFitter:
    """Builds and compiles a run's lockstep model (or takes the cached one), trains it an epoch at a time,
    and hands the cache the compiled model back at the end."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.backends = list(config.model.backends)
        self.pool_key = compiled_cache.shape_key(config)  # what a reusable compiled model must match
        self.cached: compiled_cache.CachedModels | None = None
        self.models: LockstepModels | None = None  # the compiled models that train
        self.export_models: LockstepModels | None = None  # the float32 models that are saved and probed

    def prepare(self, element_spec) -> LockstepModels:
        """Build and compile the lockstep model (and, under mixed precision, its float32 twin).

        element_spec: the training dataset's (images, {backend: labels}) specs, read to create the
        compiled model's variables before its first trace.
        """
        train = self.config.train
        fresh = self.build_models(train.precision)
        cached = self.take_cached()
        if cached is None:
            compile_lockstep_model(fresh.training_model, self.backends, train.learning_rate, element_spec,
                                   steps_per_execution=train.steps_per_execution)
            # traced once, reused every epoch
            cached = compiled_cache.CachedModels(fresh, training_forward(fresh.training_model))
        else:
            compiled_cache.load_fresh_state(cached.models.training_model, fresh.training_model, train.learning_rate)
        self.cached, self.models = cached, cached.models
        self.export_models = self.models if train.precision == "float32" else self.build_models("float32")
        return self.models

    def build_models(self, precision: str) -> LockstepModels:
        """Fresh lockstep models with the run's seed, their layers computing in precision."""
        model = self.config.model
        with dtype_policy(precision):
            return build_lockstep_models(self.backends, self.config.data.image_size, model.seed, model.bn_momentum,
                                         model.dropout_rate)

    def take_cached(self) -> compiled_cache.CachedModels | None:
        """The compiled model the run before left, when it has this run's shape."""
        return compiled_cache.take(self.pool_key)

    def give_back(self) -> None:
        """Keep the compiled model for the next run of the same shape."""
        if self.cached is not None:
            compiled_cache.give_back(self.pool_key, self.cached)

    @property
    def recalibration_forward(self):
        """The training model's forward pass in training mode, traced once (gapdemo.model.batchnorm)."""
        return self.cached.recalibration_forward

    def train_epoch(self, dataset, epoch_index: int, callbacks: list) -> dict:
        """Fit epoch epoch_index (from 0) of dataset; Keras' logs at its end (means over the epoch)."""
        history = self.models.training_model.fit(dataset, epochs=epoch_index + 1, initial_epoch=epoch_index,
                                                 verbose=0, shuffle=False, callbacks=callbacks)
        return {name: values[-1] for name, values in history.history.items()}

    def synced_export_models(self) -> LockstepModels:
        """The models to save and probe, holding the trained weights (copied to the float32 twin if any)."""
        if self.export_models is not self.models:
            self.export_models.training_model.set_weights(self.models.training_model.get_weights())
        return self.export_models


def metric_key(backends: list[str], backend: str, name: str) -> str:
    """Keras names metrics '<output>_<name>', except for a model with a single output."""
    return name if len(backends) == 1 else f"{backend}_{name}"


def epoch_rows(backends: list[str], epoch: int, train_logs: dict, validation: dict) -> list[dict]:
    """One row per back-end (gapdemo.runs.EPOCH_FIELDS) from Keras' training and validation logs."""

    def logged(logs: dict, backend: str, name: str) -> float:
        return float(logs.get(metric_key(backends, backend, name), float("nan")))

    return [{"backend": b, "epoch": epoch, "loss": logged(train_logs, b, "loss"),
             "accuracy": logged(train_logs, b, "accuracy"), "val_loss": logged(validation, b, "loss"),
             "val_accuracy": logged(validation, b, "accuracy")} for b in backends]
