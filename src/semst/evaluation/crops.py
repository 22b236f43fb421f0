"""How the realism scores see an image: rescaled to a working size, then cut into square crops.

The domain classifier and the crop-based feature extractors of :mod:`semst.evaluation.realism` judge crops,
not whole images. A :class:`CropView` fixes how: the image is first resized so that its shorter side is
``short_side`` pixels (Pillow bicubic, which low-pass filters when it shrinks; label maps nearest), so a
2048x1024 Cityscapes frame and a 512x256 frame of semst's world are judged at the same scale; then it is
cut into ``crop_size`` squares. The default, 64-pixel crops of a frame whose shorter side is 256, holds a
part of one or two objects (a piece of facade, of road, a car) but not the arrangement of the scene (how
high the horizon is, how many buildings line the street): the score is about how things look (colour,
texture, noise, blur, shading), which a translation should change, not about the layout, which a
semantics-preserving translation must keep and which differs between the domains of every UDA benchmark.

Training draws random crops (:func:`random_crops`); scoring takes a fixed grid that covers the image
(:func:`grid_positions`), so scores are deterministic and every region counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["CropView", "crop_classes", "grid_positions", "random_crops", "take_crops"]

IGNORE_CLASS = 255


@dataclass(frozen=True)
class CropView:
    """How images become crops.

    Attributes:
        short_side: The images' shorter side is resized to this many pixels first; None keeps the size
            (images whose shorter side is below ``crop_size`` are always enlarged to it).
        crop_size: Side of the square crops, in pixels of the resized image.
    """

    short_side: int | None = 256
    crop_size: int = 64

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise ValueError(f"crop_size must be at least 8 pixels, got {self.crop_size}")
        if self.short_side is not None and self.short_side < self.crop_size:
            raise ValueError(
                f"short_side ({self.short_side}) must be at least crop_size ({self.crop_size}), or None"
            )

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict."""
        return asdict(self)

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of ``width`` x ``height`` is resized to."""
        target = self.short_side if self.short_side is not None else min(width, height)
        target = max(target, self.crop_size)
        if min(width, height) == target:
            return width, height
        scale = target / min(width, height)
        # The short side gets exactly `target`; the long side is rounded and never below it.
        if width <= height:
            return target, max(target, round(height * scale))
        return max(target, round(width * scale)), target

    def resize_image(self, image: Image.Image) -> np.ndarray:
        """The RGB image at the working size, (H, W, 3) uint8."""
        size = self.working_size(*image.size)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return np.asarray(image.convert("RGB"))

    def resize_labels(self, labels: np.ndarray) -> np.ndarray:
        """A label map (H, W) uint8 at the working size (nearest neighbour: ids are never blended)."""
        height, width = labels.shape
        size = self.working_size(width, height)
        if size == (width, height):
            return labels
        return np.asarray(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST))


def grid_positions(height: int, width: int, crop_size: int) -> list[tuple[int, int]]:
    """Top-left corners of a grid of crops that covers an image: ``ceil(H / crop)`` rows and
    ``ceil(W / crop)`` columns, evenly spread from edge to edge (overlapping where the size is not a
    multiple of the crop). Row-major order."""
    if height < crop_size or width < crop_size:
        raise ValueError(f"an image of {width}x{height} is smaller than the {crop_size}-pixel crops")

    def starts(length: int) -> list[int]:
        count = math.ceil(length / crop_size)
        if count == 1:
            return [0]
        return [round(i * (length - crop_size) / (count - 1)) for i in range(count)]

    return [(top, left) for top in starts(height) for left in starts(width)]


def random_crops(
    height: int, width: int, crop_size: int, count: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` uniformly random crops of an image."""
    if height < crop_size or width < crop_size:
        raise ValueError(f"an image of {width}x{height} is smaller than the {crop_size}-pixel crops")
    tops = rng.integers(0, height - crop_size + 1, size=count)
    lefts = rng.integers(0, width - crop_size + 1, size=count)
    return [(int(t), int(left)) for t, left in zip(tops, lefts)]


def take_crops(image: np.ndarray, positions: list[tuple[int, int]], crop_size: int) -> np.ndarray:
    """The crops (K, crop, crop, 3) of an image (H, W, 3) at the given top-left corners."""
    return np.stack([image[top : top + crop_size, left : left + crop_size] for top, left in positions])


def crop_classes(
    labels: np.ndarray, positions: list[tuple[int, int]], crop_size: int, *, min_fraction: float = 0.5
) -> np.ndarray:
    """The class of each crop: the class covering at least ``min_fraction`` of its labelled pixels, else -1.

    Args:
        labels: The label map (H, W) uint8 at the working size, 255 = ignore.
        positions: Top-left corners of the crops.
        crop_size: Crop side.
        min_fraction: Share of the labelled (not ignored) pixels the dominant class must cover.

    Returns:
        Class ids (K,) int16; -1 where no class dominates or every pixel is ignored.
    """
    classes = np.full(len(positions), -1, dtype=np.int16)
    for k, (top, left) in enumerate(positions):
        window = labels[top : top + crop_size, left : left + crop_size].ravel()
        window = window[window != IGNORE_CLASS]
        if window.size == 0:
            continue
        counts = np.bincount(window, minlength=1)
        best = int(counts.argmax())
        if counts[best] >= min_fraction * window.size:
            classes[k] = best
    return classes
