"""The tutorial's conv head, the registry of back-ends and the parameter table.

Layer names are a contract used by training and insight: in every model, back-end ``b``'s
last-conv-block output is the layer ``f"{b}_feature_maps"``, its final sigmoid unit is
``f"{b}_classifier"``, and its probability output is named ``b``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gapdemo.config import validate_image_size

if TYPE_CHECKING:
    import keras

# Keras is imported inside the builders, not here: the dashboard reads the registry (labels,
# descriptions) to draw its first screen, and importing TensorFlow costs seconds.

HEAD_FILTERS = (32, 32, 64)  # the tutorial's three conv blocks
HEAD_STRIDE = 2 ** len(HEAD_FILTERS)  # each conv block ends in a 2x2 max pool: 8 px per feature-map cell


@dataclass(frozen=True)
class BackendSpec:
    """One back-end: how to build it on the head's feature maps, how to describe and draw it.

    A new back-end is one entry in BACKENDS; the UI, the charts and the CLI read everything from it.
    """

    label: str  # shown in the UI and charts
    description: str  # one sentence for the UI
    builder: Callable[..., keras.KerasTensor]  # (feature_maps, backend, seed, bn_momentum, dropout_rate) -> P(dog)
    # Pools the last feature maps globally into one sigmoid unit, so the class activation map is
    # exact (CAM); the others are explained by Grad-CAM.
    uses_cam: bool
    color: str  # its colour on every chart (Okabe-Ito, colour-blind friendly): warm = dense, cool = pooling


def feature_layer_name(backend: str) -> str:
    return f"{backend}_feature_maps"


def classifier_layer_name(backend: str) -> str:
    return f"{backend}_classifier"


def _seeded(seed: int, offset: int) -> keras.initializers.Initializer:
    import keras  # deferred: Keras takes seconds; the page reads the registry first

    # A fixed seed per layer position makes the head's initial weights depend on the seed only,
    # not on which back-end sits on top or how many models were built before.
    return keras.initializers.GlorotUniform(seed=seed * 1000 + offset)


def build_head(inputs, prefix: str, seed: int, bn_momentum: float):
    """The tutorial's head: 3 x (Conv 3x3 valid -> BN -> ReLU -> MaxPool 2)."""
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    features = inputs
    for index, filters in enumerate(HEAD_FILTERS):
        last = index == len(HEAD_FILTERS) - 1
        features = layers.Conv2D(
            filters, 3, padding="valid", kernel_initializer=_seeded(seed, index),
            name=f"{prefix}_conv{index + 1}",
        )(features)
        features = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn{index + 1}")(features)
        features = layers.ReLU(name=f"{prefix}_relu{index + 1}")(features)
        pool_name = feature_layer_name(prefix) if last else f"{prefix}_pool{index + 1}"
        features = layers.MaxPooling2D(2, name=pool_name)(features)
    return features  # (batch, s, s, 64), s = 10 at 100x100


def _classifier(features, backend: str, seed: int):
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    return layers.Dense(
        1, activation="sigmoid", kernel_initializer=_seeded(seed, 99), name=classifier_layer_name(backend),
        dtype="float32",  # under mixed bfloat16 too: probabilities and losses keep float32's precision
    )(features)


def _fully_connected(features, backend, seed, bn_momentum, dropout_rate):
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    features = layers.Flatten(name=f"{backend}_flatten")(features)
    features = layers.BatchNormalization(momentum=bn_momentum, name=f"{backend}_fc_bn1")(features)
    features = layers.Dense(100, activation="relu", kernel_initializer=_seeded(seed, 10), name=f"{backend}_fc1")(features)
    if dropout_rate is not None:
        from gapdemo.model.variable_dropout import VariableRateDropout  # deferred: it imports Keras

        # The rate lives in a variable, so a kept compiled model trains another rate untraced.
        features = VariableRateDropout(dropout_rate, seed=seed, name=f"{backend}_dropout")(features)
    features = layers.BatchNormalization(momentum=bn_momentum, name=f"{backend}_fc_bn2")(features)
    features = layers.Dense(100, activation="relu", kernel_initializer=_seeded(seed, 11), name=f"{backend}_fc2")(features)
    return _classifier(features, backend, seed)


def _build_fc(features, backend, seed, bn_momentum, dropout_rate):
    return _fully_connected(features, backend, seed, bn_momentum, None)


def _build_fc_dropout(features, backend, seed, bn_momentum, dropout_rate):
    return _fully_connected(features, backend, seed, bn_momentum, dropout_rate)


def _build_gap(features, backend, seed, bn_momentum, dropout_rate):
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    pooled = layers.GlobalAveragePooling2D(name=f"{backend}_global_average")(features)  # (batch, 64)
    return _classifier(pooled, backend, seed)


def _build_gmp(features, backend, seed, bn_momentum, dropout_rate):
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    pooled = layers.GlobalMaxPooling2D(name=f"{backend}_global_max")(features)  # (batch, 64)
    return _classifier(pooled, backend, seed)


def _build_avgpool_flatten(features, backend, seed, bn_momentum, dropout_rate):
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    pooled = layers.AveragePooling2D(2, name=f"{backend}_average_pool")(features)  # (batch, s/2, s/2, 64)
    return _classifier(layers.Flatten(name=f"{backend}_flatten")(pooled), backend, seed)


BACKENDS: dict[str, BackendSpec] = {
    "fc": BackendSpec(
        "FC", "Flatten -> BN -> Dense 100 -> BN -> Dense 100 -> sigmoid (the tutorial's classifier)",
        _build_fc, uses_cam=False, color="#D55E00",  # vermillion
    ),
    "fc_dropout": BackendSpec(
        "FC + dropout", "The FC back-end with dropout after its first dense layer",
        _build_fc_dropout, uses_cam=False, color="#E69F00",  # orange
    ),
    "gap": BackendSpec(
        "GAP", "Global average pooling -> one sigmoid unit (real GAP)",
        _build_gap, uses_cam=True, color="#0072B2",  # blue
    ),
    "avgpool_flatten": BackendSpec(
        "AvgPool+Flatten (notebook's 'GAP')",
        "AveragePooling2D(2) -> Flatten -> sigmoid: what the tutorial's notebook actually ran",
        _build_avgpool_flatten, uses_cam=False, color="#CC79A7",  # reddish purple
    ),
    "gmp": BackendSpec(
        "GMP", "Global max pooling -> one sigmoid unit",
        _build_gmp, uses_cam=True, color="#009E73",  # bluish green
    ),
}


def check_backend(backend: str) -> BackendSpec:
    """Return the registered spec for backend, or raise ValueError naming the valid keys."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown back-end {backend!r}; valid back-ends: {', '.join(BACKENDS)}")
    return BACKENDS[backend]


def add_backend(inputs, backend: str, seed: int = 0, bn_momentum: float = 0.9, dropout_rate: float = 0.5):
    """Add one head + back-end branch on inputs; return (feature_maps, probability) tensors."""
    from keras import layers  # deferred: Keras takes seconds; the page reads the registry first

    spec = check_backend(backend)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout rate must be at least 0 and below 1, got {dropout_rate}")
    feature_maps = build_head(inputs, backend, seed, bn_momentum)
    logits_or_probability = spec.builder(feature_maps, backend, seed, bn_momentum, dropout_rate)
    # (batch, 1) = P(dog); float32 under mixed precision too, as its classifier (the loss reads it)
    probability = layers.Identity(name=backend, dtype="float32")(logits_or_probability)
    return feature_maps, probability


def build_model(backend: str, image_size: int = 100, seed: int = 0, bn_momentum: float = 0.9,
                dropout_rate: float = 0.5) -> keras.Model:
    """One back-end on its own head: image (batch, size, size, 3) in [0, 1] -> P(dog) (batch, 1)."""
    import keras  # deferred: Keras takes seconds; the page reads the registry first

    validate_image_size(image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    _, probability = add_backend(inputs, backend, seed, bn_momentum, dropout_rate)
    return keras.Model(inputs, probability, name=backend)


@dataclass
class LockstepModels:
    """Several back-ends, each on its own head, sharing one input so they see the same batches.

    All models below share layers (and so weights) with ``training_model``.
    """

    training_model: keras.Model  # image -> {backend: P(dog)}
    backend_models: dict[str, keras.Model]  # backend -> single-output model, saved per epoch
    probe_model: keras.Model  # image -> {backend: feature maps (batch, s, s, 64)}


def build_lockstep_models(backends, image_size: int = 100, seed: int = 0, bn_momentum: float = 0.9,
                          dropout_rate: float = 0.5) -> LockstepModels:
    """Build every back-end on its own copy of the head; all heads start from identical weights.

    The training model takes the back-ends' gradients in turn (gapdemo.model.lockstep), holding one
    head's activations at a time.
    """
    import keras  # deferred: Keras takes seconds; the page reads the registry first

    from gapdemo.model.lockstep import LockstepModel  # deferred: it imports Keras and TensorFlow

    validate_image_size(image_size)
    if not backends:
        raise ValueError("choose at least one back-end")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    feature_maps, probabilities = {}, {}
    for backend in backends:
        feature_maps[backend], probabilities[backend] = add_backend(inputs, backend, seed, bn_momentum, dropout_rate)
    backend_models = {b: keras.Model(inputs, probabilities[b], name=b) for b in backends}
    training_model = LockstepModel(inputs, probabilities, name="lockstep")
    training_model.set_backend_models(backend_models)
    return LockstepModels(training_model=training_model, backend_models=backend_models,
                          probe_model=keras.Model(inputs, feature_maps, name="probes"))


def _count(weights) -> int:
    return int(sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size) for w in weights))


def count_parameters(model: keras.Model, backend: str) -> dict[str, int]:
    """Split model's parameters into head (layers prefixed backend_conv/bn) and back-end."""
    head_layers = {f"{backend}_{kind}{i}" for kind in ("conv", "bn") for i in range(1, 4)}
    head, rest = [], []
    for layer in model.layers:
        (head if layer.name in head_layers else rest).append(layer)
    head_total = sum(_count(layer.weights) for layer in head)
    head_trainable = sum(_count(layer.trainable_weights) for layer in head)
    backend_total = sum(_count(layer.weights) for layer in rest)
    backend_trainable = sum(_count(layer.trainable_weights) for layer in rest)
    return {
        "head_params": head_total,
        "head_trainable_params": head_trainable,
        "backend_params": backend_total,
        "backend_trainable_params": backend_trainable,
        "total_params": head_total + backend_total,
        "trainable_params": head_trainable + backend_trainable,
        "non_trainable_params": head_total + backend_total - head_trainable - backend_trainable,
    }


def parameter_table(backends, image_size: int = 100, dropout_rate: float = 0.5) -> dict[str, dict[str, int]]:
    """Parameter counts per back-end at image_size (head / back-end / total / trainable)."""
    for backend in backends:
        check_backend(backend)
    return {
        backend: count_parameters(build_model(backend, image_size, dropout_rate=dropout_rate), backend)
        for backend in backends
    }


def dense_after_flatten_params(map_size: int = 7, channels: int = 64, units: int = 500) -> int:
    """The tutorial's example: a map_size x map_size x channels map flattened into `units` units."""
    return map_size * map_size * channels * units + units
