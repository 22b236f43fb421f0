"""Photometric distortion: the colour augmentation of the segmentation field's standard training pipelines.

A segmenter that scores semantic distortion should tell classes apart by what they are, not by the exact
palette of the few images it was trained on: otherwise a translation that keeps every class but shifts the
colours a little (the residue of a short GAN run) reads as distortion. mmsegmentation's
``PhotoMetricDistortion`` (in its Cityscapes and GTA5 pipelines, and so in the segmenters of most domain
adaptation work) draws, each with probability 1/2: a brightness offset, a contrast factor (before or after
the colour changes, also 1/2 each), a saturation factor and a hue rotation. `photometric_distortion` draws
them the same way; `adjust` applies given values (used by the invariance check in
``benchmarks/segmenter_invariance.py`` too).

Saturation and hue are changed in Pillow's HSV representation (8 bits per channel, hue on a circle of 256).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["PhotometricRange", "adjust", "photometric_distortion"]


@dataclass(frozen=True)
class PhotometricRange:
    """How far each change may go: mmsegmentation's ``PhotoMetricDistortion`` defaults."""

    brightness: float = 32.0  # offset in [-b, b], in 8-bit levels
    contrast: tuple[float, float] = (0.5, 1.5)  # factor on every channel
    saturation: tuple[float, float] = (0.5, 1.5)  # factor on the HSV saturation
    hue: float = 18.0  # rotation in [-h, h] degrees


def adjust(
    pixels: np.ndarray,
    *,
    brightness: float = 0.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    hue: float = 0.0,
    contrast_first: bool = True,
) -> np.ndarray:
    """One photometric change of an (h, w, 3) uint8 image: brightness offset (levels), contrast factor,
    saturation factor, hue rotation (degrees), in mmsegmentation's order; returns (h, w, 3) uint8."""
    out = pixels.astype(np.float32)
    if brightness:
        out = np.clip(out + brightness, 0, 255)
    if contrast_first and contrast != 1.0:
        out = np.clip(out * contrast, 0, 255)
    if saturation != 1.0 or hue:
        hsv = np.asarray(Image.fromarray(out.round().astype(np.uint8)).convert("HSV")).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
        hsv[..., 0] += hue * 256.0 / 360.0
        out = np.asarray(Image.fromarray(_to_uint8_hsv(hsv), "HSV").convert("RGB")).astype(np.float32)
    if not contrast_first and contrast != 1.0:
        out = np.clip(out * contrast, 0, 255)
    return out.round().astype(np.uint8)


def _to_uint8_hsv(hsv: np.ndarray) -> np.ndarray:
    """(h, w, 3) float HSV -> uint8, the hue wrapped on its circle of 256 (255.6 rounds to 0, not 256)."""
    out = hsv.round()
    out[..., 0] = np.mod(out[..., 0], 256.0)
    return out.astype(np.uint8)


def photometric_distortion(
    pixels: np.ndarray, rng: np.random.Generator, ranges: PhotometricRange = PhotometricRange()
) -> np.ndarray:
    """A random photometric distortion of an (h, w, 3) uint8 image, drawn as mmsegmentation's
    ``PhotoMetricDistortion`` draws it (each change with probability 1/2); returns (h, w, 3) uint8."""
    brightness = rng.uniform(-ranges.brightness, ranges.brightness) if rng.random() < 0.5 else 0.0
    contrast_first = bool(rng.random() < 0.5)
    contrast = rng.uniform(*ranges.contrast) if rng.random() < 0.5 else 1.0
    saturation = rng.uniform(*ranges.saturation) if rng.random() < 0.5 else 1.0
    hue = rng.uniform(-ranges.hue, ranges.hue) if rng.random() < 0.5 else 0.0
    return adjust(
        pixels,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        hue=hue,
        contrast_first=contrast_first,
    )
