"""The offline "synthetic pets": cartoon cat and dog heads on cluttered backgrounds.

The classes differ in shape, never in colour. A cat has pointed ears and, usually, whiskers; a
dog has floppy ears and, usually, a muzzle; every colour is drawn from the same distribution for
both, so an image's mean colour says nothing about its label. Heads appear at a random position,
size, tilt and colour on random clutter. A few pets (1 - TYPICAL_FEATURE_CHANCE) wear the other
class's face feature, like the ambiguous photos of the real data set: a network can only
memorise those. A fully connected back-end does, and stops learning the shape; global average
pooling cannot memorise and keeps learning it. numpy and PIL only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from gapdemo.config import CLASS_NAMES  # noqa: F401  (index = label; kept importable from here)

REGIONS = ("any", "left", "right")
# Tuned at 100x100 so that, with the default 2,000 training images and 10 epochs, fc overfits
# (train ~1.0, validation well below) while gap's validation accuracy stays close to its training one.
HEAD_RADIUS = (0.11, 0.17)  # head radius as a fraction of the image size (min, max)
CAT_EAR_HEIGHT = (0.75, 1.1)  # pointed ear height, in head radii
DOG_EAR_LENGTH = (0.7, 0.95)  # half the length of a floppy ear, in head radii
MAX_TILT_DEGREES = 30.0  # heads are rotated by up to this much either way
TYPICAL_FEATURE_CHANCE = 0.95  # how often a cat has whiskers and a dog a muzzle (else the other's)
CUE_CONTRAST = (0.6, 0.9)  # how far whiskers and muzzle stand out from the fur (0 = invisible, 1 = black/white)
CLUTTER_SHAPES = (6, 12)  # random background shapes per image (min, max)
# No triangles: a sharp corner passes for a cat's ear, and GAP, pooling over the whole image, trips on it.
CLUTTER_KINDS = ("stroke", "blob", "rectangle")
NOISE_SIGMA = 10.0  # pixel noise, in 0-255 grey levels
_NOISE_TILES = 8  # noise is cut from a few shared tiles: drawing fresh noise per pixel is slow
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))], axis=1)  # (20, 2)


def _ellipse(center_x, center_y, radius_x, radius_y, angle=0.0) -> np.ndarray:
    """Polygon points (20, 2) of an ellipse in head units (head radius = 1, y points down)."""
    points = _CIRCLE * (radius_x, radius_y)
    if angle:
        cos, sin = np.cos(angle), np.sin(angle)
        points = points @ np.array([[cos, sin], [-sin, cos]])
    return points + (center_x, center_y)


def _mirrored(points) -> list[np.ndarray]:
    """The part given for the left side, and its mirror image on the right."""
    points = np.asarray(points, dtype=float)
    return [points, points * (-1.0, 1.0)]


def _cat_ears(rng) -> list[tuple[str, np.ndarray, str]]:
    """Pointed ears: triangles standing on top of the head, of random height and lean."""
    height, lean, width = rng.uniform(*CAT_EAR_HEIGHT), rng.uniform(-0.2, 0.2), rng.uniform(0.32, 0.42)
    base = np.array([-0.58, -0.72])  # where the left ear meets the head
    outer = [(base[0] - width, base[1] + 0.3), (base[0] + width, base[1] - 0.1),
             (base[0] - 0.1 + lean, base[1] - height)]
    inner = np.array(outer) * 0.55 + np.mean(outer, axis=0) * 0.45
    inner_colour = ("fur", "fur_light")[rng.integers(2)]
    return [("polygon", ear, "ears") for ear in _mirrored(outer)] + [("polygon", ear, inner_colour) for ear in _mirrored(inner)]


def _dog_ears(rng) -> list[tuple[str, np.ndarray, str]]:
    """Floppy ears: long ellipses hanging down over the sides of the head."""
    length, width, swing = rng.uniform(*DOG_EAR_LENGTH), rng.uniform(0.28, 0.38), rng.uniform(-0.35, 0.05)
    return [("polygon", ear, "ears") for ear in _mirrored(_ellipse(-0.92, -0.35 + length * 0.75, width, length, swing))]


def _face(label: int, rng) -> list[tuple[str, np.ndarray, str]]:
    """Eyes, nose and one face feature: usually the class's own (cat: whiskers, dog: muzzle)."""
    wears_whiskers = (label == 0) == (rng.random() < TYPICAL_FEATURE_CHANCE)
    parts = []
    if not wears_whiskers:
        parts.append(("polygon", _ellipse(0, 0.5, rng.uniform(0.35, 0.5), rng.uniform(0.25, 0.35)), "muzzle"))
    parts += [("polygon", eye, "eye") for eye in _mirrored(_ellipse(-0.4, -0.15, 0.17, 0.14))]
    parts += [("polygon", pupil, "dark") for pupil in _mirrored(_ellipse(-0.4, -0.15, 0.07, 0.11))]
    parts.append(("polygon", _ellipse(0, 0.3, rng.uniform(0.1, 0.2), rng.uniform(0.08, 0.13)), "dark"))
    if wears_whiskers:
        for start_y, end_y in ((0.32, 0.12), (0.42, 0.42), (0.52, 0.72)):
            parts += [("line", whisker, "whisker") for whisker in _mirrored([(-0.3, start_y), (-1.4, end_y)])]
    return parts


def _pet_parts(label: int, rng) -> list[tuple[str, np.ndarray, str]]:
    """(kind, points, colour key) in head units (head radius 1, y down), drawn in order."""
    head = [("polygon", _ellipse(0, 0, 1.0, rng.uniform(0.8, 1.0)), "fur")]
    if label == 0:
        return _cat_ears(rng) + head + _face(label, rng)
    return head + _dog_ears(rng) + _face(label, rng)


def _random_colour(rng) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(float)


def _flat(points: np.ndarray) -> list[float]:
    """(K, 2) points -> [x0, y0, x1, y1, ...], the form PIL draws fastest."""
    return points.ravel().tolist()


def _palette(rng) -> dict[str, tuple[int, ...]]:
    """Colours of one head; the same distribution for cats and dogs."""
    fur = _random_colour(rng)
    colours = {
        "fur": fur, "fur_light": fur + (255 - fur) * 0.45, "dark": fur * 0.2,
        "ears": (fur + 128 + rng.uniform(-50, 50, 3)) % 256,  # always far from the fur, so ears stand out
        "eye": 255 - (255 - _random_colour(rng)) * 0.3,
    }
    # Whiskers and muzzle stand out from the fur by a random fraction of the way to black or white:
    # the lower CUE_CONTRAST, the longer a network needs to notice them.
    for key in ("whisker", "muzzle"):
        target = 0.0 if rng.random() < 0.5 else 255.0
        colours[key] = fur + (target - fur) * rng.uniform(*CUE_CONTRAST)
    return {key: tuple(np.clip(colour, 0, 255).astype(int).tolist()) for key, colour in colours.items()}


def _place(parts, image_size, region, rng) -> tuple[list, np.ndarray]:
    """Scale, rotate and move the parts into pixels; return them and their box [x0, y0, x1, y1]."""
    radius = image_size * rng.uniform(*HEAD_RADIUS)
    angle = np.deg2rad(rng.uniform(-MAX_TILT_DEGREES, MAX_TILT_DEGREES))
    cos, sin = np.cos(angle), np.sin(angle)
    transform = np.array([[cos, sin], [-sin, cos]]) * radius
    placed = [(kind, points @ transform, colour) for kind, points, colour in parts]
    corners = np.concatenate([points for _, points, _ in placed])
    low, high = corners.min(axis=0), corners.max(axis=0)  # extent around the head's centre
    left, right = {"any": (0, image_size), "left": (0, image_size / 2), "right": (image_size / 2, image_size)}[region]
    # Keep one pixel of margin so the whole object is visible; a too-wide head is shrunk to fit.
    shrink = min(1.0, (right - left - 2) / (high[0] - low[0]), (image_size - 2) / (high[1] - low[1]))
    low, high = low * shrink, high * shrink
    # A head shrunk to fit exactly leaves a range that rounding can make very slightly negative.
    x_range = (left + 1 - low[0], max(left + 1 - low[0], right - 1 - high[0]))
    y_range = (1 - low[1], max(1 - low[1], image_size - 1 - high[1]))
    center = np.array([rng.uniform(*x_range), rng.uniform(*y_range)])
    placed = [(kind, points * shrink + center, colour) for kind, points, colour in placed]
    return placed, np.concatenate([low + center, high + center]).astype(np.float32)


def _draw_clutter(draw, image_size, rng) -> None:
    """Random filled shapes and lines behind the head: distractors for the classifier."""
    for _ in range(rng.integers(CLUTTER_SHAPES[0], CLUTTER_SHAPES[1] + 1)):
        colour = tuple(rng.integers(0, 256, 3).tolist())
        center = rng.uniform(0, image_size, 2)
        size = image_size * rng.uniform(0.04, 0.2)
        kind = CLUTTER_KINDS[rng.integers(len(CLUTTER_KINDS))]
        if kind == "stroke":
            end = center + rng.normal(0, size * 1.5, 2)
            draw.line(_flat(np.stack([center, end])), fill=colour, width=int(rng.integers(2, 5)))
        elif kind == "blob":
            draw.polygon(_flat(_ellipse(*center, size, size * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))),
                         fill=colour)
        else:  # a tilted rectangle
            corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * (size, size * rng.uniform(0.4, 1.0))
            angle = rng.uniform(0, np.pi)
            rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
            draw.polygon(_flat(corners @ rotation + center), fill=colour)


def draw_pet(label: int, image_size: int, rng, region: str = "any") -> tuple[np.ndarray, np.ndarray]:
    """One image: uint8 (S, S, 3) without noise, and the object's box [x0, y0, x1, y1] in pixels."""
    background = tuple(rng.integers(0, 256, 3).tolist())
    image = Image.new("RGB", (image_size, image_size), background)
    draw = ImageDraw.Draw(image)
    _draw_clutter(draw, image_size, rng)
    placed, box = _place(_pet_parts(label, rng), image_size, region, rng)
    colours = _palette(rng)
    line_width = max(1, round(image_size / 80))
    for kind, points, colour in placed:
        points = _flat(points)
        if kind == "line":
            draw.line(points, fill=colours[colour], width=line_width)
        else:
            draw.polygon(points, fill=colours[colour])
    return np.asarray(image), box


def _noise_tiles(image_size: int, rng) -> np.ndarray:
    """A few (2S, 2S, 3) int16 noise tiles; each image adds a random crop of one."""
    return np.round(rng.normal(0, NOISE_SIGMA, (_NOISE_TILES, 2 * image_size, 2 * image_size, 3))).astype(np.int16)


def generate_pets(count: int, image_size: int, seed: int, region: str = "any") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw count synthetic pets, half cats and half dogs, in a seeded random order.

    Args:
        count: number of images (an odd count has one more cat).
        image_size: side S in pixels.
        seed: the same seed gives the same bytes.
        region: "any", or "left"/"right" to keep the whole object box in that half of the image.

    Returns:
        images uint8 (N, S, S, 3), labels int64 (N,) with 0 = cat and 1 = dog,
        boxes float32 (N, 4) [x0, y0, x1, y1] of each object in pixels.
    """
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image size must be an integer of at least 8 pixels, got {image_size!r}")
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 2).astype(np.int64)
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    boxes = np.empty((count, 4), np.float32)
    tiles = _noise_tiles(image_size, rng)
    for index, label in enumerate(labels):
        image, boxes[index] = draw_pet(int(label), image_size, rng, region)
        tile = tiles[rng.integers(_NOISE_TILES)]
        top, left = rng.integers(0, image_size, 2)
        noise = tile[top:top + image_size, left:left + image_size]  # (S, S, 3)
        images[index] = np.clip(image + noise, 0, 255)
    return images, labels, boxes
