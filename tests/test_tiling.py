"""Tests for semst.tiling: window layout, blend weights, exactness, seams and bounded tile batches."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from semst.networks import ResnetGenerator
from semst.networks.padding import pad_to_multiple
from semst.tiling import (
    BLEND_MODES,
    blend_weights,
    tile_grid,
    tile_starts,
    tiled_apply,
    window_size,
)

# (length, tile, overlap): shorter than, equal to and one more than a tile, odd sizes, large overlaps.
LAYOUTS = [
    (length, tile, overlap)
    for tile, overlap in [(1, 0), (2, 1), (7, 0), (7, 3), (7, 6), (16, 4), (16, 8), (16, 15), (33, 5)]
    for length in sorted({1, 3, tile - 1, tile, tile + 1, 2 * tile - 1, 2 * tile + 3, 5 * tile + 2, 37, 53})
    if length >= 1
]


def _generator(norm: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return ResnetGenerator(base_channels=4, num_blocks=2, norm=norm, **kwargs).eval()


def _gradient_image(height: int, width: int) -> torch.Tensor:
    """A smooth (1, 3, H, W) image: horizontal and vertical ramps and their product, in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([xx, yy, xx * yy]).unsqueeze(0)  # (1, 3, H, W)


# --- tile_starts / tile_grid -------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "tile", "overlap"), LAYOUTS)
def test_tile_starts_cover_every_pixel_with_the_stride(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0
    assert starts == sorted(set(starts))  # strictly increasing, no duplicate window
    assert all(s >= 0 and s + size <= length for s in starts)  # inside the axis
    covered = torch.zeros(length, dtype=torch.int64)
    for s in starts:
        covered[s : s + size] += 1
    assert bool((covered >= 1).all())
    if length <= tile:
        assert starts == [0]
    else:
        stride = tile - overlap
        # Every window but the clamped last one is on the stride grid; the last ends at the border and is
        # not further than one stride from its predecessor (else there would be a window too many or a gap).
        assert starts[:-1] == [i * stride for i in range(len(starts) - 1)]
        assert starts[-1] == length - tile
        assert 0 < starts[-1] - starts[-2] <= stride


def test_tile_starts_examples() -> None:
    assert tile_starts(37, 16, 4) == [0, 12, 21]  # stride 12, last clamped to 37 - 16
    assert tile_starts(40, 16, 4) == [0, 12, 24]  # fits the stride exactly
    assert tile_starts(17, 16, 4) == [0, 1]
    assert tile_starts(16, 16, 4) == [0]
    assert tile_starts(5, 16, 4) == [0]
    assert tile_starts(10, 4, 0) == [0, 4, 6]


GRIDS = [
    (height, width, tile, overlap, multiple)
    for (tile, overlap) in [(16, 4), (16, 0), (16, 12), (7, 3), (512, 128), (512, 64), (1024, 256)]
    for height, width in [(5, 7), (16, 17), (37, 53), (53, 37), (100, 21)]
    + [(1024, 2048), (1052, 1914), (513, 4097)]
    for multiple in (1, 4)
    if overlap + multiple <= tile and (tile >= 512) == (height >= 513)
]


def _square_pixels(height: int, width: int, tile: int, overlap: int) -> int:
    """Pixels of HRDA's square tiling: tile x tile windows at stride tile - overlap, the last clamped."""
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    return len(rows) * len(cols) * min(tile, height) * min(tile, width)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), GRIDS)
def test_tile_grid_covers_the_image_within_the_pixel_budget(
    height: int, width: int, tile: int, overlap: int, multiple: int
) -> None:
    windows = tile_grid(height, width, tile, overlap, multiple)
    h, w = window_size(height, width, tile, overlap, multiple)
    assert h * w <= tile * tile  # the memory of one pass is bounded by the tile, whatever its shape
    covered = torch.zeros(height, width, dtype=torch.int64)
    for top, left, wh, ww in windows:
        assert (wh, ww) == (h, w)
        assert top >= 0 and left >= 0 and top + h <= height and left + w <= width
        covered[top : top + h, left : left + w] += 1
    assert bool((covered >= 1).all())
    assert len(windows) == len(set(windows))
    tops = sorted({top for top, *_ in windows})
    lefts = sorted({left for _, left, *_ in windows})
    assert len(windows) == len(tops) * len(lefts)  # a grid
    for starts, side, length in ((tops, h, height), (lefts, w, width)):
        # Neighbours share at least `overlap` pixels, every start but the last (clamped to the border, as
        # HRDA does) is on the multiple's grid, and a side is a multiple unless it is the image's.
        assert all(b - a <= side - overlap for a, b in itertools.pairwise(starts))
        assert all(start % multiple == 0 for start in starts[:-1])
        assert side == length or side % multiple == 0 or side == tile  # a tile of 7: squares of 7
    if height * width <= tile * tile:
        assert windows == [(0, 0, height, width)]  # one pass: no seam at all
    if multiple == 1:
        assert len(windows) * h * w <= _square_pixels(height, width, tile, overlap)  # never more work


def test_window_size_examples() -> None:
    # A 2048x1024 frame in the multi-scale default's 512-pixel tiles with 128 pixels of overlap: two rows of
    # 576 (overlap exactly 128) instead of three rows of 512 whose last overlaps its neighbour by 384.
    assert window_size(1024, 2048, 512, 128, 4) == (576, 448)
    assert (
        len(tile_grid(1024, 2048, 512, 128, 4)) == 12
        and _square_pixels(1024, 2048, 512, 128) == 15 * 512 * 512
    )
    # Its global pass (the image downsampled x2, windows of 512 with 64 of overlap): 3 windows of 512x384.
    assert tile_grid(512, 1024, 512, 64, 4) == [(0, 0, 512, 384), (0, 320, 512, 384), (0, 640, 512, 384)]
    assert window_size(600, 400, 512, 128) == (600, 400)  # 240,000 pixels fit one 512 x 512 budget
    assert window_size(37, 53, 16, 4) == (15, 17)


@pytest.mark.parametrize(("height", "width"), [(0, 5), (5, 0)])
def test_window_size_rejects_an_empty_image(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="image size must be positive"):
        window_size(height, width, 16, 4)


@pytest.mark.parametrize(("tile", "overlap"), [(16, 16), (16, 17), (16, -1), (0, 0), (-4, 0)])
def test_tile_starts_rejects_bad_tile_or_overlap(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="tile|overlap"):
        tile_starts(40, tile, overlap)
    with pytest.raises(ValueError, match="tile|overlap"):
        tile_grid(40, 40, tile, overlap)


def test_tile_starts_rejects_empty_axis() -> None:
    with pytest.raises(ValueError, match="length=0"):
        tile_starts(0, 16, 4)


# --- blend weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", BLEND_MODES)
@pytest.mark.parametrize(("h", "w", "overlap"), [(16, 16, 4), (16, 9, 6), (5, 7, 4), (1, 3, 2), (16, 16, 0)])
def test_blend_weights_are_positive_and_at_most_one(mode: str, h: int, w: int, overlap: int) -> None:
    weights = blend_weights(h, w, overlap, mode=mode)
    assert weights.shape == (h, w) and weights.dtype == torch.float32
    assert bool((weights > 0).all()) and bool((weights <= 1).all())


def test_linear_weights_ramp_from_the_border() -> None:
    weights = blend_weights(12, 12, 3, mode="linear")
    assert torch.allclose(weights[6, :4], torch.tensor([0.25, 0.5, 0.75, 1.0]))  # 1/(overlap+1) steps
    assert torch.equal(weights[6], weights[6].flip(0))
    assert bool((weights[3:-3, 3:-3] == 1).all())  # interior: full weight
    assert weights[0, 0] == pytest.approx(1 / 16)
    assert torch.equal(blend_weights(12, 12, 3, mode="average"), torch.ones(12, 12))


def test_linear_ramps_of_neighbours_sum_to_one_in_a_regular_overlap() -> None:
    # Tiles exactly on the stride grid (no clamping): the raw ramps already sum to one in every overlap.
    tile, overlap = 10, 4
    length = tile + 3 * (tile - overlap)
    ramp = blend_weights(tile, tile, overlap, mode="linear")[tile // 2]  # a middle row: its row weight is 1
    total = torch.zeros(length)
    for s in tile_starts(length, tile, overlap):
        total[s : s + tile] += ramp
    inner = total[overlap:-overlap]  # away from the image's own border, where only one tile ramps down
    assert torch.allclose(inner, torch.ones_like(inner))


@pytest.mark.parametrize("mode", BLEND_MODES)
@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"), [(37, 53, 16, 4), (40, 40, 16, 4), (20, 9, 8, 7)]
)
def test_normalised_blend_weights_sum_to_one_everywhere(
    mode: str, height: int, width: int, tile: int, overlap: int
) -> None:
    windows = tile_grid(height, width, tile, overlap)
    weights = blend_weights(windows[0][2], windows[0][3], overlap, mode=mode)
    canvas = torch.zeros(height, width)
    for top, left, h, w in windows:
        canvas[top : top + h, left : left + w] += weights
    assert bool((canvas > 0).all())
    effective = torch.zeros(height, width)  # sum over tiles of each tile's normalised weight
    for top, left, h, w in windows:
        effective[top : top + h, left : left + w] += weights / canvas[top : top + h, left : left + w]
    assert torch.allclose(effective, torch.ones(height, width), atol=1e-6)


def test_blend_weights_reject_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'hann'"):
        blend_weights(8, 8, 2, mode="hann")


# --- exactness ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("blend", BLEND_MODES)
@pytest.mark.parametrize(("height", "width"), [(37, 53), (5, 7), (16, 16), (17, 33)])
def test_pointwise_functions_give_the_whole_image_result(blend: str, height: int, width: int) -> None:
    torch.manual_seed(0)
    image = torch.randn(1, 3, height, width)
    conv1x1 = nn.Conv2d(3, 5, kernel_size=1)
    for fn in (lambda x: x, lambda x: 2 * x + 1, conv1x1):
        with torch.no_grad():
            expected = fn(image)
        out = tiled_apply(fn, image, tile=16, overlap=4, multiple=4, blend=blend)
        assert out.shape == expected.shape and out.dtype == torch.float32
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def _axes(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[list[int], int]]:
    """[(row starts, window height), (column starts, window width)] of `tile_grid`'s windows."""
    windows = tile_grid(height, width, tile, overlap, multiple)
    tops = sorted({top for top, *_ in windows})
    lefts = sorted({left for _, left, *_ in windows})
    return [(tops, windows[0][2]), (lefts, windows[0][3])]


def _deep_pixels(length: int, starts: list[int], size: int, radius: int) -> torch.Tensor:
    """(length,) bool: pixels whose +-radius neighbourhood lies inside every window covering them.

    An edge of a window that is also the image border does not count: there the tile and the whole image
    have the same border (and the same padding inside the network).
    """
    pixels = torch.arange(length)
    deep = torch.ones(length, dtype=torch.bool)
    for start in starts:
        covers = (pixels >= start) & (pixels < start + size)
        near_edge = torch.zeros(length, dtype=torch.bool)
        if start > 0:
            near_edge |= pixels - radius < start
        if start + size < length:
            near_edge |= pixels + radius > start + size - 1
        deep &= ~(covers & near_edge)
    return deep


def _check_equal_away_from_tile_borders(
    net: nn.Module, image: torch.Tensor, *, tile: int, overlap: int, radius: int, blend: str, multiple: int
) -> None:
    with torch.no_grad():
        whole = net(image)  # (1, C_out, H, W)
    tiled = tiled_apply(net, image, tile=tile, overlap=overlap, multiple=multiple, blend=blend)
    height, width = image.shape[-2:]
    (tops, tile_h), (lefts, tile_w) = _axes(height, width, tile, overlap, multiple)
    rows = _deep_pixels(height, tops, tile_h, radius)
    cols = _deep_pixels(width, lefts, tile_w, radius)
    deep = rows[:, None] & cols[None, :]  # (H, W)
    covered_twice = torch.zeros(height, width)
    for top, left, h, w in tile_grid(height, width, tile, overlap, multiple):
        covered_twice[top : top + h, left : left + w] += 1
    # The comparison must include pixels where tiles overlap and are blended, and must exclude some pixels.
    assert int((deep & (covered_twice >= 2)).sum()) > 100
    assert not bool(deep.all())
    diff = (tiled - whole).abs().amax(dim=1)[0]  # (H, W)
    assert diff[deep].max() < 1e-5
    # Near the tile borders the tiles did see padding instead of image content: if nothing differed there,
    # the tiles would not really have been cut (and the check above would prove nothing).
    assert diff[~deep].max() > 1e-4


@pytest.mark.parametrize("blend", BLEND_MODES)
def test_translation_equivariant_conv_stack_is_exact_away_from_tile_borders(blend: str) -> None:
    # Why only away from the tile borders: a network without normalisation computes each output pixel from
    # the input within its receptive-field radius r (here 3 zero-padded 3x3 convs: r = 3). A tile's output
    # therefore equals the whole-image output at pixels whose r-neighbourhood lies inside the tile; closer to
    # a tile border the tile sees zero padding where the whole image has content. The blended output is a
    # convex combination of the covering tiles' outputs, so it is exact exactly where *every* covering tile
    # is exact. Averaging (or a ramp that stays positive up to the border) does mix border-affected values of
    # one tile into pixels that are deep inside another, so "overlap >= 2r" alone is not enough: we compare
    # only pixels deeper than r inside every tile that covers them.
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 3, 3, padding=1),
    ).eval()
    image = torch.randn(1, 3, 37, 53)
    _check_equal_away_from_tile_borders(net, image, tile=16, overlap=10, radius=3, blend=blend, multiple=1)


@pytest.mark.parametrize("blend", BLEND_MODES)
def test_resnet_generator_without_norm_is_exact_away_from_tile_borders(blend: str) -> None:
    # Receptive-field radius (in input pixels) of ResnetGenerator with strided/transposed resampling: each
    # kxk conv at scale s (1, 2 or 4 input pixels per feature pixel) widens it by s * (k // 2) on each side:
    # stem 7x7 at 1 (3) + down1 at 1 (1) + down2 at 2 (2) + 2 blocks x 2 convs 3x3 at 4 (16) + up1 at 4 (4)
    # + up2 at 2 (2) + head 7x7 at 1 (3) = 31. The network is only equivariant to shifts by multiples of its
    # stride 4, so the window starts (0, 64, 128 here) are multiples of 4 too. Blended pixels deeper than r
    # inside two tiles need overlap > 2r. See the conv-stack test for why only pixels deeper than r inside
    # every covering tile can be compared.
    net = _generator("none", downsample="strided", upsample="transposed", init_gain=1.0)
    torch.manual_seed(1)
    image = torch.rand(1, 3, 208, 272) * 2 - 1
    assert _axes(208, 272, 144, 80, 4) == [([0, 64], 144), ([0, 64, 128], 144)]  # squares are the least work
    _check_equal_away_from_tile_borders(net, image, tile=144, overlap=80, radius=31, blend=blend, multiple=4)


def test_image_smaller_than_a_tile_gives_the_padded_whole_image_result() -> None:
    # One window: the tile is padded exactly as translators pad a whole image (to a multiple of 4,
    # at least 8 pixels), so even the instance-normalised generator gives the same output.
    net = _generator("instance")
    torch.manual_seed(1)
    image = torch.rand(1, 3, 5, 7) * 2 - 1
    with torch.no_grad():
        expected = net(pad_to_multiple(image, 4))[..., :5, :7]
    out = tiled_apply(net, image, tile=64, overlap=16, multiple=net.size_multiple)
    torch.testing.assert_close(out, expected)


# --- seams -------------------------------------------------------------------------------------------


def _seam_ratio(out: torch.Tensor, tile: int, overlap: int, multiple: int = 4) -> float:
    """How much larger the step across an interior tile edge is than a typical step between neighbours.

    For every pair of neighbouring columns (rows) the mean absolute difference over the pair's pixels and
    channels; a seam is a whole line of large differences, so line means find it more reliably than the
    single largest pixel difference, which the network's own texture also produces. Returns the largest
    line value at a tile edge over the median of the line values elsewhere, for the worse of both axes.
    """
    out = out[0]  # (C, H, W)
    step_x = (out[:, :, 1:] - out[:, :, :-1]).abs().mean(dim=(0, 1))  # (W - 1,): between columns x and x + 1
    step_y = (out[:, 1:, :] - out[:, :-1, :]).abs().mean(dim=(0, 2))  # (H - 1,)
    ratios = []
    (tops, tile_h), (lefts, tile_w) = _axes(out.shape[-2], out.shape[-1], tile, overlap, multiple)
    for steps, (starts, size) in ((step_x, (lefts, tile_w)), (step_y, (tops, tile_h))):
        length = steps.numel() + 1
        edges = set()
        for start in starts:
            edges |= {start - 1, start + size - 1}  # the step into the tile's first and out of its last pixel
        edges = sorted(e for e in edges if 0 <= e < length - 1)
        elsewhere = torch.ones(length - 1, dtype=torch.bool)
        elsewhere[edges] = False
        ratios.append(float(steps[edges].max() / steps[elsewhere].median()))
    return max(ratios)


SEAM_LIMIT = 3.0


@pytest.mark.parametrize("network", ["instance_norm_layer", "generator"])
def test_linear_blend_leaves_no_seam_where_naive_tiling_does(network: str) -> None:
    # Per-tile instance normalisation makes each tile's output depend on the tile's own statistics, so
    # neighbouring tiles disagree where they meet. On a gradient image a bare InstanceNorm2d maps every tile
    # to the same normalised ramp (a saw tooth when the tiles are just put side by side); the generator's
    # disagreement is milder. With overlap and the linear ramps the change is spread over the overlap.
    fn = nn.InstanceNorm2d(3) if network == "instance_norm_layer" else _generator("instance")
    image = _gradient_image(64, 96)
    naive = tiled_apply(fn, image, tile=32, overlap=0, multiple=4)
    assert _seam_ratio(naive, 32, 0) > SEAM_LIMIT  # the check detects a seam ...
    blended = tiled_apply(fn, image, tile=32, overlap=8, multiple=4, blend="linear")
    assert _seam_ratio(blended, 32, 8) < SEAM_LIMIT  # ... and there is none after linear blending
    if network == "instance_norm_layer":
        # HRDA's plain averaging leaves a step of half the disagreement where a tile's contribution starts.
        averaged = tiled_apply(fn, image, tile=32, overlap=8, multiple=4, blend="average")
        assert _seam_ratio(averaged, 32, 8) > SEAM_LIMIT


# --- bounded memory and batching ---------------------------------------------------------------------


def test_tile_batches_are_bounded_whatever_the_image_size() -> None:
    tile, batch_size = 128, 4
    shapes: list[tuple[int, ...]] = []

    def counting_identity(x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        shapes.append(tuple(x.shape))
        return x.clone()

    image = torch.rand(1, 3, 512, 1024)
    out = tiled_apply(counting_identity, image, tile=tile, overlap=32, batch_size=batch_size)
    torch.testing.assert_close(out, image)
    # Peak memory beyond the input and the canvases is that of one call of fn: at most batch_size tiles of
    # one fixed shape and at most tile x tile pixels, however large the image (here 6 x 9 = 54 windows of
    # 112 x 143 in 14 calls; HRDA's 128-pixel squares would be 5 x 11 = 55).
    windows = tile_grid(512, 1024, tile, 32)
    assert len(windows) == 54 and windows[0][2:] == (112, 143)
    assert len(shapes) == -(-54 // batch_size)
    assert max(shape[0] for shape in shapes) == batch_size
    assert {shape[1:] for shape in shapes} == {(3, 112, 143)}
    assert max(n * c * h * w for n, c, h, w in shapes) <= batch_size * 3 * tile * tile


def test_batch_size_does_not_change_the_result() -> None:
    net = _generator("instance")
    image = _gradient_image(40, 56)
    one = tiled_apply(net, image, tile=24, overlap=8, multiple=4, batch_size=1)
    four = tiled_apply(net, image, tile=24, overlap=8, multiple=4, batch_size=4)
    torch.testing.assert_close(one, four, rtol=0, atol=1e-6)


def test_tiles_are_padded_to_the_multiple_and_the_minimum_size() -> None:
    seen: list[tuple[int, int]] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[-2:]))
        return -x

    image = torch.randn(1, 2, 3, 45)
    out = tiled_apply(record, image, tile=18, overlap=6, multiple=4, batch_size=2)
    torch.testing.assert_close(out, -image)
    # 3 x 45 = 135 pixels fit in one window of at most 18 x 18; its 3 rows are padded to 2 * 4 (the minimum
    # size), its 45 columns to 48 (the multiple).
    assert window_size(3, 45, 18, 6, 4) == (3, 45) and len(seen) == 1
    assert set(seen) == {(8, 48)}


def test_chw_input_and_device_argument() -> None:
    image = torch.randn(3, 9, 11)
    out = tiled_apply(lambda x: x[:, :1] * 3, image, tile=8, overlap=2, device="cpu", out_channels=1)
    assert out.shape == (1, 9, 11) and out.device == image.device
    torch.testing.assert_close(out, image[:1] * 3)


def test_progress_bar_runs() -> None:
    image = torch.randn(1, 3, 20, 20)
    torch.testing.assert_close(tiled_apply(lambda x: x, image, tile=8, overlap=2, progress=True), image)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((9, 11), {}, r"\(9, 11\)"),
        ((2, 3, 9, 11), {}, r"\(2, 3, 9, 11\)"),
        ((1, 3, 9, 11), {"tile": 0}, "tile=0"),
        ((1, 3, 9, 11), {"tile": -8}, "tile=-8"),
        ((1, 3, 9, 11), {"overlap": 8}, "overlap=8"),
        ((1, 3, 9, 11), {"overlap": 9}, "overlap=9"),
        ((1, 3, 9, 11), {"overlap": -1}, "overlap=-1"),
        ((1, 3, 9, 11), {"batch_size": 0}, "batch_size=0"),
        ((1, 3, 9, 11), {"multiple": 0}, "multiple=0"),
        ((1, 3, 9, 11), {"blend": "max"}, "'max'"),
        ((1, 3, 9, 11), {"out_channels": 4}, "out_channels=4"),
    ],
)
def test_invalid_arguments_are_rejected(shape: tuple[int, ...], kwargs: dict, match: str) -> None:
    arguments = {"tile": 8, "overlap": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        tiled_apply(lambda x: x, torch.zeros(shape), **arguments)


def test_fn_changing_the_spatial_size_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"got shape \(1, 3, 4, 4\)"):
        tiled_apply(lambda x: x[..., ::2, ::2], torch.zeros(1, 3, 8, 8), tile=8, overlap=2)


def test_every_layout_combination_runs_through_tiled_apply() -> None:
    # A coordinate map through tiled_apply reproduces itself for many shapes: every pixel is written, and
    # only with its own coordinates.
    for height, width, (tile, overlap) in itertools.product((1, 6, 17), (2, 9, 31), ((4, 0), (4, 3), (8, 2))):
        yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        coords = torch.stack([yy, xx]).float()  # (2, H, W)
        out = tiled_apply(lambda x: x, coords, tile=tile, overlap=overlap, batch_size=3)
        torch.testing.assert_close(out, coords, rtol=0, atol=1e-4)
