"""The lockstep training model: every back-end trains on the same batch, one back-end after another.

The back-ends share no weights, so the gradient of their summed loss is, for each back-end's
weights, the gradient of that back-end's own loss. Keras' own training step differentiates the sum
in one pass and so keeps every head's activations alive at once; this step takes the back-ends'
gradients in turn (each forward pass waits for the previous back-end's gradients), so only one
head's activations are alive at a time. At 200 px and batch 64 one head's conv activations are
about 1.3 GB (batch x 198 x 198 x 32 floats, several times over); three at once did not fit the
4 GB target of benchmarks/real_photos.py. All gradients then go into one optimizer update, as before.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class BackendViews:
    """Holds the per-back-end models out of Keras' reach: Keras would track them as sublayers of the
    lockstep model, though they are only views of its own layers."""

    def __init__(self, models: dict):
        self.models = models


class LockstepModel(keras.Model):
    """image -> {backend: P(dog)}, built functionally; fit() trains the back-ends in turn on each batch."""

    def set_backend_models(self, backend_models: dict) -> None:
        """backend -> single-output model on this model's input and layers (in output order)."""
        self.backend_views = BackendViews(dict(backend_models))
        self.backend_loss = keras.losses.BinaryCrossentropy()  # what compile's "binary_crossentropy" computes

    def train_step(self, data):
        images, labels = data[0], data[1]  # (batch, s, s, 3), {backend: (batch,)}
        predictions, gradients, variables, previous = {}, [], [], []
        for backend, model in self.backend_views.models.items():
            with tf.control_dependencies(previous):  # start this head once the previous one's gradients exist
                inputs = tf.identity(images)
            with tf.GradientTape() as tape:
                predictions[backend] = model(inputs, training=True)
                loss = self.backend_loss(labels[backend], predictions[backend])
                loss = self.optimizer.scale_loss(loss)
            step_gradients = tape.gradient(loss, model.trainable_weights)
            gradients += step_gradients
            variables += model.trainable_weights
            previous = [gradient for gradient in step_gradients if gradient is not None]
        self.optimizer.apply(gradients, variables)
        return self.record_metrics(images, labels, predictions)

    def record_metrics(self, images, labels, predictions) -> dict:
        """Keras' logs for the step: total and per-output losses, and the compiled metrics."""
        total = self.compute_loss(x=images, y=labels, y_pred=predictions)  # also updates '<backend>_loss'
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(total, sample_weight=tf.shape(images)[0])
        return self.compute_metrics(images, labels, predictions)


def compile_lockstep_model(model, backends, learning_rate: float, element_spec=None, **compile_options) -> None:
    """Adam + binary cross-entropy + accuracy per back-end output; then its variables, before any trace.

    Keras creates the optimizer's slots and the metrics' variables lazily, inside the first trace of
    its training step, and a tf.function that creates variables on its first call is traced a second
    time: about 3 s more before the first curve point of a three-back-end job (benchmarks/RESULTS.md,
    section 5). element_spec: the training dataset's (images, {backend: labels}) specs, of which only
    shapes and dtypes are read; None leaves the variables to Keras.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss={b: "binary_crossentropy" for b in backends},
                  metrics={b: ["accuracy"] for b in backends}, **compile_options)
    if element_spec is not None and hasattr(model, "_symbolic_build"):  # what Keras runs under a strategy
        model._symbolic_build(data_batch=element_spec)
