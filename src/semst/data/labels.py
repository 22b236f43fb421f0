"""The Cityscapes label table and label-map files (class-id PNGs), for the semantic-distortion protocol.

The table is the one of the official cityscapesScripts (``cityscapesscripts/helpers/labels.py``), written out
here as data so that semst needs neither that package nor a download. Cityscapes stores two kinds of class
maps: ``*_gtFine_labelIds.png`` with the 34 label ids, and ``*_gtFine_labelTrainIds.png`` with the 19
train ids used for evaluation, every other label mapped to :data:`IGNORE_INDEX` (255).
:func:`ids_to_train_ids` converts the first kind into the second.

A label map is an ``(H, W)`` ``uint8`` array of class ids. :func:`load_label_map` reads the grayscale,
palette (palette index = class id) and 16-bit PNGs that segmentation tools write, and refuses colour images,
whose pixels are colours, not ids (:func:`decolorize` converts those). :func:`save_label_map` writes atomically
through :func:`semst.data.images.save_image`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from semst.data.images import ImageLoadError, save_image

__all__ = [
    "CITYSCAPES_LABELS",
    "IGNORE_INDEX",
    "NUM_TRAIN_IDS",
    "TRAIN_ID_COLORS",
    "TRAIN_ID_NAMES",
    "CityscapesLabel",
    "colorize",
    "decolorize",
    "ids_to_train_ids",
    "load_label_map",
    "save_label_map",
]

IGNORE_INDEX = 255
"""Class id of pixels that are not scored (Cityscapes' trainId of void and rare classes)."""


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of the Cityscapes label table.

    Attributes:
        name: The class name, e.g. ``"car"``.
        id: The label id stored in ``*_gtFine_labelIds.png`` (-1 for the license plate, which has none).
        train_id: The evaluation class, 0..18, or :data:`IGNORE_INDEX` for classes that are not scored
            (-1 for the license plate, as in cityscapesScripts).
        category: The coarse category, e.g. ``"vehicle"``.
        category_id: The category's id, 0..7.
        has_instances: Whether instances of the class are annotated separately.
        ignore_in_eval: Whether pixels of the class are ignored by the official evaluation.
        color: The class's colour in the official colour maps, ``(R, G, B)`` in 0..255.
    """

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


_L = CityscapesLabel
# fmt: off
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    #   name                    id  trainId  category       catId  instances ignored  color
    _L("unlabeled",              0, 255,     "void",         0,    False,    True,    (0, 0, 0)),
    _L("ego vehicle",            1, 255,     "void",         0,    False,    True,    (0, 0, 0)),
    _L("rectification border",   2, 255,     "void",         0,    False,    True,    (0, 0, 0)),
    _L("out of roi",             3, 255,     "void",         0,    False,    True,    (0, 0, 0)),
    _L("static",                 4, 255,     "void",         0,    False,    True,    (0, 0, 0)),
    _L("dynamic",                5, 255,     "void",         0,    False,    True,    (111, 74, 0)),
    _L("ground",                 6, 255,     "void",         0,    False,    True,    (81, 0, 81)),
    _L("road",                   7, 0,       "flat",         1,    False,    False,   (128, 64, 128)),
    _L("sidewalk",               8, 1,       "flat",         1,    False,    False,   (244, 35, 232)),
    _L("parking",                9, 255,     "flat",         1,    False,    True,    (250, 170, 160)),
    _L("rail track",            10, 255,     "flat",         1,    False,    True,    (230, 150, 140)),
    _L("building",              11, 2,       "construction", 2,    False,    False,   (70, 70, 70)),
    _L("wall",                  12, 3,       "construction", 2,    False,    False,   (102, 102, 156)),
    _L("fence",                 13, 4,       "construction", 2,    False,    False,   (190, 153, 153)),
    _L("guard rail",            14, 255,     "construction", 2,    False,    True,    (180, 165, 180)),
    _L("bridge",                15, 255,     "construction", 2,    False,    True,    (150, 100, 100)),
    _L("tunnel",                16, 255,     "construction", 2,    False,    True,    (150, 120, 90)),
    _L("pole",                  17, 5,       "object",       3,    False,    False,   (153, 153, 153)),
    _L("polegroup",             18, 255,     "object",       3,    False,    True,    (153, 153, 153)),
    _L("traffic light",         19, 6,       "object",       3,    False,    False,   (250, 170, 30)),
    _L("traffic sign",          20, 7,       "object",       3,    False,    False,   (220, 220, 0)),
    _L("vegetation",            21, 8,       "nature",       4,    False,    False,   (107, 142, 35)),
    _L("terrain",               22, 9,       "nature",       4,    False,    False,   (152, 251, 152)),
    _L("sky",                   23, 10,      "sky",          5,    False,    False,   (70, 130, 180)),
    _L("person",                24, 11,      "human",        6,    True,     False,   (220, 20, 60)),
    _L("rider",                 25, 12,      "human",        6,    True,     False,   (255, 0, 0)),
    _L("car",                   26, 13,      "vehicle",      7,    True,     False,   (0, 0, 142)),
    _L("truck",                 27, 14,      "vehicle",      7,    True,     False,   (0, 0, 70)),
    _L("bus",                   28, 15,      "vehicle",      7,    True,     False,   (0, 60, 100)),
    _L("caravan",               29, 255,     "vehicle",      7,    True,     True,    (0, 0, 90)),
    _L("trailer",               30, 255,     "vehicle",      7,    True,     True,    (0, 0, 110)),
    _L("train",                 31, 16,      "vehicle",      7,    True,     False,   (0, 80, 100)),
    _L("motorcycle",            32, 17,      "vehicle",      7,    True,     False,   (0, 0, 230)),
    _L("bicycle",               33, 18,      "vehicle",      7,    True,     False,   (119, 11, 32)),
    _L("license plate",         -1, -1,      "vehicle",      7,    False,    True,    (0, 0, 142)),
)
"""All Cityscapes labels in id order, then the license plate (id -1), as in cityscapesScripts."""
# fmt: on
del _L

_TRAIN_LABELS = sorted(
    (label for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255), key=lambda x: x.train_id
)

NUM_TRAIN_IDS = 19
"""Number of evaluated Cityscapes classes (train ids 0..18)."""

TRAIN_ID_NAMES: tuple[str, ...] = tuple(label.name for label in _TRAIN_LABELS)
"""Class names in train-id order: ``TRAIN_ID_NAMES[0] == "road"``."""

TRAIN_ID_COLORS: tuple[tuple[int, int, int], ...] = tuple(label.color for label in _TRAIN_LABELS)
"""Class colours ``(R, G, B)`` in train-id order: ``TRAIN_ID_COLORS[0] == (128, 64, 128)``."""

# Label id -> train id for ids 0..255; ids without a label map to IGNORE_INDEX.
_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _label in CITYSCAPES_LABELS:
    if _label.id >= 0:
        _ID_TO_TRAIN_ID[_label.id] = _label.train_id
del _label

# Train id -> colour for ids 0..255; IGNORE_INDEX and every id >= NUM_TRAIN_IDS are black.
_PALETTE = np.zeros((256, 3), dtype=np.uint8)
_PALETTE[:NUM_TRAIN_IDS] = np.array(TRAIN_ID_COLORS, dtype=np.uint8)

# Lossy formats would change class ids near edges.
_LOSSY_EXTENSIONS = frozenset({".jpg", ".jpeg", ".webp"})


def _integer_array(values: object, what: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must hold integer class ids, got an array of dtype {array.dtype}.")
    return array


def ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Converts Cityscapes label ids (``*_gtFine_labelIds.png``) to train ids.

    Args:
        label_ids: Integer label ids of any shape, typically ``(H, W)``.

    Returns:
        A ``uint8`` array of the same shape holding train ids 0..18, and :data:`IGNORE_INDEX` for ids that are
        not evaluated and for ids that are not in the table (negative, or above 33).

    Raises:
        TypeError: ``label_ids`` is not an integer array.
    """
    label_ids = _integer_array(label_ids, "label_ids")
    known = (label_ids >= 0) & (label_ids < 256)
    train_ids = np.full(label_ids.shape, IGNORE_INDEX, dtype=np.uint8)
    train_ids[known] = _ID_TO_TRAIN_ID[label_ids[known]]
    return train_ids


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Paints a train-id map with the Cityscapes colours.

    Args:
        train_ids: Integer train ids, ``(H, W)`` (any shape works).

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB; :data:`IGNORE_INDEX` and every value outside 0..18 is black.

    Raises:
        TypeError: ``train_ids`` is not an integer array.
    """
    train_ids = _integer_array(train_ids, "train_ids")
    colors = np.zeros((*train_ids.shape, 3), dtype=np.uint8)
    known = (train_ids >= 0) & (train_ids < NUM_TRAIN_IDS)
    colors[known] = _PALETTE[train_ids[known]]
    return colors


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 -> ``(...)`` int32 codes ``R << 16 | G << 8 | B``."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def decolorize(rgb: np.ndarray | Image.Image) -> np.ndarray:
    """Converts a Cityscapes colour map (``*_gtFine_color.png`` style) back to train ids.

    Only the 19 exact train-id colours are recognised; every other colour (black, the colours of the ignored
    labels, anti-aliased or JPEG-damaged edges) becomes :data:`IGNORE_INDEX`.

    Args:
        rgb: ``(H, W, 3)`` ``uint8`` RGB values, or an RGB Pillow image.

    Returns:
        ``(H, W)`` ``uint8`` train ids.

    Raises:
        ValueError: ``rgb`` is not ``(H, W, 3)`` ``uint8`` (or an RGB image).
    """
    if isinstance(rgb, Image.Image):
        if rgb.mode != "RGB":
            raise ValueError(f"decolorize expects an RGB image, got mode '{rgb.mode}'.")
        rgb = np.asarray(rgb)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"decolorize expects (H, W, 3) uint8 RGB, got shape {rgb.shape} and dtype {rgb.dtype}."
        )
    codes = _pack_rgb(rgb)  # (H, W)
    palette_codes = _pack_rgb(_PALETTE[:NUM_TRAIN_IDS])  # (19,), all distinct
    order = np.argsort(palette_codes)
    sorted_codes = palette_codes[order]
    position = np.clip(np.searchsorted(sorted_codes, codes), 0, NUM_TRAIN_IDS - 1)  # (H, W)
    found = sorted_codes[position] == codes
    return np.where(found, order[position], IGNORE_INDEX).astype(np.uint8)


def load_label_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads a label map: a PNG (or other lossless image) whose pixel values are class ids.

    Accepted modes: ``L`` (8-bit grayscale, Cityscapes' ``*_labelTrainIds.png``), ``P`` (palette image; the
    palette index is the class id and the palette colours are ignored), and 16- or 32-bit integer grayscale
    (``I;16``, ``I``) whose values all lie in 0..255. Colour images are refused: their pixels are colours, and
    :func:`decolorize` converts Cityscapes colour maps. The EXIF orientation is applied, as
    :func:`semst.data.images.load_rgb` does for the images, so both stay aligned.

    Args:
        path: The label map file.

    Returns:
        ``(H, W)`` ``uint8`` class ids.

    Raises:
        ImageLoadError: The file is missing, unreadable, not an image, or corrupt.
        ValueError: The image is a colour image, has another unsupported mode, or holds values above 255 or
            below 0. The message names the file.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except Exception as error:
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error

    mode = image.mode
    if mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr"):
        raise ValueError(
            f"Label map '{path}' is a {mode} colour image; it looks like a colour label map (such as "
            f"Cityscapes' *_gtFine_color.png). Label maps must hold class ids in a grayscale (L), palette (P) or "
            f"16-bit image; convert colour maps with semst.data.labels.decolorize."
        )
    if mode not in ("L", "P", "I") and not mode.startswith("I;16"):
        raise ValueError(
            f"Label map '{path}' has unsupported image mode '{mode}'; expected L (grayscale), P (palette index "
            f"= class id), I;16 or I with values 0..255."
        )
    values = np.asarray(image)  # (H, W)
    if mode in ("L", "P"):
        return np.array(values, dtype=np.uint8)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(
            f"Label map '{path}' ({mode}) holds values from {int(values.min())} to {int(values.max())}; class "
            f"ids must lie in 0..255."
        )
    return values.astype(np.uint8)


def save_label_map(array: np.ndarray, path: str | os.PathLike[str], *, palette: bool = False) -> None:
    """Writes a label map atomically as an 8-bit image (mode ``L``, or ``P`` with ``palette=True``).

    Args:
        array: ``(H, W)`` integer class ids in 0..255.
        path: The destination; its extension picks the format. Lossless formats only (``.png`` is usual);
            JPEG and WebP would change ids near edges and are refused.
        palette: Write a palette image whose colours are the Cityscapes train-id colours, so the file shows
            the classes in an image viewer; the stored values (palette indices) are still the class ids, which
            :func:`load_label_map` returns.

    Raises:
        TypeError: ``array`` is not an integer array.
        ValueError: ``array`` is not 2-D, holds values outside 0..255, or ``path`` names a lossy format.
        OSError: The file could not be written.
    """
    path = Path(path)
    if path.suffix.lower() in _LOSSY_EXTENSIONS:
        raise ValueError(
            f"Cannot save label map to '{path}': {path.suffix} is a lossy format that would change class ids; "
            f"use .png."
        )
    values = _integer_array(array, "array")
    if values.ndim != 2:
        raise ValueError(f"A label map must be (H, W), got shape {values.shape} for '{path}'.")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(
            f"Label map for '{path}' holds values from {int(values.min())} to {int(values.max())}; class ids "
            f"must lie in 0..255."
        )
    pixels = np.ascontiguousarray(values, dtype=np.uint8)  # (H, W)
    if palette:
        # frombytes keeps the values as palette indices; converting an L image to P would re-quantise them.
        image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
        image.putpalette(_PALETTE.tobytes(), rawmode="RGB")
    else:
        image = Image.fromarray(pixels)
    save_image(image, path)
