"""Decoding one image file of a data set into uint8 (S, S, 3), strictly and without TensorFlow.

The resize reproduces tf.image.resize(method="bilinear") (half-pixel centres, no antialiasing)
followed by rounding, bit for bit, so a folder decoded here matches the TFDS source, which resizes
with TensorFlow, and the uploads the classifier resizes. numpy and PIL release the GIL in their
inner loops, so several threads decode in parallel.
"""

from __future__ import annotations

import contextlib
import pathlib
import threading

import numpy as np
from PIL import Image, ImageFile

# The formats a data set's image files may hold, whatever their names say (PetImages has PNGs named
# .jpg). Pillow tries no other plugin: EPS would start Ghostscript on a file from the data folder.
DATASET_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
_STRICT_LOCK = threading.Lock()
_strict_state = {"depth": 0, "saved": False}  # decodes in flight, and PIL's flag to restore after them


@contextlib.contextmanager
def strict_decoding():
    """Refuse truncated files while the block runs, even if another library told PIL to allow them.

    PIL's LOAD_TRUNCATED_IMAGES is process-wide: the first decoder in sets it to False, the last
    one out restores it, so decoders in parallel threads never see it flip under them.
    """
    with _STRICT_LOCK:
        if _strict_state["depth"] == 0:
            _strict_state["saved"] = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        _strict_state["depth"] += 1
    try:
        yield
    finally:
        with _STRICT_LOCK:
            _strict_state["depth"] -= 1
            if _strict_state["depth"] == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _strict_state["saved"]


def decode_image_file(path, image_size: int) -> np.ndarray:
    """Decode one image file fully into uint8 (S, S, 3); raise on empty, truncated or non-image files."""
    if pathlib.Path(path).stat().st_size == 0:
        raise OSError("empty file (0 bytes)")
    with strict_decoding():
        with Image.open(path, formats=DATASET_FORMATS) as image:
            image.load()  # decodes every byte now, so a bad file fails here and never mid-epoch
            rgb = np.asarray(image.convert("RGB"))  # L, RGBA, P, CMYK, ... -> (H, W, 3)
    return resize_bilinear(rgb, image_size)


def resize_bilinear(image: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (S, S, 3), exactly as tf.image.resize(bilinear) + round + clip.

    TensorFlow blends each row's two columns first, then the two rows, in float32; the same order
    here gives the same roundings.
    """
    top_rows, bottom_rows, row_weights = bilinear_weights(image.shape[0], image_size)
    left_columns, right_columns, column_weights = bilinear_weights(image.shape[1], image_size)
    column_weights = column_weights[None, :, None]  # (1, S, 1)
    blended_rows = []
    for rows in (top_rows, bottom_rows):
        picked = image[rows]  # (S, W, 3)
        left = np.take(picked, left_columns, axis=1).astype(np.float32)  # (S, S, 3)
        right = np.take(picked, right_columns, axis=1).astype(np.float32)
        blended_rows.append(left + (right - left) * column_weights)
    top, bottom = blended_rows
    resized = top + (bottom - top) * row_weights[:, None, None]
    np.rint(resized, out=resized)  # round half to even, as tf.round
    return np.clip(resized, 0, 255).astype(np.uint8)


def bilinear_weights(input_size: int, output_size: int):
    """Per output index: the lower and upper input index and the weight of the upper one (float32), with
    half-pixel centres as tf.image.resize; the one bilinear rule (gapdemo.insight.maps' heat maps use it too)."""
    scale = np.float32(input_size) / np.float32(output_size)
    centres = (np.arange(output_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floors = np.floor(centres)
    lower = np.maximum(floors, 0).astype(np.intp)
    upper = np.minimum(np.ceil(centres), input_size - 1).astype(np.intp)
    return lower, upper, (centres - floors).astype(np.float32)
