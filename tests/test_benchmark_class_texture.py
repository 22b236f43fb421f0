"""benchmarks/class_texture.py: its measures against hand-computed values (fast; the script's run on a study
is in tests/test_benchmark_scripts.py, marked slow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def texture():
    spec = importlib.util.spec_from_file_location("class_texture", ROOT / "benchmarks" / "class_texture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sobel_magnitude_of_a_ramp_is_its_slope(texture):
    image = np.tile(np.arange(10, dtype=float) * 0.05, (6, 1))  # (6, 10), +0.05 per column
    magnitude = texture.sobel_magnitude(image)
    # Inside, the Sobel kernel divided by 8 gives the slope exactly; at the replicated edges, half of it.
    assert np.allclose(magnitude[:, 1:-1], 0.05)
    assert np.allclose(magnitude[:, [0, -1]], 0.025)
    assert np.allclose(texture.sobel_magnitude(image.T), magnitude.T)  # the same along the other axis
    assert np.allclose(texture.sobel_magnitude(np.full((5, 7), 0.3)), 0.0)


def test_interior_keeps_pixels_far_from_other_classes_and_ignores_the_frame(texture):
    mask = np.zeros((9, 12), bool)
    mask[:, :6] = True  # the left half, touching the top, bottom and left sides of the image
    for inset, kept in ((0, 6), (1, 5), (2, 4), (3, 3)):
        inner = texture.interior(mask, inset)  # whole columns: the image's frame is not a class border
        assert inner[:, :kept].all() and not inner[:, kept:].any(), inset
    single = np.zeros((7, 7), bool)
    single[3, 3] = True
    assert not texture.interior(single, 1).any()


def test_class_texture_and_spread_per_class(texture):
    rng = np.random.default_rng(0)
    label = np.zeros((20, 20), np.uint8)
    label[:, 10:] = 5
    label[0, 0] = 255  # unlabelled: no class of its own
    rgb = np.full((20, 20, 3), 0.5)
    rgb[:, 10:] = rng.uniform(0, 1, size=(20, 10, 3))  # class 5: noise; class 0: flat
    figures = texture.class_texture(rgb, label, num_classes=7, inset=2)
    assert figures.shape == (2, 7)
    assert figures[:, 0] == pytest.approx(0, abs=1e-12)  # flat grey: no texture, no colour spread
    inner = texture.interior(label == 5, 2)
    expected_texture = texture.sobel_magnitude(texture.luminance(rgb))[inner].mean()
    assert figures[0, 5] == pytest.approx(expected_texture) and figures[0, 5] > 0.1
    assert figures[1, 5] == pytest.approx(np.mean([rgb[..., k][inner].std() for k in range(3)]))
    assert np.isnan(figures[:, [1, 2, 3, 4, 6]]).all()
    with pytest.raises(ValueError, match="differ in size"):
        texture.class_texture(rgb, label[:10], num_classes=7, inset=2)


def test_border_band_sees_a_frame_and_nothing_else(texture):
    image = np.full((32, 40), 0.4)
    assert texture.border_band(image, 4) == 0
    framed = image.copy()
    framed[:4] += 0.2  # a light band along the top only
    assert texture.border_band(framed, 4) == pytest.approx(0.2 / 4)  # one side of four
    ramp = np.tile(np.linspace(0, 1, 40), (32, 1))  # a scene's own gradient: left and right sides differ
    assert texture.border_band(ramp, 4) == pytest.approx(2 * 4 * (1 / 39) / 4)
    with pytest.raises(ValueError, match="too small"):
        texture.border_band(np.zeros((8, 40)), 4)
