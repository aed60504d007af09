"""Measurements behind the tutorial's four claims, for one seed: numbers in, numbers out.

Each function measures one thing on trained models or saved metrics and returns plain floats
or arrays; gapdemo.claims.over_seeds runs them per seed and gapdemo.claims.summary turns them into a
mean and a spread. TensorFlow (Keras, gapdemo.insight.maps) is imported inside the functions that need it.
"""

from __future__ import annotations

import time

import numpy as np

from gapdemo.config import DataConfig
from gapdemo.data.sources import loaded_data_from_arrays, synthetic_split_counts
from gapdemo.data.synthetic import generate_pets
from gapdemo.insight import evaluation
from gapdemo.model.backends import build_model, check_backend

SHIFTS = (0, 4, 8, 16, 24)  # pixels, as in the tutorial's translation argument
EVALUATION_BATCH = 128  # images per forward pass when scoring saved models
MAX_EVALUATION_IMAGES = 500  # cap on test images scored per run (folder/TFDS test sets can be large)
STEP_WARMUP = 3  # untimed train steps first: tracing and allocation happen there
STEP_REPEATS = 10  # timed train steps; their median is reported

Predict = evaluation.Predict  # uint8 (N, S, S, 3) -> P(dog) (N,)


# --- claim 1: parameters and step time ---------------------------------------------------------


def measure_step_seconds(backend: str, image_size: int, batch_size: int, seed: int = 0,
                         dropout_rate: float = 0.5, bn_momentum: float = 0.9, learning_rate: float = 1e-3,
                         warmup: int = STEP_WARMUP, repeats: int = STEP_REPEATS) -> float:
    """Median seconds of one Adam training step of backend's own model on one fixed batch.

    Every back-end gets the same seeded batch of batch_size images; the first `warmup` steps are
    not timed (tracing, memory allocation).
    """
    import keras  # deferred: Keras and TensorFlow take seconds to import; only the timing needs them here
    import tensorflow as tf  # with keras, above

    check_backend(backend)
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise ValueError(f"need batch_size >= 1, warmup >= 0 and repeats >= 1, got {batch_size}, {warmup}, {repeats}")
    model = build_model(backend, image_size, seed, bn_momentum, dropout_rate)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.random((batch_size, image_size, image_size, 3), dtype=np.float32))
    labels = tf.constant((np.arange(batch_size) % 2).astype(np.float32)[:, None])  # (batch, 1)
    for _ in range(warmup):
        model.train_on_batch(images, labels)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.train_on_batch(images, labels)  # returns the loss as a number, so the step has finished
        timings.append(time.perf_counter() - started)
    return float(np.median(timings))


# --- claim 2: overfitting ----------------------------------------------------------------------


def val_loss_slope(epochs, val_losses) -> float | None:
    """Least-squares slope of validation loss per epoch over the last half of training.

    Positive = validation loss rising = overfitting. None with fewer than two epochs.
    """
    epochs, val_losses = np.asarray(epochs, dtype=float), np.asarray(val_losses, dtype=float)
    if epochs.size != val_losses.size:
        raise ValueError(f"epochs and validation losses differ in length: {epochs.size} vs {val_losses.size}")
    if epochs.size < 2:
        return None
    last_half = max(2, int(np.ceil(epochs.size / 2)))
    slope, _ = np.polyfit(epochs[-last_half:], val_losses[-last_half:], 1)
    return float(slope)


def overfitting_measures(epoch_metrics) -> dict:
    """metrics.csv rows -> {backend: {"epochs", "gap" (train - val accuracy per epoch), "final_gap",
    "val_loss_slope", "final_val_accuracy"}}."""
    measures = {}
    for backend in epoch_metrics["backend"].drop_duplicates():
        rows = epoch_metrics[epoch_metrics["backend"] == backend].sort_values("epoch")
        gaps = (rows["accuracy"] - rows["val_accuracy"]).to_numpy(float)
        measures[str(backend)] = {
            "epochs": rows["epoch"].astype(int).tolist(), "gap": gaps.tolist(),
            "final_gap": float(gaps[-1]), "final_val_accuracy": float(rows["val_accuracy"].iloc[-1]),
            "val_loss_slope": val_loss_slope(rows["epoch"], rows["val_loss"]),
        }
    return measures


# --- shared: predicting with saved models ------------------------------------------------------


def to_model_input(images_uint8) -> np.ndarray:
    return np.asarray(images_uint8, dtype=np.float32) / 255.0


def accuracy(probabilities, labels) -> float:
    """Share of images where P(dog) >= 0.5 agrees with the label (1 = dog)."""
    probabilities, labels = np.asarray(probabilities).reshape(-1), np.asarray(labels).reshape(-1)
    if probabilities.size != labels.size or labels.size == 0:
        raise ValueError(f"need as many probabilities as labels (and at least one), got {probabilities.size}, {labels.size}")
    return float(np.mean((probabilities >= 0.5) == (labels >= 0.5)))


# --- claim 3: localisation ---------------------------------------------------------------------


def score_localization(maps, boxes, image_size: int) -> dict:
    """Mean pointing-game hit rate and mean share of positive map energy inside the box.

    Args:
        maps: (B, h, w) explanation maps, higher = more evidence for the answer given.
        boxes: (B, 4) [x0, y0, x1, y1] in pixels of the image_size model input.

    Returns:
        {"pointing_game", "energy_in_box", "baseline"} in [0, 1]; the baseline is what a uniform
        map scores on energy, and a random peak's expected pointing score: the box's share of the image.
    """
    from gapdemo.insight.maps import energy_in_box, pointing_game, uniform_baseline  # deferred: TensorFlow

    return {"pointing_game": float(np.mean(pointing_game(maps, boxes, image_size))),
            "energy_in_box": float(np.mean(energy_in_box(maps, boxes, image_size))),
            "baseline": float(np.mean(uniform_baseline(boxes, image_size)))}


def localization_measures(models: dict, images_uint8, boxes, image_size: int) -> dict:
    """{backend: {"method", "pointing_game", "energy_in_box"}} plus "baseline", for each back-end's
    own map: CAM for global-pooling back-ends, Grad-CAM for the others (insight.explain)."""
    from gapdemo.insight.maps import explain  # deferred: gapdemo.insight.maps imports TensorFlow (seconds)

    images = to_model_input(images_uint8)
    results, baseline = {}, None
    for backend, model in models.items():
        parts = [explain(model, backend, images[start:start + EVALUATION_BATCH])
                 for start in range(0, len(images), EVALUATION_BATCH)]
        maps = np.concatenate([part["maps"] for part in parts])  # (N, s, s)
        scores = score_localization(maps, boxes, image_size)
        baseline = scores.pop("baseline")
        results[backend] = {"method": parts[0]["method"], **scores}
    return {"backends": results, "baseline": baseline}


# --- claim 4: translation ----------------------------------------------------------------------


def shifted_variants(images, shift: int) -> list[np.ndarray]:
    """The test images moved `shift` pixels right and `shift` pixels left (one array for shift 0).

    Both directions count, so a back-end that happens to prefer one side gains nothing.
    """
    from gapdemo.insight.maps import shift_images  # deferred: gapdemo.insight.maps imports TensorFlow (seconds)

    if shift == 0:
        return [np.asarray(images)]
    return [shift_images(images, shift, 0), shift_images(images, -shift, 0)]


def usable_shifts(image_size: int, shifts=SHIFTS) -> list[int]:
    """The shifts that leave part of the image in place (reflect padding needs shift < size)."""
    return [int(shift) for shift in shifts if 0 <= shift < image_size]


def shift_accuracy(predict: Predict, images_uint8, labels, shifts) -> list[float]:
    """Test accuracy when every image is shifted by each of shifts (pixels, left and right averaged)."""
    curve = []
    for shift in shifts:
        variants = shifted_variants(images_uint8, shift)
        curve.append(float(np.mean([accuracy(predict(v), labels) for v in variants])))
    return curve


def consistency_measures(models: dict, images_uint8) -> dict[str, list[float]]:
    """{backend: share of predictions unchanged by each shift of gapdemo.insight.evaluation.CONSISTENCY_SHIFTS}.

    Shift consistency as gapdemo.insight.evaluation defines it (Zhang 2019): the image against itself moved
    1-16 px left or right, borders reflected like shift_accuracy's.
    """
    predictors = {backend: evaluation.model_predictor(model, compiled=True) for backend, model in models.items()}
    fractions = evaluation.shift_consistency(predictors, images_uint8, evaluation.CONSISTENCY_SHIFTS)
    return {backend: [float(value) for value in values] for backend, values in fractions.items()}


# --- claim 4b: unseen positions ----------------------------------------------------------------


def unseen_position_counts(data_config: DataConfig) -> dict[str, int]:
    """Images per split: as many as the synthetic source draws for data_config (gapdemo.data.sources's split)."""
    counts = synthetic_split_counts(data_config)
    if counts["train"] < 2:
        raise ValueError(f"the unseen-position test needs at least 2 training images, got {counts['train']}")
    return counts


def unseen_position_splits(data_config: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Synthetic pets with every object in the left half (train, validation) or the right half (test).

    Returns {split: (images uint8 (N, S, S, 3), labels int64 (N,), boxes float32 (N, 4))}.
    """
    regions = {"train": "left", "validation": "left", "test": "right"}
    splits = {}
    for index, (name, count) in enumerate(unseen_position_counts(data_config).items()):
        # Offset 100 keeps these draws apart from the ordinary synthetic splits of the same seed.
        seed = int(np.random.SeedSequence([data_config.seed, 100 + index]).generate_state(1)[0])
        splits[name] = generate_pets(count, data_config.image_size, seed, region=regions[name])
    return splits


def unseen_position_loader(data_config: DataConfig, batch_size: int, progress=None):
    """A TrainingJob data_loader: objects left at training and validation, right at test (LoadedData)."""
    report = progress or (lambda message, fraction: None)
    report("Drawing synthetic pets, left half for training, right half for testing", 0.0)
    splits = unseen_position_splits(data_config)
    data = loaded_data_from_arrays(splits, data_config, batch_size,
                                   dataset="synthetic (objects left at training, right at test)")
    report("Data ready", 1.0)
    return data


def unseen_position_measures(models: dict, data) -> dict:
    """{backend: {"left_accuracy", "right_accuracy", "drop"}}: held-out left-half objects vs right-half ones."""
    results = {}
    for backend, model in models.items():
        predict = evaluation.model_predictor(model, EVALUATION_BATCH)  # uint8 images in
        left = accuracy(predict(data.validation_images), data.validation_labels)
        right = accuracy(predict(data.test_images), data.test_labels)
        results[backend] = {"left_accuracy": left, "right_accuracy": right, "drop": left - right}
    return results
