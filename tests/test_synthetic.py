"""The synthetic pets: deterministic, balanced, boxed, and not separable by colour alone."""

import numpy as np
import pytest

from gapdemo.data import synthetic
from gapdemo.data.synthetic import REGIONS, generate_pets

SIZE = 32


def test_same_seed_gives_same_bytes_and_other_seed_differs():
    first = generate_pets(20, SIZE, seed=3)
    second = generate_pets(20, SIZE, seed=3)
    other = generate_pets(20, SIZE, seed=4)
    for a, b in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()
    assert first[0].tobytes() != other[0].tobytes()


def test_shapes_dtypes_and_balance():
    images, labels, boxes = generate_pets(21, SIZE, seed=0)
    assert images.shape == (21, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.shape == (21,) and labels.dtype == np.int64
    assert boxes.shape == (21, 4) and boxes.dtype == np.float32
    assert set(labels.tolist()) == {0, 1}
    assert np.bincount(labels).tolist() == [11, 10]  # an odd count has one more cat


@pytest.mark.parametrize("region", REGIONS)
def test_boxes_lie_within_the_image_and_the_region(region):
    _, _, boxes = generate_pets(40, SIZE, seed=1, region=region)
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
    assert np.all(boxes[:, 2] <= SIZE) and np.all(boxes[:, 3] <= SIZE)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    if region == "left":
        assert np.all(boxes[:, 2] <= SIZE / 2)
    if region == "right":
        assert np.all(boxes[:, 0] >= SIZE / 2)


def test_boxes_are_sizeable_and_images_are_not_flat():
    images, _, boxes = generate_pets(10, 64, seed=2)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert np.all(widths > 64 * 0.15) and np.all(heights > 64 * 0.15)
    assert np.all(images.reshape(10, -1).std(axis=1) > 10)  # clutter and noise, not a flat background


def test_box_encloses_the_drawn_object(monkeypatch):
    # Without clutter and noise the background is flat, so every pixel that differs from the
    # corner pixel belongs to the object and must lie inside its box, which it should fill.
    monkeypatch.setattr(synthetic, "CLUTTER_SHAPES", (0, 0))
    monkeypatch.setattr(synthetic, "NOISE_SIGMA", 0.0)
    images, _, boxes = generate_pets(12, 64, seed=7)
    for image, (x0, y0, x1, y1) in zip(images, boxes, strict=True):
        rows, columns = np.nonzero(np.any(image != image[0, 0], axis=2))
        assert columns.min() >= np.floor(x0) - 1 and columns.max() <= np.ceil(x1) + 1
        assert rows.min() >= np.floor(y0) - 1 and rows.max() <= np.ceil(y1) + 1
        assert columns.min() <= x0 + 3 and columns.max() >= x1 - 3
        assert rows.min() <= y0 + 3 and rows.max() >= y1 - 3


def _nearest_class_mean_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    means = np.stack([train_features[train_labels == label].mean(axis=0) for label in (0, 1)])
    distances = ((test_features[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == test_labels).mean())


def _logistic_regression_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    scale = train_features.std(axis=0) + 1e-6
    center = train_features.mean(axis=0)
    x_train, x_test = (train_features - center) / scale, (test_features - center) / scale
    weights, bias = np.zeros(x_train.shape[1]), 0.0
    for _ in range(500):  # plain gradient descent on the logistic loss
        probability = 1 / (1 + np.exp(-(x_train @ weights + bias)))
        weights -= 0.5 * x_train.T @ (probability - train_labels) / len(train_labels)
        bias -= 0.5 * float(np.mean(probability - train_labels))
    return float((((x_test @ weights + bias) > 0) == test_labels).mean())


def test_mean_colour_alone_cannot_separate_the_classes():
    images, labels, _ = generate_pets(800, SIZE, seed=5)
    features = images.reshape(len(images), -1, 3).mean(axis=1)  # (N, 3) per-channel means
    train, test = slice(0, 400), slice(400, 800)
    for classify in (_nearest_class_mean_accuracy, _logistic_regression_accuracy):
        accuracy = classify(features[train], labels[train], features[test], labels[test])
        assert accuracy < 0.6, f"{classify.__name__} separates by colour: {accuracy:.2f}"


@pytest.mark.parametrize("arguments", [(-1, SIZE, 0), (4, 4, 0), (4, SIZE, 0, "top")])
def test_bad_arguments_raise_value_error(arguments):
    with pytest.raises(ValueError):
        generate_pets(*arguments)


@pytest.mark.parametrize("image_size", [32, 64, 100])
def test_every_seed_places_heads_inside_a_half(image_size):
    for seed in range(12):
        for region in ("left", "right"):
            _, _, boxes = generate_pets(40, image_size, seed, region)
            if region == "left":
                assert boxes[:, 2].max() <= image_size / 2 + 1e-3
            else:
                assert boxes[:, 0].min() >= image_size / 2 - 1e-3
