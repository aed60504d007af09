"""Maths on a back-end's predictions: classes, confidence, confusion, per-class numbers and mistakes.

Works on plain arrays (labels (N,), P(class 1) (N,), predicted classes (N,)) and returns numpy arrays;
gapdemo.insight.evaluation fills them in from a finished run. Class 1 is "dog" in every source built in
(index = label, in class-name order).
"""

from __future__ import annotations

import numpy as np


def predicted_classes(probabilities) -> np.ndarray:
    """P(class 1) (N,) -> int64 (N,): 1 where P >= 0.5, the label gapdemo.insight.maps gives."""
    return (np.asarray(probabilities, dtype=np.float64).reshape(-1) >= 0.5).astype(np.int64)


def prediction_confidence(probabilities) -> np.ndarray:
    """P(class 1) (N,) -> (N,): the probability of the class predicted, in [0.5, 1]."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    return np.maximum(probabilities, 1.0 - probabilities)


def check_pair(labels, predicted) -> tuple[np.ndarray, np.ndarray]:
    """labels and predicted classes as int64 (N,) each; ValueError unless there is one prediction per label."""
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(f"need one prediction per label, got {predicted.size} predictions for {labels.size} labels")
    return labels.astype(np.int64), predicted.astype(np.int64)


def confusion_matrix(labels, predicted, class_count: int = 2) -> np.ndarray:
    """(class_count, class_count) int64 counts: row = true class, column = predicted class."""
    labels, predicted = check_pair(labels, predicted)
    for name, values in (("labels", labels), ("predictions", predicted)):
        if values.size and (values.min() < 0 or values.max() >= class_count):
            raise ValueError(f"{name} must be class indices 0..{class_count - 1}, got {sorted(set(values.tolist()))}")
    counts = np.zeros((class_count, class_count), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def share(numerators, denominators) -> np.ndarray:
    """numerators / denominators, NaN where a denominator is 0 (no image to judge by)."""
    numerators, denominators = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    return np.divide(numerators, denominators, out=np.full(numerators.shape, np.nan), where=denominators > 0)


def per_class_accuracy(confusion) -> np.ndarray:
    """(C,) share of each true class labelled correctly (its row's diagonal / row total); = recall."""
    confusion = np.asarray(confusion)
    return share(np.diag(confusion), confusion.sum(axis=1))


def precision(confusion) -> np.ndarray:
    """(C,) share of each predicted class that is right (its column's diagonal / column total)."""
    confusion = np.asarray(confusion)
    return share(np.diag(confusion), confusion.sum(axis=0))


def rank_by_confidence(indices, probabilities) -> np.ndarray:
    """indices reordered by the confidence of the prediction, most confident first (ties by index)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    confidence = prediction_confidence(probabilities)[indices]
    return indices[np.lexsort((indices, -confidence))]


def misclassified_indices(labels, probabilities) -> np.ndarray:
    """Indices of the images predicted wrongly, most confident mistake first."""
    labels, predicted = check_pair(labels, predicted_classes(probabilities))
    return rank_by_confidence(np.flatnonzero(labels != predicted), probabilities)


def filter_mistakes(labels, predicted: dict, backend: str, true_class: int | None = None,
                    right_backend: str | None = None) -> np.ndarray:
    """Indices (ascending) where backend predicts wrongly, optionally narrowed down.

    Args:
        labels: (N,) true classes.
        predicted: {backend: (N,) predicted classes}.
        backend: the back-end whose mistakes are wanted.
        true_class: keep only images of this true class (in two classes: one off-diagonal cell).
        right_backend: keep only images this other back-end gets right ("FC wrong, GAP right").
    """
    for key in (backend, right_backend):
        if key is not None and key not in predicted:
            raise ValueError(f"no predictions for back-end {key!r}; have {', '.join(predicted)}")
    labels, wrong_answers = check_pair(labels, predicted[backend])
    keep = wrong_answers != labels
    if true_class is not None:
        keep &= labels == int(true_class)
    if right_backend is not None:
        keep &= check_pair(labels, predicted[right_backend])[1] == labels
    return np.flatnonzero(keep)


def backend_report(labels, probabilities, class_names) -> dict:
    """One back-end's numbers: accuracy, confusion (C, C), per-class accuracy (= recall), precision, mistakes."""
    labels, predicted = check_pair(labels, predicted_classes(probabilities))
    confusion = confusion_matrix(labels, predicted, len(class_names))
    return {
        "accuracy": float(np.mean(labels == predicted)) if labels.size else float("nan"),
        "confusion": confusion,
        "per_class_accuracy": per_class_accuracy(confusion),
        "precision": precision(confusion),
        "misclassified": misclassified_indices(labels, probabilities),
    }
