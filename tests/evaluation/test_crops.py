"""Crop views: working size, grids that cover the image, crop classes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semst.evaluation.crops import CropView, crop_classes, grid_positions, random_crops, take_crops


def test_working_size_sets_the_short_side():
    view = CropView(short_side=256, crop_size=64)
    assert view.working_size(2048, 1024) == (512, 256)
    assert view.working_size(512, 256) == (512, 256)
    assert view.working_size(100, 300) == (256, 768)
    assert CropView(short_side=None, crop_size=64).working_size(80, 40) == (128, 64)  # enlarged to the crop
    with pytest.raises(ValueError, match="short_side"):
        CropView(short_side=32, crop_size=64)


def test_resize_keeps_label_ids():
    labels = np.zeros((20, 40), np.uint8)
    labels[:, 20:] = 7
    resized = CropView(short_side=10, crop_size=8).resize_labels(labels)
    assert resized.shape == (10, 20) and set(np.unique(resized)) == {0, 7}
    image = CropView(short_side=10, crop_size=8).resize_image(Image.new("RGB", (40, 20), (10, 20, 30)))
    assert image.shape == (10, 20, 3) and image.dtype == np.uint8


def test_grid_covers_the_image_edge_to_edge():
    assert grid_positions(256, 512, 64) == [
        (t, left) for t in (0, 64, 128, 192) for left in range(0, 512, 64)
    ]
    positions = grid_positions(100, 70, 32)  # 4 rows (overlapping), 3 columns
    tops, lefts = sorted({p[0] for p in positions}), sorted({p[1] for p in positions})
    assert tops == [0, 23, 45, 68] and lefts == [0, 19, 38]
    with pytest.raises(ValueError, match="smaller than"):
        grid_positions(20, 70, 32)


def test_random_and_taken_crops():
    image = np.arange(50 * 60 * 3, dtype=np.int64).reshape(50, 60, 3).astype(np.uint8)
    positions = random_crops(50, 60, 16, 5, np.random.default_rng(0))
    crops = take_crops(image, positions, 16)
    assert crops.shape == (5, 16, 16, 3)
    top, left = positions[2]
    np.testing.assert_array_equal(crops[2], image[top : top + 16, left : left + 16])
    assert positions == random_crops(50, 60, 16, 5, np.random.default_rng(0))


def test_crop_class_is_the_dominant_labelled_class():
    labels = np.full((8, 16), 255, np.uint8)
    labels[:, :6] = 1  # crop 0: 6 columns of class 1, 2 of class 2
    labels[:, 6:8] = 2
    labels[:4, 8:] = 3  # crop 1: half class 3, half ignored -> class 3 covers all labelled pixels
    classes = crop_classes(labels, [(0, 0), (0, 8)], 8)
    assert classes.tolist() == [1, 3]
    labels[:, 8:12] = 4  # crop 1: 16 px of 4, 8 px of 3 -> 4 covers 2/3 of the labelled pixels
    assert crop_classes(labels, [(0, 8)], 8, min_fraction=0.5).tolist() == [4]
    assert crop_classes(labels, [(0, 8)], 8, min_fraction=0.7).tolist() == [-1]
    assert crop_classes(np.full((8, 8), 255, np.uint8), [(0, 0)], 8).tolist() == [-1]
