"""The SYNTHIA label table (class ids -> Cityscapes train ids) and SYNTHIA's 16-bit label files.

SYNTHIA-RAND-CITYSCAPES stores its ground truth in ``GT/LABELS/*.png``: 16-bit-per-channel RGB(A) PNGs whose first
channel (R) holds SYNTHIA's class id (0..22) and whose second channel holds an instance id. Pillow reduces 16-bit
RGB PNGs to 8 bits by keeping the high byte, which is 0 for every class id, so :func:`load_synthia_label` decodes
the files with ``pypng`` (pure Python) instead.

The ids are mapped into the 19 Cityscapes train ids (:mod:`semst.data.labels`) with the table of SYNTHIA's README
as used by DACS and DAFormer: the "16-class protocol". Terrain, truck and train (train ids 9, 14, 16) have no
SYNTHIA counterpart, so they never occur; :data:`SYNTHIA_PRESENT_TRAIN_IDS` lists the 16 train ids that do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import png

from semst.data.images import ImageLoadError
from semst.data.labels import IGNORE_INDEX, NUM_TRAIN_IDS

__all__ = [
    "SYNTHIA_LABELS",
    "SYNTHIA_PRESENT_TRAIN_IDS",
    "SynthiaLabel",
    "load_synthia_ids",
    "load_synthia_label",
    "synthia_ids_to_train_ids",
]


@dataclass(frozen=True)
class SynthiaLabel:
    """One row of the SYNTHIA label table.

    Attributes:
        name: SYNTHIA's class name, e.g. ``"car"``.
        id: The class id stored in the first channel of ``GT/LABELS/*.png``.
        train_id: The Cityscapes train id (0..18) of the class, or :data:`IGNORE_INDEX` for classes outside the
            16-class protocol.
    """

    name: str
    id: int
    train_id: int


_S = SynthiaLabel
# fmt: off
SYNTHIA_LABELS: tuple[SynthiaLabel, ...] = (
    #   name             id  trainId (Cityscapes name)
    _S("void",            0, 255),
    _S("sky",             1, 10),   # sky
    _S("building",        2, 2),    # building
    _S("road",            3, 0),    # road
    _S("sidewalk",        4, 1),    # sidewalk
    _S("fence",           5, 4),    # fence
    _S("vegetation",      6, 8),    # vegetation
    _S("pole",            7, 5),    # pole
    _S("car",             8, 13),   # car
    _S("traffic sign",    9, 7),    # traffic sign
    _S("pedestrian",     10, 11),   # person
    _S("bicycle",        11, 18),   # bicycle
    _S("motorcycle",     12, 17),   # motorcycle
    _S("parking-slot",   13, 255),
    _S("road-work",      14, 255),
    _S("traffic light",  15, 6),    # traffic light
    _S("terrain",        16, 255),  # not in the 16-class protocol
    _S("rider",          17, 12),   # rider
    _S("truck",          18, 255),  # not in the 16-class protocol
    _S("bus",            19, 15),   # bus
    _S("train",          20, 255),  # not in the 16-class protocol
    _S("wall",           21, 3),    # wall
    _S("lanemarking",    22, 255),
)
"""All SYNTHIA classes in id order, with their Cityscapes train ids (SYNTHIA README, DACS/DAFormer mapping)."""
# fmt: on
del _S

SYNTHIA_PRESENT_TRAIN_IDS: tuple[int, ...] = tuple(
    sorted(label.train_id for label in SYNTHIA_LABELS if label.train_id < NUM_TRAIN_IDS)
)
"""The 16 Cityscapes train ids that SYNTHIA annotates (all but terrain 9, truck 14 and train 16)."""

# SYNTHIA id -> train id for every 16-bit value; ids without a row map to IGNORE_INDEX.
_SYNTHIA_TO_TRAIN_ID = np.full(1 << 16, IGNORE_INDEX, dtype=np.uint8)
for _label in SYNTHIA_LABELS:
    _SYNTHIA_TO_TRAIN_ID[_label.id] = _label.train_id
del _label


def synthia_ids_to_train_ids(synthia_ids: np.ndarray) -> np.ndarray:
    """Converts SYNTHIA class ids to Cityscapes train ids (16-class protocol).

    Args:
        synthia_ids: Integer SYNTHIA class ids of any shape, typically ``(H, W)``.

    Returns:
        A ``uint8`` array of the same shape: train ids for the 16 mapped classes, :data:`IGNORE_INDEX` for the
        others and for values outside the table (negative or above 22).

    Raises:
        TypeError: ``synthia_ids`` is not an integer array.
    """
    synthia_ids = np.asarray(synthia_ids)
    if not np.issubdtype(synthia_ids.dtype, np.integer):
        raise TypeError(
            f"synthia_ids must hold integer class ids, got an array of dtype {synthia_ids.dtype}."
        )
    known = (synthia_ids >= 0) & (synthia_ids < (1 << 16))
    train_ids = np.full(synthia_ids.shape, IGNORE_INDEX, dtype=np.uint8)
    train_ids[known] = _SYNTHIA_TO_TRAIN_ID[synthia_ids[known]]
    return train_ids


def _png_color_type(path: str | os.PathLike[str]) -> int | None:
    """The colour type byte of a PNG's IHDR chunk (3 = palette), or None for a file that is not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[25]


def _decode_fast(path: str | os.PathLike[str]) -> np.ndarray | None:
    """First channel via pyspng (libspng, about 100x faster than pypng) if installed; None to fall back."""
    try:
        import pyspng
    except ImportError:
        return None
    if _png_color_type(path) in (None, 3):  # not a PNG, or a palette image whose indices pyspng would expand
        return None
    with open(path, "rb") as handle:
        values = pyspng.load(handle.read())
    return (values if values.ndim == 2 else values[:, :, 0]).astype(np.uint16)


def load_synthia_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads the SYNTHIA class ids of a ``GT/LABELS`` file: the first channel, at its full bit depth.

    Any PNG is accepted (8- or 16-bit, grayscale, grayscale+alpha, RGB, RGBA, palette); the first stored channel
    is returned (the palette index for palette images). Decoding uses pyspng when it is installed
    (``pip install 'semst[fastpng]'``: milliseconds a file) and pure-Python ``pypng`` otherwise (about 1 to 2 s
    for a 1280x760 16-bit RGBA file).

    Args:
        path: The label file.

    Returns:
        ``(H, W)`` ``uint16`` class ids.

    Raises:
        ImageLoadError: The file is missing, not a PNG, or corrupt; the message names the file.
    """
    try:
        fast = _decode_fast(path)
    except (OSError, RuntimeError, ValueError) as error:
        raise ImageLoadError(
            path, f"not a readable PNG label file ({type(error).__name__}: {error})"
        ) from error
    if fast is not None:
        return fast
    try:
        width, height, rows, info = png.Reader(filename=os.fspath(path)).read()
        values = np.vstack([np.asarray(row) for row in rows])  # (H, W * planes)
    except (OSError, png.Error, ValueError) as error:
        raise ImageLoadError(
            path, f"not a readable PNG label file ({type(error).__name__}: {error})"
        ) from error
    planes = int(info["planes"])
    values = values.reshape(height, width, planes)  # (H, W, planes)
    return values[:, :, 0].astype(np.uint16)


def load_synthia_label(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads a SYNTHIA ``GT/LABELS`` file as Cityscapes train ids.

    Args:
        path: The label file (16-bit RGB(A) PNG, class id in the first channel).

    Returns:
        ``(H, W)`` ``uint8`` train ids (16-class protocol, others :data:`IGNORE_INDEX`).

    Raises:
        ImageLoadError: The file is missing, not a PNG, or corrupt.
    """
    return synthia_ids_to_train_ids(load_synthia_ids(path))
