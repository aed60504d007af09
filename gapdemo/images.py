"""Safe decoding of user images: size caps, EXIF orientation and odd modes -> uint8 RGB arrays.

Used by the dashboard's uploader and the CLI. Every refusal is an ``ImageError`` whose text is one
sentence a user can read; nothing is written to disk.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, features

from gapdemo.data.decode import resize_bilinear
from gapdemo.units import format_bytes

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # keep in step with .streamlit/config.toml maxUploadSize (20 MB)
MAX_PIXELS = 40_000_000  # decompression-bomb cap: ~160 MB as RGBA while decoding
# HEIC is what an iPhone takes photos in; pillow_heif (a requirement) gives Pillow its plugin.
pillow_heif.register_heif_opener()
DISPLAY_NAMES = ["JPEG", "PNG", "WebP", "BMP", "GIF", "HEIC"]
# Pillow plugin ids tried by Image.open; nothing else (TIFF, EPS, PSD, ...) is even attempted.
# (Camera JPEGs with preview frames, "MPO", are opened by the JPEG plugin.)
PILLOW_FORMATS = ["JPEG", "PNG", "WEBP", "BMP", "GIF", "HEIF"]
# File name endings the upload box accepts, in step with PILLOW_FORMATS.
UPLOAD_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "heic", "heif"]
# Pillow reads AVIF from 11.2 on, and only when built with libavif (older Pillows do not know the name).
if "avif" in features.modules and features.check_module("avif"):
    PILLOW_FORMATS.append("AVIF")
    DISPLAY_NAMES.append("AVIF")
    UPLOAD_EXTENSIONS.append("avif")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_MODES_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageError(ValueError):
    """An image gapdemo refuses; str() is one clear sentence for the user."""


def _format_pixels(count: int) -> str:
    """40_000_000 -> '40 megapixels', 1000 -> '1,000 pixels'."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}".rstrip("0").rstrip(".") + " megapixels"
    return f"{count:,} pixels"


def _unreadable_message() -> str:
    names = ", ".join(DISPLAY_NAMES[:-1]) + f" or {DISPLAY_NAMES[-1]}"
    return f"This file is not an image gapdemo can read ({names})."


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    """Open the image lazily (header only) and refuse it when it has too many pixels."""
    too_many = "This image has too many pixels to open safely; the limit is " + _format_pixels(max_pixels) + "."
    try:
        # Pillow warns (and above 2x its own cap raises) about decompression bombs while reading
        # the header; turn the warning into an error so a bomb is never decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(too_many) from None
    except Image.UnidentifiedImageError:
        raise ImageError(_unreadable_message()) from None
    except Exception as error:  # a header Pillow recognised but could not parse
        raise ImageError("This image is truncated or corrupt.") from error
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"This image is {width} x {height} pixels ({_format_pixels(width * height)}); "
            f"the limit is {_format_pixels(max_pixels)}."
        )
    return image


def _sixteen_bit_to_gray(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale -> 8-bit 'L', scaled rather than clipped."""
    values = np.asarray(image).astype(np.float64)  # (H, W)
    # 'I' is what some decoders give for 16-bit data; values above 65535 only come from true 32-bit files.
    full_scale = 65535.0 if values.max(initial=0) <= 65535 else float(values.max())
    scaled = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'RGB'; transparency is composited on white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_gray(image).convert("RGB")
    if image.mode in _MODES_WITH_ALPHA or "transparency" in image.info:
        rgba = image.convert("RGBA")  # also resolves palette / single-colour transparency
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGB


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: show the pixels as stored rather than refuse the photo
        return image


def load_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded file into an upright RGB image.

    Args:
        data: the file's bytes (bytes, bytearray or memoryview).
        max_bytes: files larger than this are refused before decoding.
        max_pixels: images with more pixels (width x height, read from the header) are refused
            before decoding.

    Returns:
        uint8 array (H, W, 3), RGB; animated images give their first frame.

    Raises:
        ImageError: with one sentence for the user when the file is refused.
        ValueError: when data is not bytes-like or a limit is not positive.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"image data must be bytes, got {type(data).__name__}")
    if max_bytes <= 0 or max_pixels <= 0:
        raise ValueError(f"limits must be positive, got max_bytes={max_bytes}, max_pixels={max_pixels}")
    data = bytes(data)
    if not data:
        raise ImageError("This file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"This image is {format_bytes(len(data))}; the limit is {format_bytes(max_bytes)}.")
    with _open_header(data, max_pixels) as image:
        try:
            image.seek(0)  # first frame of an animation
            image.load()
            upright = _apply_exif_orientation(image)
            rgb = _to_rgb(upright)
        except Exception as error:  # truncated data, bad checksums, decoder errors
            raise ImageError("This image is truncated or corrupt.") from error
    return np.array(rgb, dtype=np.uint8)  # (H, W, 3), a copy independent of Pillow


def prepare_for_model(image_uint8: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, S, S, 3) in [0, 1], exactly as the models saw their training images.

    Every source stores its training images as uint8 resized to S x S (bilinear, half-pixel centres,
    no antialiasing, then rounded: gapdemo.data.decode.resize_bilinear, which equals tf.image.resize + round
    bit for bit), and the pipeline divides them by 255 in float32. The same two steps here give a
    user's image the same numbers; non-square images are stretched, as in training.
    """
    image = np.asarray(image_uint8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image size must be a positive integer, got {image_size!r}")
    resized = resize_bilinear(image, image_size)  # uint8 (S, S, 3); reads only the rows it needs
    return (resized.astype(np.float32) / np.float32(255.0))[np.newaxis]  # (1, S, S, 3)
