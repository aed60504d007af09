"""Keeps the last run's compiled lockstep model, so the next run of the same shape skips tracing.

Tracing the three-head training step takes about 3.5 s at the defaults, most of the wait between
Start and the first curve point once TensorFlow is loaded. A run that ends gives its models back
here; the next run whose architecture matches (back-ends, image size, batch-norm momentum,
precision, steps per call) takes them and loads fresh state into the same variables: the initial
weights (and dropout rate and seed state) of a model built for its own seed, a zeroed optimizer and
its own learning rate. The traced functions, which only refer to the variables, stay valid. A run of
another shape builds afresh. One entry per process: a server trains one run at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from gapdemo.model.variable_dropout import copy_dropout_rates

_lock = threading.Lock()
_kept: dict[tuple, Any] = {}  # at most one entry: shape key -> CachedModels


@dataclass
class CachedModels:
    """A compiled lockstep model and what was traced for it (see gapdemo.training.fitter.LockstepFitter.prepare)."""

    models: Any  # gapdemo.model.backends.LockstepModels, compiled
    recalibration_forward: Any  # gapdemo.model.batchnorm.training_forward(models.training_model)


def shape_key(config) -> tuple:
    """What a kept model must match to train config's run (a RunConfig); the rest is state or data."""
    model, train = config.model, config.train
    # The dropout rate is not part of it: it lives in a variable (gapdemo.model.variable_dropout).
    return (tuple(model.backends), config.data.image_size, model.bn_momentum, train.precision,
            train.steps_per_execution)


def take(key: tuple) -> CachedModels | None:
    """The kept entry when it has this key (it leaves the cache), else None."""
    with _lock:
        return _kept.pop(key, None)


def give_back(key: tuple, cached: CachedModels) -> None:
    """Keep cached for the next run (replacing any other entry)."""
    with _lock:
        _kept.clear()
        _kept[key] = cached


def load_fresh_state(pooled_model, fresh_model, learning_rate: float) -> None:
    """Give pooled_model fresh_model's variables (weights, batch-norm statistics, seed states) and a new optimizer state.

    Both models have the same architecture, so their variables line up one to one.
    """
    for target, source in zip(pooled_model.variables, fresh_model.variables, strict=True):
        target.assign(source.numpy())
    copy_dropout_rates(pooled_model, fresh_model)
    optimizer = pooled_model.optimizer
    for variable in optimizer.variables:  # the step counter and Adam's moments start again from zero
        variable.assign(np.zeros(variable.shape, variable.dtype))
    optimizer.learning_rate = learning_rate
