"""A dropout layer whose rate can change after the training step was traced.

Keras' Dropout bakes its rate into the traced step as a constant, so two runs that differ only in
dropout rate trace twice. This layer reads the rate from a variable instead: a kept compiled model
(gapdemo.model.compiled_cache) trains the next run at another rate without tracing again, which is what a
sweep over dropout rates does on every worker. Like Keras' Dropout it drops each unit with
probability rate during training, scales the rest by 1 / (1 - rate), and passes inputs through at
inference; its masks come from Keras' seeded uniform draws, so a seed gives the same masks every run.

Under mixed bfloat16 the inputs are bfloat16, yet the mask is drawn and compared in float32, on purpose:
bfloat16 keeps 8 significant bits, so its uniform draws between 0.5 and 1 take only 128 values and a
rate rounds (0.9 becomes 0.8984375): units would drop at another rate than the one asked for. In float32 the
drop probability is the rate under every precision policy, and a seed gives the same masks in both.
"""

from __future__ import annotations

import keras
from keras import ops


class _RateHolder:
    """Holds the rate variable outside Keras' tracking: it is a setting, not a parameter.

    Kept out of the layer's weights, it does not count in the parameter table (the tutorial's
    counts stay exact), and a saved model keeps its rate in the layer's config, as Dropout does.
    """

    def __init__(self, rate: float):
        # autocast=False: under a mixed policy Keras would hand call() the rate cast to the compute dtype
        # (bfloat16), which no longer compares with the float32 draws (issue #37).
        self.variable = keras.Variable(rate, dtype="float32", trainable=False, autocast=False, name="dropout_rate")


@keras.saving.register_keras_serializable(package="gapdemo")
class VariableRateDropout(keras.layers.Layer):
    """Dropout(rate, seed) with set_rate(): the next training step uses the new rate, untraced."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_rate(rate)
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.holder = _RateHolder(self.rate)
        self.supports_masking = True
        self.built = True

    def set_rate(self, rate: float) -> None:
        check_rate(rate)
        self.rate = float(rate)
        self.holder.variable.assign(self.rate)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        rate = self.holder.variable.value  # a float32 tensor (never autocast): Keras' own dropout wants a number
        # draws and rate both float32 under every policy (the module's docstring says why); kept: inputs' shape
        kept = keras.random.uniform(ops.shape(inputs), dtype="float32", seed=self.seed_generator) >= rate
        scale = ops.cast(1.0 / (1.0 - rate), inputs.dtype)  # inverted dropout: the expected sum is unchanged
        return ops.where(kept, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def check_rate(rate: float) -> None:
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"dropout rate must be at least 0 and below 1, got {rate}")


def copy_dropout_rates(target_model, source_model) -> None:
    """Give target_model's variable-rate dropout layers the rates of source_model's (same architecture)."""
    for layer in target_model.layers:
        if isinstance(layer, VariableRateDropout):
            layer.set_rate(source_model.get_layer(layer.name).rate)
