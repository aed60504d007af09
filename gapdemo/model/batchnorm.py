"""Batch-norm recalibration: population statistics for the current weights, before each validation.

Short runs validate with moving statistics that lag far behind the weights (ModelConfig.bn_momentum);
averaging the batch statistics of a few training batches at the current weights fixes that
(TrainConfig.recalibrate_bn). gapdemo.training.fitter and epoch_end call these; they know nothing of runs or events.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def training_forward(model):
    """model's forward pass in training mode as one tf.function, to pass to recalibrate_batch_norm.

    Build it once per model: tracing the three heads' forward pass takes seconds, which a fresh
    function every epoch paid every epoch.
    """
    # (None, size, size, 3): any batch size, so the smaller last batch does not trace it again
    signature = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)]
    return tf.function(lambda images: model(images, training=True), input_signature=signature)


def recalibrate_batch_norm(model, dataset, batch_count: int, forward=None) -> None:
    """Set every BN layer's moving mean/variance to the average batch statistics of batch_count batches.

    With momentum 0, a forward pass in training mode leaves each layer's batch statistics in its
    moving variables (training mode normalises with batch statistics, so the old values do not
    matter); averaging them over several batches gives population statistics for the current weights.
    forward: training_forward(model), reused across calls; momentum is read when it is traced, and
    it is 0 whenever this function calls it, so any (re)trace bakes in 0.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or batch_count < 1:
        return
    momenta = [layer.momentum for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in layers]
    forward = forward or training_forward(model)
    seen = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # read when the forward pass is traced, below
        for images, _ in dataset.take(batch_count):
            forward(images)
            seen += 1
            for total, layer in zip(sums, layers, strict=True):
                total[0] += np.asarray(layer.moving_mean)
                total[1] += np.asarray(layer.moving_variance)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    for (mean_total, variance_total), layer in zip(sums, layers, strict=True):
        layer.moving_mean.assign(mean_total / max(seen, 1))
        layer.moving_variance.assign(variance_total / max(seen, 1))
