"""Tests for semst.data.transforms: CUT's preprocess modes with an explicit random generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semst.data.images import image_to_tensor
from semst.data.transforms import (
    PREPROCESS_MODES,
    MultiScaleCrops,
    make_multiple_of,
    test_transform,
    train_transform,
)


def _gradient(width: int, height: int) -> Image.Image:
    """An RGB image whose pixels are all different: red grows with x, green with y, blue is noise."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, axis=1)
    noise = np.random.default_rng(3).integers(0, 256, size=(height, width))
    return Image.fromarray(np.stack([x, y, noise], axis=-1).round().astype(np.uint8))


@pytest.mark.parametrize(
    ("preprocess", "expected_hw"),
    [
        ("resize_and_crop", (24, 24)),
        ("crop", (24, 24)),
        ("scale_width", (24, 40)),  # 50x30 -> width 40, height round(30 * 40 / 50) = 24
        ("scale_width_and_crop", (24, 24)),
        ("none", (32, 48)),  # 50x30 -> multiples of 4: round(12.5) * 4 = 48, round(7.5) * 4 = 32
    ],
)
def test_output_size_and_range_per_mode(preprocess: str, expected_hw: tuple[int, int]) -> None:
    tensor = train_transform(
        _gradient(50, 30), np.random.default_rng(0), preprocess=preprocess, load_size=40, crop_size=24
    )
    assert tensor.shape == (3, *expected_hw)
    assert tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_all_modes_are_covered() -> None:
    assert set(PREPROCESS_MODES) == {"resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"}


def test_default_sizes_are_cuts() -> None:
    tensor = train_transform(_gradient(300, 200), np.random.default_rng(0))
    assert tensor.shape == (3, 256, 256)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((13, 7), (12, 8)), ((10, 14), (8, 16)), ((2, 1), (4, 4)), ((16, 20), (16, 20))],
)
def test_make_multiple_of_four(size: tuple[int, int], expected: tuple[int, int]) -> None:
    image = _gradient(*size)
    result = make_multiple_of(image)
    assert result.size == expected
    if size == expected:
        assert result is image


def test_multiple_of_four_rule_applies_after_scale_width() -> None:
    # width 42 -> round(10.5) * 4 = 40; height round(30 * 42 / 50) = 25 -> 24
    tensor = train_transform(
        _gradient(50, 30), np.random.default_rng(0), preprocess="scale_width", load_size=42
    )
    assert tensor.shape == (3, 24, 40)


def test_same_seed_same_output_and_global_rng_untouched() -> None:
    image = _gradient(64, 48)
    np.random.seed(1)
    torch.manual_seed(1)
    numpy_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    first = train_transform(image, np.random.default_rng(123), load_size=40, crop_size=32)
    np.random.seed(2)
    torch.manual_seed(2)
    second = train_transform(image, np.random.default_rng(123), load_size=40, crop_size=32)
    assert torch.equal(first, second)

    np.random.seed(1)
    torch.manual_seed(1)
    train_transform(image, np.random.default_rng(5), load_size=40, crop_size=32)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_different_seeds_give_different_crops() -> None:
    image = _gradient(64, 48)
    outputs = {
        train_transform(image, np.random.default_rng(seed), preprocess="crop", crop_size=16, flip=False)
        .numpy()
        .tobytes()
        for seed in range(8)
    }
    assert len(outputs) >= 4


def test_crop_is_a_window_of_the_original() -> None:
    image = _gradient(40, 28)
    full = image_to_tensor(image)
    crop = train_transform(image, np.random.default_rng(7), preprocess="crop", crop_size=16, flip=False)
    matches = [
        (top, left)
        for top in range(28 - 16 + 1)
        for left in range(40 - 16 + 1)
        if torch.equal(full[:, top : top + 16, left : left + 16], crop)
    ]
    assert len(matches) == 1


def test_flip_mirrors_horizontally_with_both_outcomes() -> None:
    image = _gradient(8, 4)  # already a multiple of 4, so "none" leaves the pixels untouched
    plain = image_to_tensor(image)
    mirrored = plain.flip(-1)
    assert not torch.equal(plain, mirrored)
    flipped_count = 0
    for seed in range(32):
        out = train_transform(image, np.random.default_rng(seed), preprocess="none")
        assert torch.equal(out, plain) or torch.equal(out, mirrored)
        flipped_count += int(torch.equal(out, mirrored))
    assert 4 <= flipped_count <= 28
    for seed in range(8):
        out = train_transform(image, np.random.default_rng(seed), preprocess="none", flip=False)
        assert torch.equal(out, plain)


@pytest.mark.parametrize(
    ("preprocess", "size", "load_size"),
    [
        ("crop", (10, 20), 286),  # short side 10 < crop 16
        ("crop", (40, 12), 286),
        ("resize_and_crop", (64, 64), 8),  # load_size below crop_size
        ("scale_width_and_crop", (64, 8), 32),  # scaled height 4 < crop 16
    ],
)
def test_small_images_are_upscaled_for_cropping(
    preprocess: str, size: tuple[int, int], load_size: int
) -> None:
    tensor = train_transform(
        _gradient(*size), np.random.default_rng(0), preprocess=preprocess, load_size=load_size, crop_size=16
    )
    assert tensor.shape == (3, 16, 16)


def test_grayscale_input_gives_three_equal_channels() -> None:
    gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(20, 20), dtype=np.uint8))
    tensor = train_transform(gray, np.random.default_rng(0), load_size=20, crop_size=16)
    assert tensor.shape == (3, 16, 16)
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_invalid_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="scale_width_and_crop"):
        train_transform(_gradient(8, 8), rng, preprocess="resize")
    with pytest.raises(ValueError, match="crop_size"):
        train_transform(_gradient(8, 8), rng, crop_size=0)
    with pytest.raises(ValueError, match="load_size"):
        train_transform(_gradient(8, 8), rng, load_size=-3)


def test_test_transform_keeps_size() -> None:
    image = _gradient(13, 7)
    tensor = test_transform(image)
    assert tensor.shape == (3, 7, 13)
    assert torch.equal(tensor, image_to_tensor(image))


# ----------------------------------------------------------------------------------------------------------
# Multi-scale crops (SemST Eq. 4-5).


def _gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _multiscale(image, seed, **settings):
    return MultiScaleCrops(**settings)(image, np.random.default_rng(seed), 0)


def test_multiscale_crops_are_aligned_views_of_one_region() -> None:
    """The local crop, averaged over scale x scale blocks, is exactly the global crop at the box."""
    image = _gradient_image(150, 100)
    for seed in range(5):
        out = _multiscale(image, seed, global_size=32, scale=2, local_size=24, flip=False)
        assert out.global_crop.shape == (3, 32, 32) and out.crop.shape == (3, 24, 24)
        top, left, h, w = out.box.tolist()
        assert (h, w) == (12, 12) and 0 <= top <= 32 - 12 and 0 <= left <= 32 - 12
        pooled = torch.nn.functional.avg_pool2d(out.crop[None], 2)[0]
        torch.testing.assert_close(out.global_crop[:, top : top + h, left : left + w], pooled)
        # And the local crop is a window of the image itself, at full resolution.
        full = image_to_tensor(image)
        matches = [
            (y, x)
            for y in range(100 - 24 + 1)
            for x in range(150 - 24 + 1)
            if torch.equal(full[:, y, x], out.crop[:, 0, 0])
            and torch.equal(full[:, y : y + 24, x : x + 24], out.crop)
        ]
        assert len(matches) == 1


def test_multiscale_crops_are_deterministic_and_vary_with_the_seed() -> None:
    image = _gradient_image(200, 120)
    settings = {"global_size": 16, "scale": 4, "local_size": 32}
    a, b = _multiscale(image, 3, **settings), _multiscale(image, 3, **settings)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("crop", "global_crop", "box"))
    boxes = {tuple(_multiscale(image, s, **settings).box.tolist()) for s in range(10)}
    assert len(boxes) > 3


def test_multiscale_small_images_are_upscaled_and_width_is_applied() -> None:
    small = _gradient_image(40, 30)
    out = _multiscale(small, 0, global_size=32, scale=2, local_size=32)
    assert out.global_crop.shape == (3, 32, 32) and out.crop.shape == (3, 32, 32)
    # image_width shrinks a wide image first: at width 64 the 64-pixel region spans the whole width.
    wide = _gradient_image(640, 100)
    spec = MultiScaleCrops(global_size=32, scale=2, local_size=32, image_width=64, flip=False)
    out = spec(wide, np.random.default_rng(1), 0)
    assert out.global_crop.shape == (3, 32, 32)
    assert spec.scaled_size(640, 100) == (64, 10) and spec.undersized(640, 100)  # upscaled to cover 64
    assert not MultiScaleCrops(global_size=32, scale=2, local_size=32).undersized(64, 80)


def test_multiscale_flip_mirrors_the_whole_image() -> None:
    image = _gradient_image(64, 64)
    flips = []
    for seed in range(12):
        out = _multiscale(image, seed, global_size=32, scale=2, local_size=64)
        flips.append(torch.equal(out.crop, image_to_tensor(image).flip(-1)))
        assert flips[-1] or torch.equal(out.crop, image_to_tensor(image))
    assert any(flips) and not all(flips)


def _multiscale_by_flipping_the_whole_image(spec: MultiScaleCrops, image: Image.Image, seed: int):
    """MultiScaleCrops as first written: flip the whole image, then cut the crops (a reference)."""
    from semst.data.transforms import _scale_width, _upscale_to_cover
    from semst.multiscale.crops import Box, crop, downsample, sample_multiscale_crops

    rng = np.random.default_rng(seed)
    if spec.image_width is not None:
        image = _scale_width(image, spec.image_width)
    image = _upscale_to_cover(image, spec.region)
    if spec.flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    boxes = sample_multiscale_crops(
        image.height,
        image.width,
        global_region=spec.region,
        scale=spec.scale,
        local_size=spec.local_size,
        rng=rng,
    )
    g, local = boxes.global_box, boxes.local_box
    region = image_to_tensor(image.crop((g.left, g.top, g.left + g.width, g.top + g.height)))
    inner = boxes.local_in_global
    return (
        crop(region, Box(local.top - g.top, local.left - g.left, spec.local_size, spec.local_size)),
        downsample(region, spec.scale),
        [inner.top, inner.left, inner.height, inner.width],
    )


@pytest.mark.parametrize("image_width", [None, 97])
def test_multiscale_crops_flip_only_their_region_with_the_same_result(image_width) -> None:
    """Flipping the global region instead of the whole image (less work) gives bit-identical crops."""
    image = _gradient_image(151, 83, seed=4)  # odd sides: a mirrored offset that is off by one shows
    spec = MultiScaleCrops(global_size=20, scale=2, local_size=24, image_width=image_width)
    flipped = 0
    for seed in range(40):
        out = spec(image, np.random.default_rng(seed), 0)
        local, global_crop, box = _multiscale_by_flipping_the_whole_image(spec, image, seed)
        assert torch.equal(out.crop, local) and torch.equal(out.global_crop, global_crop)
        assert out.box.tolist() == box
        flipped += np.random.default_rng(seed).random() < 0.5
    assert 5 < flipped < 35  # both branches were taken


def test_multiscale_invalid_settings() -> None:
    image = _gradient_image(64, 64)
    with pytest.raises(ValueError, match="multiple of scale"):
        _multiscale(image, 0, global_size=32, scale=2, local_size=31)
    with pytest.raises(ValueError, match="must not exceed"):
        _multiscale(image, 0, global_size=16, scale=2, local_size=64)
    with pytest.raises(ValueError, match="positive integer"):
        MultiScaleCrops(global_size=0, scale=2, local_size=32)
