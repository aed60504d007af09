"""Where each back-end goes wrong: confusion matrices, misclassified images and shift consistency.

evaluate_run() loads a finished run's models and test split and fills in the maths of
gapdemo.insight.predictions (confusion, per-class numbers, mistakes) for every back-end.

Shift consistency (after Zhang 2019, "Making convolutional networks shift-invariant again"): for a
shift of s pixels, every test image is moved s pixels right and, separately, s pixels left with
gapdemo.insight.maps.shift_images (output[y, x] = input[y, x - s], the uncovered border filled by
reflection, the same move as the translation claim's accuracy curve). The consistency at s is the
fraction of (image, direction) pairs whose predicted class equals the class predicted for the
unshifted image: 1.0 = no prediction ever flips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gapdemo.data.sources import load_test_split as load_test_images
from gapdemo.insight.predictions import backend_report, predicted_classes, prediction_confidence
from gapdemo.runs import has_models, load_models, read_status
from gapdemo.validation import stored_data_config

CONSISTENCY_SHIFTS = tuple(range(1, 17))  # pixels: two periods of the head's total stride (8)
EVALUATION_BATCH = 250  # images per call into a model: the whole synthetic test split in one call
# States whose saved models no longer change: a run that stopped, died or failed after an epoch keeps
# that epoch's models, which are worth a look too.
EVALUABLE_STATES = ("finished", "stopped", "interrupted", "failed")

# uint8 images (B, S, S, 3) -> P(class 1) (B,)
Predict = Callable[[np.ndarray], np.ndarray]


# --- shift consistency -------------------------------------------------------------------------


def shift_consistency(predictors: dict[str, Predict], images_uint8, shifts=CONSISTENCY_SHIFTS) -> dict[str, np.ndarray]:
    """{backend: (len(shifts),) fraction of predictions unchanged by each shift} (see the module docstring).

    Each shifted copy of the images is made once and handed to every predictor.
    """
    from gapdemo.insight.maps import shift_images  # deferred: imports TensorFlow (~3 s)

    images = np.asarray(images_uint8)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"need a non-empty batch of images (N, S, S, 3), got shape {images.shape}")
    width = images.shape[2]
    bad = [shift for shift in shifts if int(shift) != shift or not 0 < shift < width]
    if bad:
        raise ValueError(f"shifts must be whole pixels from 1 to {width - 1} (the image width - 1), got {bad}")
    original = {backend: predicted_classes(predict(images)) for backend, predict in predictors.items()}
    agreement = {backend: np.zeros(len(shifts)) for backend in predictors}
    for position, shift in enumerate(shifts):
        for direction in (1, -1):
            moved = shift_images(images, direction * int(shift), 0)
            for backend, predict in predictors.items():
                agreement[backend][position] += np.mean(predicted_classes(predict(moved)) == original[backend]) / 2
    return agreement


# --- a run's test split ------------------------------------------------------------------------


def model_predictor(model, batch_size: int = EVALUATION_BATCH, compiled: bool = False) -> Predict:
    """A Predict for a Keras model with one P(class 1) output: uint8 in, batches in inference mode.

    compiled=True traces the model once (~0.2 s CPU at 100x100); each call then costs ~30% less CPU
    than eager, which pays off only over many calls, such as shift_consistency's 33 per model.
    """
    forward = lambda images: model(images, training=False)  # noqa: E731
    if compiled:
        import tensorflow as tf  # deferred: ~3 s; listing and checking runs needs none

        forward = tf.function(forward, input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)])

    def predict(images_uint8: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(images_uint8), batch_size):
            batch = np.asarray(images_uint8[start:start + batch_size], dtype=np.float32) / 255.0  # (B, S, S, 3)
            parts.append(np.asarray(forward(batch)).reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0)
    return predict


@dataclass
class RunEvaluation:
    """A run's back-ends on its test split, with the images so a page can show the mistakes."""

    run_id: str
    state: str  # the run's state when evaluated: one of EVALUABLE_STATES
    epochs_completed: int
    class_names: list[str]  # index = label
    images: np.ndarray  # uint8 (N, S, S, 3), the test split in the data source's order
    labels: np.ndarray  # int64 (N,)
    probabilities: dict[str, np.ndarray]  # backend -> (N,) P(class 1)
    reports: dict[str, dict] = field(default_factory=dict)  # backend -> backend_report(...)
    # "data" (loading the test split), "models" (loading them; 0 when handed in), "predict"
    seconds: dict[str, float] = field(default_factory=dict)

    def predicted(self) -> dict[str, np.ndarray]:
        """{backend: (N,) predicted classes}."""
        return {backend: predicted_classes(values) for backend, values in self.probabilities.items()}

    def answers(self, index: int) -> dict[str, dict]:
        """What every back-end said about test image index: {backend: {"label", "probability", "correct"}}."""
        return {backend: {"label": self.class_names[int(values[index] >= 0.5)],
                          "probability": float(prediction_confidence(values[index:index + 1])[0]),
                          "correct": bool(int(values[index] >= 0.5) == self.labels[index])}
                for backend, values in self.probabilities.items()}

    def to_dict(self) -> dict:
        """JSON-ready: per back-end the confusion (rows true, columns predicted, class-name order), per-class
        numbers keyed by class name (None where a class has no image), and the mistakes, most confident first."""
        return {
            "run_id": self.run_id, "state": self.state, "epochs_completed": self.epochs_completed,
            "class_names": list(self.class_names), "test_size": int(len(self.labels)),
            "seconds": {name: round(value, 3) for name, value in self.seconds.items()},
            "backends": {backend: _report_dict(report, self.labels, self.probabilities[backend], self.class_names)
                         for backend, report in self.reports.items()},
        }


def _by_class(values, class_names) -> dict:
    return {name: None if np.isnan(value) else round(float(value), 6) for name, value in zip(class_names, values, strict=True)}


def _report_dict(report: dict, labels, probabilities, class_names) -> dict:
    predicted, confidence = predicted_classes(probabilities), prediction_confidence(probabilities)
    return {
        "accuracy": None if np.isnan(report["accuracy"]) else round(report["accuracy"], 6),
        "confusion": report["confusion"].tolist(),
        "per_class_accuracy": _by_class(report["per_class_accuracy"], class_names),
        "precision": _by_class(report["precision"], class_names),
        # probability = the model's probability of the (wrong) class it predicted
        "misclassified": [{"index": int(index), "true": class_names[labels[index]],
                           "predicted": class_names[predicted[index]], "probability": round(float(confidence[index]), 6)}
                          for index in report["misclassified"]],
    }


def check_evaluable(run_dir) -> dict:
    """The run's status when it can be evaluated; ValueError saying why not (still training, no models)."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    state = status.get("state", "unknown")
    if state not in EVALUABLE_STATES:
        detail = "is still training" if state in ("queued", "running", "stopping") else "has no readable status.json"
        raise ValueError(f"run {run_dir.name} {detail}; evaluate a finished run (or one stopped after an epoch)")
    if not has_models(run_dir):
        raise ValueError(f"run {run_dir.name} ({state}) has no saved models: it ended before its first epoch")
    return status


def load_test_split(run_dir, *, served: bool):
    """The run's test split, loaded again from its saved data settings: (images, labels, class_names).

    served: asked by a page served to others, so the run's data must lie under the data roots (the
    gate's data check: a run folder placed in the shared runs folder could name any folder).
    """

    return load_test_images(stored_data_config(run_dir, served=served).data)


def evaluate_run(run_dir, models: dict | None = None, *, served: bool) -> RunEvaluation:
    """Every back-end of a finished run on its test split.

    Args:
        run_dir: the run folder.
        models: {backend: keras.Model} already loaded (a page's cache); None = gapdemo.runs.load_models.
        served: asked by a page served to others (see load_test_split).

    Raises:
        ValueError when the run is still training or has no models; gapdemo.data.sources.DataError (a
        ValueError) when its data can no longer be loaded.
    """
    run_dir = Path(run_dir)
    status = check_evaluable(run_dir)
    started = time.perf_counter()
    images, labels, class_names = load_test_split(run_dir, served=served)
    loaded = time.perf_counter()
    models = load_models(run_dir) if models is None else models
    ready = time.perf_counter()
    probabilities = {backend: model_predictor(model)(images) for backend, model in models.items()}
    predicted = time.perf_counter()
    return RunEvaluation(
        run_id=run_dir.name, state=status.get("state", "unknown"),
        epochs_completed=int(status.get("epochs_completed", 0)), class_names=class_names,
        images=images, labels=labels, probabilities=probabilities,
        reports={backend: backend_report(labels, values, class_names) for backend, values in probabilities.items()},
        seconds={"data": loaded - started, "models": ready - loaded, "predict": predicted - ready},
    )


def explain_images(model, backend: str, images_uint8) -> tuple[np.ndarray, str]:
    """Where backend looked for its answer: (uint8 (B, S, S, 3) heat maps over the images, "CAM" | "Grad-CAM")."""
    from gapdemo.insight.maps import explain, overlay_heatmap  # deferred: imports TensorFlow (~3 s)

    images = np.asarray(images_uint8)
    if len(images) == 0:
        return np.zeros((0, *images.shape[1:]), np.uint8), ""
    explanation = explain(model, backend, images.astype(np.float32) / 255.0)
    overlays = np.stack([overlay_heatmap(image, heat_map) for image, heat_map in zip(images, explanation["maps"], strict=True)])
    return overlays, explanation["method"]
