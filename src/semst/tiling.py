"""Memory-bounded tiled translation of images of any size.

A full-resolution image is cut into overlapping windows (tiles) of at most ``tile * tile`` pixels, the
tiles are passed through a network a few at a time, and the outputs are blended back onto a canvas of the
image's size:

>>> out = tiled_apply(generator, image, tile=512, overlap=64, multiple=generator.size_multiple)

The window layout follows HRDA's sliding-window inference (``slide_inference`` in mmseg) along each axis:
windows with a fixed stride, the last window of each axis moved back so that it ends exactly at the image
border. Where HRDA's windows are ``tile`` x ``tile`` squares, `window_size` shapes them (same pixel budget,
so the same memory) so that the overlaps are no larger than needed: a 2048x1024 image in 512-pixel tiles
takes 12 windows of 576x448 instead of 15 squares, 21 % fewer pixels through the network.

HRDA averages overlapping predictions with a count matrix (``blend="average"``); the default
``blend="linear"`` instead weights each tile's output by a ramp that rises from its border towards
its interior, so that the change from one tile's output to the next is spread over the overlap instead of
appearing as a visible seam. Both are normalised per pixel:

    out(p) = sum_t w_t(p) * y_t(p) / sum_t w_t(p)

over the tiles t that cover pixel p, so the effective weights of every pixel sum to one.

Peak memory beyond the input image and the two canvases (output and weight sum) is that of one batch of
``batch_size`` tiles, whatever the image size.

`Tiling` is the validated set of settings of a translator's passes that translators (semst.translators) and
the commands ``semst translate`` and ``semst refine`` pass around: the windows, how many go through a network
at once, and the precision the networks compute in (`Translator.translate_tensor` runs its passes under that
autocast; canvases and outputs stay float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from semst.networks.padding import pad_to_multiple, padded_size
from semst.runtime import PRECISIONS

__all__ = ["BLEND_MODES", "Tiling", "blend_weights", "tile_grid", "tile_starts", "tiled_apply", "window_size"]

BLEND_MODES = ("linear", "average")


@dataclass(frozen=True)
class Tiling:
    """How a translator cuts a large image into passes and computes them; checked on construction.

    Attributes:
        tile: the full-resolution windows hold at most ``tile * tile`` pixels (single-scale: the generator;
            multi-scale: the local generator G_l; `window_size` shapes them), or None for one whole-image
            pass.
        overlap: pixels neighbouring windows share at least, blended with linear ramps; < ``tile``.
        batch: windows translated at once, local tiles and global windows alike (bounds the memory; raise it
            on a GPU).
        global_window: multi-scale only: the global pass's windows over the downsampled image hold at most
            ``global_window ** 2`` pixels, or None for one pass over the whole downsampled image.
        precision: autocast precision of the networks' passes: ``fp32`` (none), ``bf16``, or ``fp16`` (CUDA
            only). The blended canvases and the output are float32 whatever it is.
        width: translate at this image width: the image is resized to it (aspect kept, antialiased) before
            the passes and the result back to the image's size after them; 0 = at the size given. A
            translator that trained on images resized to a width (``multiscale.image_width``, CUT's
            ``scale_width``) defaults to that width, so that it sees objects at the scale it learnt.
        margin: pixels of mirrored image added on every side before the passes and cut off after them, so
            that the generators' border behaviour (the zero-padded convolutions; the crop borders they saw
            in training) falls on the mirror rather than on the image (docs/experiments.md, experiment 25);
            at most the image's shorter side minus one (after ``width``). 0 = none.
    """

    tile: int | None = None
    overlap: int = 64
    batch: int = 4
    global_window: int | None = None
    precision: str = "fp32"
    width: int = 0
    margin: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.margin, int) or isinstance(self.margin, bool) or self.margin < 0:
            raise ValueError(f"tiling: margin must be >= 0 pixels, got {self.margin!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 0:
            raise ValueError(f"tiling: width must be a number of pixels (0: as given), got {self.width!r}")
        for name in ("tile", "global_window"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"tiling: {name} must be a positive number of pixels or None, got {value!r}")
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise ValueError(f"tiling: batch must be a positive number of tiles, got {self.batch!r}")
        if not isinstance(self.overlap, int) or isinstance(self.overlap, bool) or self.overlap < 0:
            raise ValueError(f"tiling: overlap must be >= 0 pixels, got {self.overlap!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"tiling: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.tile is not None and self.overlap >= self.tile:
            raise ValueError(
                f"tiling: overlap ({self.overlap} px) must be smaller than the tile ({self.tile} px)"
            )


def _check_tile_overlap(tile: int, overlap: int) -> None:
    if tile <= 0:
        raise ValueError(f"tile must be a positive number of pixels, got tile={tile}.")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile (= {tile}), got overlap={overlap}.")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the windows along one axis.

    Windows of size ``tile`` are placed with stride ``tile - overlap``; the last one is moved back to end
    exactly at ``length`` (HRDA's rule), so it may overlap its neighbour by more than ``overlap``. An axis
    that is not longer than a tile gets a single window at 0 (which the caller pads to the tile size).

    Args:
        length: Number of pixels along the axis (>= 1).
        tile: Window size in pixels (>= 1).
        overlap: Pixels shared by neighbouring windows, 0 <= overlap < tile.

    Returns:
        Strictly increasing start offsets; the first is 0 and the last is ``max(length - tile, 0)``.

    Raises:
        ValueError: If ``length`` or ``tile`` is not positive or ``overlap`` is outside [0, tile).
    """
    _check_tile_overlap(tile, overlap)
    if length <= 0:
        raise ValueError(f"length must be a positive number of pixels, got length={length}.")
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def _stride(side: int, overlap: int, multiple: int) -> int:
    """The largest stride of windows of ``side`` that is a multiple of ``multiple`` and keeps at least
    ``overlap`` pixels shared (0 or less: none)."""
    return (side - overlap) // multiple * multiple


def _covers(length: int, side: int, count: int, overlap: int, multiple: int) -> bool:
    """Whether ``count`` windows of ``side`` on the stride of `_stride` reach the end of an axis of
    ``length``."""
    stride = _stride(side, overlap, multiple)
    return stride > 0 and side + (count - 1) * stride >= length


def _side_for(length: int, count: int, overlap: int, multiple: int) -> int:
    """The smallest window side (a multiple of ``multiple``, or ``length``) with which ``count`` windows
    cover an axis of ``length`` pixels, neighbours sharing at least ``overlap`` pixels."""
    side = -(-(length + (count - 1) * overlap) // count)  # ceil: evenly shared overlaps
    side = -(-side // multiple) * multiple
    while side < length and not _covers(length, side, count, overlap, multiple):
        side += multiple
    return min(side, length)


def window_size(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, int]:
    """The (h, w) of the windows that `tile_grid` cuts an image into.

    ``tile`` bounds a window's pixels, ``h * w <= tile * tile`` (what a pass costs in memory), not its shape:
    among the window sizes whose sides lie between ``max(tile // 2, overlap + multiple)`` and the image's,
    and whose grid (`tile_starts`, neighbours sharing at least ``overlap`` pixels, starts on multiples of
    ``multiple``) covers the image, it picks the one with the fewest pixels in all windows together (then the
    fewest windows, then the squarest). A 2048x1024 image in 512-pixel tiles with 128 pixels of overlap gets
    12 windows of 576x448 (3.1 megapixels of network input) instead of 15 squares of 512 (3.9 megapixels:
    the third row of squares would overlap the second by 384 pixels). An image of at most ``tile * tile``
    pixels is one window.

    Args:
        height, width: Image size in pixels (>= 1).
        tile: Windows hold at most ``tile * tile`` pixels (>= 1).
        overlap: Least number of pixels neighbouring windows share, 0 <= overlap < tile.
        multiple: Window sides are multiples of it (or the image's side), and so are the strides, so
            that a network that downsamples by ``multiple`` sees every window on the same pixel grid.

    Raises:
        ValueError: If a size is not positive or ``overlap`` is outside [0, tile).
    """
    _check_tile_overlap(tile, overlap)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}.")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got multiple={multiple}.")
    area = tile * tile
    if height * width <= area:
        return height, width
    shortest = max(tile // 2, overlap + multiple)
    best: tuple[tuple[int, int, int], tuple[int, int]] | None = None
    for rows in range(1, height + 1):
        side_h = _side_for(height, rows, overlap, multiple)
        if side_h < min(height, shortest):
            break  # more rows only make thinner windows
        limit_w = area // side_h
        if limit_w < min(width, shortest):
            continue  # too tall: no window this tall fits the pixel budget
        cols = 1 if width <= limit_w else -(-(width - overlap) // max(limit_w - overlap, 1))
        side_w = _side_for(width, cols, overlap, multiple)
        while side_w > limit_w and cols < width:
            cols += 1
            side_w = _side_for(width, cols, overlap, multiple)
        if side_w > limit_w or side_w < min(width, shortest):
            continue
        count = len(_starts(height, side_h, overlap, multiple)) * len(
            _starts(width, side_w, overlap, multiple)
        )
        key = (count * side_h * side_w, count, abs(side_h - side_w))
        if best is None or key < best[0]:
            best = (key, (side_h, side_w))
    if best is None:  # no rectangle fits the constraints (a tiny tile): squares, as HRDA lays them out
        return min(tile, height), min(tile, width)
    return best[1]


def _starts(length: int, side: int, overlap: int, multiple: int) -> list[int]:
    """`tile_starts` of windows of ``side`` along an axis of ``length``, on a stride that is a multiple of
    ``multiple`` (neighbours then share at least ``overlap`` pixels)."""
    if side >= length:
        return [0]
    stride = _stride(side, overlap, multiple)
    return tile_starts(length, side, side - stride if stride > 0 else overlap)


def tile_grid(
    height: int, width: int, tile: int, overlap: int, multiple: int = 1
) -> list[tuple[int, int, int, int]]:
    """Windows covering every pixel of a ``height`` x ``width`` image, in row-major order.

    The windows all have the size of `window_size` (at most ``tile * tile`` pixels) and lie on the grid of
    `tile_starts` along each axis, neighbours sharing at least ``overlap`` pixels.

    Args:
        height: Image height in pixels (>= 1).
        width: Image width in pixels (>= 1).
        tile: Windows hold at most ``tile * tile`` pixels (>= 1).
        overlap: Pixels shared by neighbouring windows at least, 0 <= overlap < tile.
        multiple: Window sides and strides are multiples of it where the image allows (see `window_size`).

    Returns:
        ``(top, left, h, w)`` per window, all of one size; every window lies inside the image.
    """
    h, w = window_size(height, width, tile, overlap, multiple)
    rows, cols = _starts(height, h, overlap, multiple), _starts(width, w, overlap, multiple)
    return [(top, left, h, w) for top in rows for left in cols]


def _ramp(size: int, overlap: int) -> torch.Tensor:
    """1-D weights min(i + 1, size - i, overlap + 1) / (overlap + 1): 1/(overlap+1) at both ends, 1 inside."""
    index = torch.arange(size, dtype=torch.float32)  # (size,)
    steps = torch.minimum(index + 1, size - index).clamp(max=overlap + 1)
    return steps / (overlap + 1)


def blend_weights(h: int, w: int, overlap: int, mode: str = "linear") -> torch.Tensor:
    """Per-tile weight map used when pasting a tile's output onto the canvas.

    ``"average"``: all ones (HRDA's count-matrix averaging). ``"linear"``: the outer product of two 1-D ramps
    ``r(i) = min(i + 1, n - i, overlap + 1) / (overlap + 1)``, which rise linearly from ``1 / (overlap + 1)``
    at the tile border to 1 at ``overlap`` pixels inside. Where two tiles overlap by exactly ``overlap``
    pixels their ramps sum to 1 along that axis; everywhere else the accumulator's normalisation (sum of
    weighted outputs / sum of weights) makes the effective weights sum to one.

    Args:
        h: Tile height in pixels (>= 1).
        w: Tile width in pixels (>= 1).
        overlap: Overlap of neighbouring tiles in pixels (>= 0); 0 gives all ones.
        mode: One of ``BLEND_MODES``.

    Returns:
        (h, w) float32 tensor, strictly positive, at most 1.

    Raises:
        ValueError: For an unknown ``mode``, non-positive sizes or a negative ``overlap``.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend mode must be one of {', '.join(BLEND_MODES)}, got {mode!r}.")
    if h <= 0 or w <= 0:
        raise ValueError(f"tile size must be positive, got h={h}, w={w}.")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got overlap={overlap}.")
    if mode == "average" or overlap == 0:
        return torch.ones(h, w, dtype=torch.float32)
    return _ramp(h, overlap)[:, None] * _ramp(w, overlap)[None, :]  # (h, w)


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    batch_size: int = 4,
    multiple: int = 1,
    min_size: int | None = None,
    blend: str = "linear",
    out_channels: int | None = None,
    device: torch.device | str | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    progress: bool = False,
) -> torch.Tensor:
    """Apply an image-to-image function tile by tile and blend the outputs into one image.

    The image is cut into the windows of `tile_grid`; all windows of one image have the same size
    (`window_size`: at most ``tile * tile`` pixels, shaped to cover the image with the least work). Windows
    are padded on the bottom/right to a multiple of
    ``multiple`` and to at least ``min_size`` by `semst.networks.padding.pad_to_multiple`, as translators
    pad a whole image, so ``fn`` receives tiles of one fixed shape and an
    image that fits in one tile gives exactly ``fn``'s whole-image result. A window smaller than ``tile`` is
    not padded up to ``tile``: that would only add mirrored content, change what a network with
    image-wide statistics (instance norm) sees, and cost time. Each output is cropped back to its window
    and added to the canvas as ``weight * output``, with the weights of `blend_weights` summed in a second
    canvas; the result is their ratio. Runs under ``torch.no_grad``.

    Args:
        fn: Maps a batch (N, C, th, tw) to (N, C_out, th, tw) (same spatial size), e.g. a generator.
        image: (1, C, H, W) or (C, H, W) floating-point image of any size.
        tile: Windows hold at most ``tile * tile`` pixels (>= 1).
        overlap: Pixels shared by neighbouring windows at least, 0 <= overlap < tile.
        batch_size: Number of tiles passed to ``fn`` at once (>= 1); bounds the peak memory.
        multiple: Window sides and strides are multiples of this where the image allows, and tiles are
            padded to multiples of it (e.g. the generator's ``size_multiple``).
        min_size: Tiles are padded to at least this many pixels per side. Default ``2 * multiple``: the
            generator's reflection padding needs feature maps of at least 2 pixels at 1/``multiple`` scale.
        blend: One of ``BLEND_MODES``, see `blend_weights`.
        out_channels: Expected C_out; checked against ``fn``'s output. Default: whatever ``fn`` returns.
        device: Where ``fn`` runs; each tile batch is moved there. Default: ``image.device``. The canvases
            stay on ``image.device`` (on the CPU for a CPU image, whatever ``device`` is).
        memory_format: The layout of the tile batches ``fn`` receives (``torch.channels_last``: NHWC);
            the canvases and the result are contiguous NCHW either way.
        progress: Show a tqdm progress bar over tile batches.

    Returns:
        float32 tensor of shape (1, C_out, H, W), or (C_out, H, W) for a (C, H, W) input, on
        ``image.device``.

    Raises:
        ValueError: For an image that is not (1, C, H, W) or (C, H, W), invalid ``tile``, ``overlap``,
            ``batch_size``, ``multiple``, ``min_size``, ``blend`` or ``out_channels``, or an output of ``fn``
            with an unexpected shape.
    """
    if image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[0] != 1):
        raise ValueError(
            f"tiled_apply expects one image shaped (1, C, H, W) or (C, H, W), got shape {tuple(image.shape)}; "
            "call it once per image for a batch."
        )
    _check_tile_overlap(tile, overlap)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got batch_size={batch_size}.")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got multiple={multiple}.")
    min_size = 2 * multiple if min_size is None else min_size
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1 or None, got min_size={min_size}.")
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {', '.join(BLEND_MODES)}, got blend={blend!r}.")
    if out_channels is not None and out_channels < 1:
        raise ValueError(f"out_channels must be >= 1 or None, got out_channels={out_channels}.")

    single = image.ndim == 3
    x = image.unsqueeze(0) if single else image  # (1, C, H, W)
    height, width = x.shape[-2:]
    if height == 0 or width == 0:
        raise ValueError(f"image must have a positive height and width, got shape {tuple(image.shape)}.")
    run_device = x.device if device is None else torch.device(device)
    canvas_device = x.device

    windows = tile_grid(height, width, tile, overlap, multiple)
    tile_h, tile_w = windows[0][2], windows[0][3]  # all windows share one size
    padded_h, padded_w = padded_size(tile_h, multiple, min_size), padded_size(tile_w, multiple, min_size)
    weight = blend_weights(tile_h, tile_w, overlap, mode=blend).to(canvas_device)  # (h, w)

    output: torch.Tensor | None = None  # (1, C_out, H, W), allocated once C_out is known
    weight_sum = torch.zeros(height, width, dtype=torch.float32, device=canvas_device)  # (H, W)
    batches = [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc="tiles", unit="batch", disable=not progress, leave=False):
            crops = torch.cat(
                [x[..., top : top + h, left : left + w] for top, left, h, w in batch]
            )  # (N, C, h, w)
            crops = pad_to_multiple(crops.to(run_device), multiple, min_size)  # (N, C, th, tw)
            crops = crops.contiguous(memory_format=memory_format)
            result = fn(crops)  # (N, C_out, th, tw)
            if result.ndim != 4 or result.shape[0] != len(batch) or result.shape[-2:] != crops.shape[-2:]:
                raise ValueError(
                    f"fn must map a batch of shape {tuple(crops.shape)} to (N, C_out, {padded_h}, {padded_w}) "
                    f"with N = {len(batch)}, got shape {tuple(result.shape)}."
                )
            if output is None:
                if out_channels is not None and result.shape[1] != out_channels:
                    raise ValueError(
                        f"fn returned {result.shape[1]} channels, expected out_channels={out_channels}."
                    )
                output = torch.zeros(
                    1, result.shape[1], height, width, dtype=torch.float32, device=canvas_device
                )
            elif result.shape[1] != output.shape[1]:
                raise ValueError(
                    f"fn returned {result.shape[1]} channels for one tile batch and {output.shape[1]} for "
                    "an earlier one."
                )
            result = result[..., :tile_h, :tile_w].to(canvas_device, torch.float32)  # (N, C_out, h, w)
            for (top, left, h, w), out_tile in zip(batch, result):
                output[0, :, top : top + h, left : left + w] += weight * out_tile
                weight_sum[top : top + h, left : left + w] += weight
    assert output is not None  # the grid always has at least one window
    output /= weight_sum  # (1, C_out, H, W)
    return output[0] if single else output
