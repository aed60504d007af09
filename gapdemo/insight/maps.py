"""What the back-ends look at: feature-map averages, CAM (GAP/GMP), Grad-CAM (FC) and shift tests.

Everything here returns numpy arrays; drawing them is the app's and charts' job. Maps are
(batch, s, s) on the back-end's last feature maps (s = 10 at 100x100). Probabilities are P(dog).
"""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from gapdemo.data.decode import bilinear_weights
from gapdemo.images import prepare_for_model
from gapdemo.model.backends import check_backend, classifier_layer_name, feature_layer_name

# model -> {backend: tf.function}; weak keys so a model dropped by the app is not kept alive
_explain_functions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_explain_functions_lock = threading.Lock()


def _get_layer(model: keras.Model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {name!r}; was it built by gapdemo.model.backends?") from None


def feature_averages(feature_maps) -> np.ndarray:
    """(B, s, s, C) -> (B, C): each channel's spatial mean, which is exactly what GAP computes."""
    feature_maps = np.asarray(feature_maps, dtype=np.float64)
    if feature_maps.ndim != 4:
        raise ValueError(f"feature maps must be (batch, s, s, channels), got shape {feature_maps.shape}")
    return feature_maps.mean(axis=(1, 2))


def class_activation_maps(feature_maps, dense_kernel, dense_bias=None) -> np.ndarray:
    """CAM (Zhou et al. 2016): sum_k w_k F_k per position, the 'category confidence map'.

    Positive cells are dog evidence, negative cells cat evidence. Without a bias, for a GAP model
    mean(CAM) + bias == logit. With dense_bias, the bias is added to every cell (not divided by s*s),
    so each cell reads as "the logit if the whole image looked like this cell" and mean(CAM) == logit.

    Args:
        feature_maps: (B, s, s, C).
        dense_kernel: (C, 1) or (C,), the classifier's kernel.
        dense_bias: optional scalar or (1,).

    Returns:
        (B, s, s) float64.
    """
    feature_maps = np.asarray(feature_maps, dtype=np.float64)
    weights = np.asarray(dense_kernel, dtype=np.float64).reshape(-1)  # (C,)
    if feature_maps.ndim != 4 or feature_maps.shape[-1] != weights.size:
        raise ValueError(f"feature maps (batch, s, s, C) and kernel (C, 1) disagree: "
                         f"{feature_maps.shape} vs {np.shape(dense_kernel)}")
    maps = np.tensordot(feature_maps, weights, axes=([3], [0]))  # (B, s, s)
    if dense_bias is not None:
        maps = maps + float(np.asarray(dense_bias).reshape(-1)[0])
    return maps


def _check_images(images) -> tf.Tensor:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (batch, size, size, 3) in [0, 1], got shape {images.shape}")
    return tf.convert_to_tensor(images)


def _build_explain_function(model: keras.Model, backend: str):
    """One forward pass -> (feature maps (B,s,s,C), logit (B,), d logit / d feature maps (B,s,s,C))."""
    classifier = _get_layer(model, classifier_layer_name(backend))
    feature_maps = _get_layer(model, feature_layer_name(backend)).output
    # The classifier's input (not its sigmoid output) gives the logit: Grad-CAM on the logit does
    # not vanish when a confident model's probability saturates at 0 or 1.
    probe = keras.Model(model.input, [feature_maps, classifier.input], name=f"{backend}_explain")
    input_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[input_spec])
    def explain_batch(images):
        with tf.GradientTape() as tape:
            maps, penultimate = probe(images, training=False)
            logit = tf.matmul(penultimate, classifier.kernel)[:, 0] + classifier.bias[0]  # (B,)
            # Examples are independent in inference mode, so one gradient of the sum gives each its own.
            total = tf.reduce_sum(logit)
        return maps, logit, tape.gradient(total, maps)

    return explain_batch


def _explain_function(model: keras.Model, backend: str):
    """The cached tf.function for (model, backend): traced once, then ~ms per call."""
    check_backend(backend)
    with _explain_functions_lock:
        per_backend = _explain_functions.setdefault(model, {})
        if backend not in per_backend:
            per_backend[backend] = _build_explain_function(model, backend)
        return per_backend[backend]


def _grad_cam_from_gradients(feature_maps, logit_gradients, logits) -> np.ndarray:
    """ReLU(sum_k alpha_k F_k), alpha_k = spatial mean of d score / d F_k; score = +-logit toward the prediction."""
    sign = np.where(np.asarray(logits) >= 0.0, 1.0, -1.0)[:, None]  # logit >= 0 <=> P(dog) >= 0.5
    alphas = np.asarray(logit_gradients, dtype=np.float64).mean(axis=(1, 2)) * sign  # (B, C)
    maps = np.einsum("bijc,bc->bij", np.asarray(feature_maps, dtype=np.float64), alphas)  # (B, s, s)
    return np.maximum(maps, 0.0)


def explain(model: keras.Model, backend: str, images) -> dict:
    """P(dog) and a map of where each image's answer comes from, in one forward pass.

    Returns:
        {"probability_dog": (B,), "maps": (B, s, s), "method": "CAM" | "Grad-CAM"}. CAM (for back-ends
        whose spec has uses_cam) is signed toward the predicted class, so positive = evidence for the
        answer given, negative = evidence against it; it carries no bias. Grad-CAM is non-negative.
    """
    spec = check_backend(backend)
    feature_maps, logits, gradients = _explain_function(model, backend)(_check_images(images))
    feature_maps, logits = feature_maps.numpy(), logits.numpy().astype(np.float64)
    if spec.uses_cam:
        kernel = _get_layer(model, classifier_layer_name(backend)).kernel.numpy()
        sign = np.where(logits >= 0.0, 1.0, -1.0)[:, None, None]
        maps, method = class_activation_maps(feature_maps, kernel) * sign, "CAM"
    else:
        maps, method = _grad_cam_from_gradients(feature_maps, gradients.numpy(), logits), "Grad-CAM"
    probability_dog = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid, without overflow for large logits
    return {"probability_dog": probability_dog, "maps": maps, "method": method}


def _interpolation_matrix(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) weights of gapdemo.data.decode's bilinear resize, as a matrix (maps are float)."""
    lower, upper, fraction = bilinear_weights(size_in, size_out)
    fraction = fraction.astype(np.float64)
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), lower), 1.0 - fraction)
    np.add.at(matrix, (np.arange(size_out), upper), fraction)
    return matrix


def upsample_map(map_2d, size) -> np.ndarray:
    """(h, w) -> (size, size), or (height, width) when size is a pair; bilinear, float64.

    A leading batch axis is allowed: (B, h, w) -> (B, height, width).
    """
    maps = np.asarray(map_2d, dtype=np.float64)
    height, width = (size, size) if np.isscalar(size) else size
    if maps.ndim not in (2, 3) or int(height) < 1 or int(width) < 1:
        raise ValueError(f"expected a (h, w) or (B, h, w) map and a positive size, got {maps.shape} and {size!r}")
    rows = _interpolation_matrix(int(height), maps.shape[-2])  # (height, h)
    columns = _interpolation_matrix(int(width), maps.shape[-1])  # (width, w)
    return np.einsum("yi,...ij,xj->...yx", rows, maps, columns)


def _jet(values: np.ndarray) -> np.ndarray:
    """[0, 1] (...) -> RGB in [0, 1] (..., 3): the classic jet ramp, blue (low) to red (high)."""
    values = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # where red, green and blue peak
    return np.clip(1.5 - np.abs(4.0 * values - 4.0 * centres), 0.0, 1.0)


def normalise_map(map_2d) -> np.ndarray:
    """Min-max to [0, 1]; a flat map (no preference anywhere) becomes all zeros."""
    values = np.asarray(map_2d, dtype=np.float64)
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 1e-12 else np.zeros_like(values)


def overlay_heatmap(image_uint8, map_2d, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured, min-max-normalised map over an image: uint8 (H, W, 3) -> uint8 (H, W, 3)."""
    image = np.asarray(image_uint8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = _jet(normalise_map(upsample_map(map_2d, image.shape[:2]))) * 255.0  # (H, W, 3)
    blended = (1.0 - alpha) * image + alpha * heat
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _display_image(image_uint8: np.ndarray, display_size: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most display_size; antialiased for the eye."""
    height, width = image_uint8.shape[:2]
    scale = min(1.0, display_size / max(height, width))
    if scale == 1.0:
        return image_uint8
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image_uint8).resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def classify_image(models: dict, image_uint8, image_size: int, display_size: int = 224) -> dict:
    """Classify one image with every back-end and explain each answer.

    Args:
        models: {backend: model}, each model containing that back-end's layers.
        image_uint8: (H, W, 3) uint8, e.g. from images.load_image.
        image_size: the models' input size.
        display_size: longest side of the returned overlays.

    Returns:
        {backend: {"p_cat", "p_dog", "label": "cat" | "dog", "method", "map": (s, s),
        "overlay": uint8 (h, w, 3) with max(h, w) <= display_size}}.
    """
    if display_size < 1:
        raise ValueError(f"display size must be positive, got {display_size}")
    batch = prepare_for_model(image_uint8, image_size)  # (1, S, S, 3)
    display = _display_image(np.asarray(image_uint8), display_size)
    results = {}
    for backend, model in models.items():
        explanation = explain(model, backend, batch)
        p_dog = float(explanation["probability_dog"][0])
        results[backend] = {
            "p_cat": 1.0 - p_dog,
            "p_dog": p_dog,
            "label": "dog" if p_dog >= 0.5 else "cat",
            "method": explanation["method"],
            "map": explanation["maps"][0],
            "overlay": overlay_heatmap(display, explanation["maps"][0]),
        }
    return results


def shift_images(images, dx: int, dy: int = 0) -> np.ndarray:
    """(B, H, W, C) -> same shape, content moved right by dx and down by dy pixels; borders reflect-padded."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (batch, height, width, channels), got shape {images.shape}")
    height, width = images.shape[1:3]
    if int(dx) != dx or int(dy) != dy or abs(dx) >= width or abs(dy) >= height:
        raise ValueError(f"shift must be whole pixels smaller than the image, got dx={dx}, dy={dy}")
    dx, dy = int(dx), int(dy)
    # Pad the side the content moves away from, then crop back: output[y, x] = input[y - dy, x - dx].
    padding = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(images, padding, mode="reflect")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top:top + height, left:left + width]


def _check_boxes(maps, boxes):
    maps = np.asarray(maps, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if maps.ndim != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"expected maps (B, h, w) and boxes (B, 4), got {maps.shape} and {boxes.shape}")
    return maps, boxes


def pointing_game(maps, boxes, image_size: int) -> np.ndarray:
    """1.0 where the centre of a map's peak cell lies inside the box, else 0.0 (Zhang et al. 2016).

    Args:
        maps: (B, h, w), any resolution covering the whole image.
        boxes: (B, 4) [x0, y0, x1, y1] in pixels of the image_size x image_size model input.

    A flat map points nowhere and scores 0.0.
    """
    maps, boxes = _check_boxes(maps, boxes)
    scores = np.zeros(maps.shape[0])
    for index, (single_map, (x0, y0, x1, y1)) in enumerate(zip(maps, boxes, strict=True)):
        if np.ptp(single_map) <= 1e-12:
            continue
        row, column = np.unravel_index(np.argmax(single_map), single_map.shape)
        centre_x = (column + 0.5) * image_size / single_map.shape[1]
        centre_y = (row + 0.5) * image_size / single_map.shape[0]
        scores[index] = float(x0 <= centre_x <= x1 and y0 <= centre_y <= y1)
    return scores


def _box_masks(boxes: np.ndarray, image_size: int) -> np.ndarray:
    """(B, 4) -> (B, S, S) bool: pixels whose centre lies inside the box."""
    centres = np.arange(image_size) + 0.5
    inside_x = (centres >= boxes[:, 0:1]) & (centres <= boxes[:, 2:3])  # (B, S)
    inside_y = (centres >= boxes[:, 1:2]) & (centres <= boxes[:, 3:4])  # (B, S)
    return inside_y[:, :, None] & inside_x[:, None, :]


def energy_in_box(maps, boxes, image_size: int) -> np.ndarray:
    """Share of each map's positive mass inside its box, after upsampling to the image: (B,) in [0, 1].

    A map with no positive mass scores 0.0. Compare with uniform_baseline(boxes, image_size).
    """
    maps, boxes = _check_boxes(maps, boxes)
    positive = np.maximum(upsample_map(maps, image_size), 0.0)  # (B, S, S)
    inside = (positive * _box_masks(boxes, image_size)).sum(axis=(1, 2))
    total = positive.sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def uniform_baseline(boxes, image_size: int) -> np.ndarray:
    """(B, 4) -> (B,): box area / image area, the energy_in_box score of a map that is the same everywhere."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return _box_masks(boxes, image_size).mean(axis=(1, 2))
