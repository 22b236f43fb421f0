"""Photometric distortion: each change against a hand computation, the draw, and training with it."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from semst.segmentation.photometric import PhotometricRange, adjust, photometric_distortion


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)


def test_no_change_is_the_identity(pixels):
    assert np.array_equal(adjust(pixels), pixels)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the rounding of a half level (float32 against float64)."""
    return np.abs(a.astype(np.float64) - b).max() <= 1


def test_brightness_and_contrast_are_clipped_offsets_and_factors(pixels):
    expected = np.clip(pixels.astype(np.float64) + 30, 0, 255).round()
    assert np.array_equal(adjust(pixels, brightness=30), expected)
    assert _close(adjust(pixels, contrast=1.3), np.clip(pixels.astype(np.float64) * 1.3, 0, 255).round())
    # mmsegmentation's order: brightness, then contrast (when first) ...
    expected = np.clip(np.clip(pixels.astype(np.float64) - 20, 0, 255) * 0.7, 0, 255).round()
    assert _close(adjust(pixels, brightness=-20, contrast=0.7), expected)
    # ... or contrast after the colour changes
    expected = np.clip(adjust(pixels, saturation=0.5).astype(np.float64) * 1.2, 0, 255).round()
    assert _close(adjust(pixels, saturation=0.5, contrast=1.2, contrast_first=False), expected)


def test_saturation_zero_is_grey_and_hue_rotates_like_colorsys():
    grey = adjust(np.array([[[200, 40, 90]]], dtype=np.uint8), saturation=0.0)
    assert grey[0, 0, 0] == grey[0, 0, 1] == grey[0, 0, 2] == 200  # HSV value: the largest channel
    red = np.array([[[255, 0, 0]]], dtype=np.uint8)
    rotated = adjust(red, hue=120.0).astype(np.float64) / 255  # a third of the circle: green
    expected = colorsys.hsv_to_rgb(120 / 360, 1.0, 1.0)
    assert np.allclose(rotated[0, 0], expected, atol=3 / 255)
    back = adjust(adjust(red, hue=90.0), hue=-90.0)
    assert np.abs(back.astype(int) - red.astype(int)).max() <= 3
    assert np.array_equal(adjust(red, hue=359.9), red)  # wraps on the circle, never out of range


def test_draws_are_reproducible_and_within_the_ranges(pixels):
    a = photometric_distortion(pixels, np.random.default_rng(3))
    b = photometric_distortion(pixels, np.random.default_rng(3))
    assert a.dtype == np.uint8 and a.shape == pixels.shape and np.array_equal(a, b)
    draws = [photometric_distortion(pixels, np.random.default_rng(seed)) for seed in range(40)]
    assert sum(np.array_equal(d, pixels) for d in draws) < 10  # each change has probability 1/2
    flat = np.full((4, 4, 3), 128, dtype=np.uint8)  # grey: only brightness and contrast move it
    ranges = PhotometricRange()
    for seed in range(40):
        value = int(photometric_distortion(flat, np.random.default_rng(seed))[0, 0, 0])
        low = (128 - ranges.brightness) * ranges.contrast[0]
        high = (128 + ranges.brightness) * ranges.contrast[1]
        assert low - 1 <= value <= high + 1
