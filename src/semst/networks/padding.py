"""Padding images to the generator's size multiple: one function for training, tiled inference and export.

The ResNet generator halves the resolution twice, so its input sides must be multiples of 4 (its
``size_multiple``) to come back at the input's size, and at least 8 pixels (its residual blocks reflect-pad
feature maps of at least 2 pixels at 1/4 scale). Images are padded on the bottom and right and the output is
cropped back. Padding mirrors the image (reflection), repeated as often as needed (the image, its mirror
image, the image again, ...), so even a side shorter than the padding is extended without a hard edge for
the network to translate; a side of one pixel can only repeat itself.

The size arithmetic is written as tensor operations on the input's shape, so that ``torch.jit.trace`` and
the ONNX exporter record it symbolically: one exported file serves every input size (semst.export). Index
tensors are created from the input (``new_ones``), so the traced graph records no device of its own.
"""

from __future__ import annotations

import torch

__all__ = ["pad_to_multiple", "padded_size"]


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.shape[dim]`` as a 0-dim int64 tensor (while tracing it already is one, linked to the graph)."""
    size = x.shape[dim]
    return size if isinstance(size, torch.Tensor) else torch.tensor(size)


def _arange_like(x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """``arange(length)`` (int64) on ``x``'s device, without recording a device constant when traced."""
    return x.new_ones(length, dtype=torch.long).cumsum(0) - 1  # (length,)


def _mirror_indices(x: torch.Tensor, length: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
    """Source index of each of ``padded`` positions along an axis of ``length`` pixels mirrored at its end."""
    index = _arange_like(x, padded)  # (padded,)
    last = length - 1
    period = torch.clamp(2 * last, min=1)  # reflection repeats every 2 * (length - 1) pixels
    return last - (last - index % period).abs()  # (padded,); 0 everywhere for a side of one pixel


def padded_size(length: int, multiple: int, min_size: int | None = None) -> int:
    """The side `pad_to_multiple` pads ``length`` pixels to (plain integers, for planning)."""
    min_size = 2 * multiple if min_size is None else min_size
    return max(-(-length // multiple) * multiple, min_size)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int | None = None) -> torch.Tensor:
    """Pads (..., H, W) on the bottom and right, by repeated reflection, to multiples of ``multiple``.

    Args:
        x: a tensor with at least 3 dimensions, images in the last two.
        multiple: both sides become multiples of this (the generator's ``size_multiple``).
        min_size: both sides become at least this (default ``2 * multiple``).

    Returns:
        (..., H', W') with ``H' = padded_size(H, ...)``; its top-left (H, W) block is ``x``. Crop the
        network's output back with ``out[..., :H, :W]``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    min_size = 2 * multiple if min_size is None else min_size
    if not torch.jit.is_tracing() and (
        x.shape[-2] == padded_size(x.shape[-2], multiple, min_size)
        and x.shape[-1] == padded_size(x.shape[-1], multiple, min_size)
    ):
        return x  # nothing to pad (traced graphs always index, so that they fit every size)
    dims = (x.ndim - 2, x.ndim - 1)
    for dim in dims:
        length = _size(x, dim)
        padded = torch.clamp((length + multiple - 1) // multiple * multiple, min=min_size)
        x = x.index_select(dim, _mirror_indices(x, length, padded))
    return x
