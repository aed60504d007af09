"""The end of an epoch's training: batch-norm recalibration, then validation.

Short runs validate with moving statistics that lag far behind the weights (ModelConfig.bn_momentum);
averaging the batch statistics of a few training batches at the current weights first gives
population statistics (TrainConfig.recalibrate_bn, gapdemo.model.batchnorm), so validation measures
the weights as they are.
"""

from __future__ import annotations

from gapdemo.config import TrainConfig
from gapdemo.model.batchnorm import recalibrate_batch_norm
from gapdemo.training.fitter import LockstepFitter


def validate(step: LockstepFitter, train: TrainConfig, train_ds, val_ds, callbacks: list) -> dict:
    """Recalibrate batch norm on train_ds's first batches (when train.recalibrate_bn), then evaluate
    step's training model on val_ds; Keras' validation logs."""
    model = step.models.training_model
    if train.recalibrate_bn:
        recalibrate_batch_norm(model, train_ds, train.recalibration_batches, step.recalibration_forward)
    return model.evaluate(val_ds, verbose=0, return_dict=True, callbacks=callbacks)
