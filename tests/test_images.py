"""Safe decoding: every odd kind of image is made here with PIL, in memory."""

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from gapdemo.images import MAX_UPLOAD_BYTES, ImageError, load_image, prepare_for_model


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def rgb_stripes(width=40, height=24) -> Image.Image:
    """Left half red, right half blue: easy to recognise after rotation or lossy coding."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG header for width x height with 16 bytes of pixel data: decoding it could only fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))


def assert_one_sentence(error: ImageError):
    message = str(error)
    assert message[0].isupper() and message.endswith(".")
    assert "\n" not in message and "Traceback" not in message
    assert len(re.split(r"\.\s", message)) == 1, message


def assert_close(actual, expected, tolerance=12):
    assert np.abs(np.asarray(actual, int) - np.asarray(expected, int)).max() <= tolerance, (actual, expected)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_every_supported_format_decodes_to_rgb(image_format):
    image = load_image(encode(rgb_stripes(), image_format))
    assert image.shape == (24, 40, 3) and image.dtype == np.uint8
    assert_close(image[12, 5], (255, 0, 0), tolerance=30)
    assert_close(image[12, 35], (0, 0, 255), tolerance=30)


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1)))
    image = load_image(encode(gray, "PNG"))
    assert image.shape == (8, 64, 3)
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    assert np.array_equal(image[0, :, 0], np.arange(0, 256, 4))


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    image = load_image(encode(cmyk, "JPEG", quality=95))
    assert image.shape == (16, 16, 3)
    assert_close(image[8, 8], (255, 0, 0))


def test_sixteen_bit_png_is_scaled_not_clipped():
    gradient = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (4, 1))
    sixteen_bit = Image.fromarray(gradient)
    assert sixteen_bit.mode == "I;16"
    image = load_image(encode(sixteen_bit, "PNG"))
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255
    assert np.all(np.diff(image[0, :, 0].astype(int)) >= 0)  # monotone, not saturated at 255
    assert 120 <= image[0, 32, 0] <= 135


def test_transparent_rgba_png_is_composited_on_white():
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[:, :4] = (255, 0, 0, 255)  # opaque red left, fully transparent black right
    image = load_image(encode(Image.fromarray(pixels, "RGBA"), "PNG"))
    assert image.shape == (8, 8, 3)
    assert tuple(image[0, 0]) == (255, 0, 0) and tuple(image[0, 7]) == (255, 255, 255)


def test_palette_png_with_transparency_is_composited_on_white():
    palette_image = Image.new("P", (8, 8), 0)
    palette_image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)  # index 0 black, index 1 green
    palette_image.paste(1, (0, 0, 4, 8))
    image = load_image(encode(palette_image, "PNG", transparency=0))
    assert tuple(image[0, 0]) == (0, 128, 0) and tuple(image[0, 7]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image = load_image(encode(rgb_stripes(40, 24), "JPEG", exif=exif.tobytes(), quality=95))
    assert image.shape == (40, 24, 3)  # width and height swapped
    assert_close(image[5, 12], (255, 0, 0), tolerance=30)  # red (left) is now on top
    assert_close(image[35, 12], (0, 0, 255), tolerance=30)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    image = load_image(data)
    assert image.shape == (8, 8, 3) and tuple(image[4, 4]) == (255, 0, 0)


@pytest.mark.parametrize("height, width", [(30, 50), (300, 450), (33, 32), (7, 90)])
def test_prepare_for_model_gives_the_numbers_training_fed_the_models(height, width):
    """The training contract, not the resize call: a source's uint8 images, resized and rounded, then the
    pipeline's float32 / 255. An upload must reach the models as those same numbers."""
    import tensorflow as tf

    from gapdemo.data.pipeline import make_pipeline

    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    stored = tf.image.resize(image, (32, 32), method="bilinear")  # what the TFDS source stores ...
    stored = tf.cast(tf.clip_by_value(tf.round(stored), 0, 255), tf.uint8).numpy()  # ... as uint8
    (fed, _), = make_pipeline(stored[np.newaxis], [1], batch_size=1, shuffle=False, seed=0).as_numpy_iterator()
    batch = prepare_for_model(image, 32)
    assert batch.shape == (1, 32, 32, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, fed)


@pytest.mark.parametrize("bad_image", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_prepare_for_model_refuses_bad_arrays(bad_image):
    with pytest.raises(ValueError):
        prepare_for_model(bad_image, 32)


def jpeg_truncated() -> bytes:
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    return data[: len(data) // 2]


REFUSALS = {
    "empty": (lambda: b"", {}, "This file is empty."),
    "text": (lambda: b"name,label\ncat.jpg,0\n", {}, "not an image gapdemo can read"),
    "tiff": (lambda: encode(rgb_stripes(), "TIFF"), {}, "not an image gapdemo can read"),
    "truncated_jpeg": (jpeg_truncated, {}, "This image is truncated or corrupt."),
    "corrupt_png": (lambda: encode(rgb_stripes(), "PNG")[:60] + b"\0" * 40, {}, "truncated or corrupt"),
    "too_many_bytes": (lambda: encode(rgb_stripes(), "PNG"), {"max_bytes": 50}, "the limit is 50 bytes."),
    "too_many_pixels": (lambda: encode(rgb_stripes(), "PNG"), {"max_pixels": 500}, "the limit is 500 pixels."),
    "pillow_bomb": (lambda: png_header_only(100_000, 100_000), {"max_pixels": 10**12}, "too many pixels"),
}


@pytest.mark.parametrize("kind", REFUSALS)
def test_bad_files_are_refused_with_one_sentence(kind):
    make_data, limits, expected = REFUSALS[kind]
    with pytest.raises(ImageError) as refusal:
        load_image(make_data(), **limits)
    assert expected in str(refusal.value)
    assert_one_sentence(refusal.value)


def test_byte_cap_message_reads_in_megabytes():
    with pytest.raises(ImageError, match=r"^This image is 25.3 MiB; the limit is 20 MiB\.$"):
        load_image(b"\0" * int(25.3 * 1024 * 1024), max_bytes=MAX_UPLOAD_BYTES)


def test_pixel_cap_is_checked_from_the_header_before_decoding(monkeypatch):
    decoded = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or original_load(self))
    # A header claiming 2000 x 2000 with no pixel data: decoding would fail as "truncated".
    with pytest.raises(ImageError, match="2000 x 2000 pixels"):
        load_image(png_header_only(2000, 2000), max_pixels=1_000_000)
    assert decoded == []
    with pytest.raises(ImageError, match="truncated or corrupt"):  # what decoding it would have said
        load_image(png_header_only(2000, 2000), max_pixels=100_000_000)
    assert len(decoded) == 1


def test_non_bytes_argument_is_a_value_error():
    with pytest.raises(ValueError, match="must be bytes"):
        load_image("cat.jpg")
