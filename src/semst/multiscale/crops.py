"""Aligned global and local crops for multi-scale training (SemST Eq. 4-5).

From an image of H x W pixels:

* the global crop ``X_g`` is a random region of ``global_region`` x ``global_region`` pixels, downsampled
  by the integer ``scale`` to ``global_region / scale`` pixels a side (Eq. 4);
* the local crop ``X_l`` is a random ``local_size`` x ``local_size`` region at full resolution inside the
  global region (Eq. 5).

As in HRDA, the local crop's offset inside the global region and its size are multiples of ``scale``, so
the local crop covers exactly the global-output pixels ``local_in_global`` and the global prediction can be
upsampled and cropped onto it without interpolation offsets (the fusion of Eq. 6).

`downsample` is the operator T of Eq. 4, the one definition that training crops, full-resolution
translation and exported models use: average pooling over ``scale`` x ``scale`` blocks, so that pixel i of
the downsampled image covers exactly the image pixels ``[i * scale, (i + 1) * scale)`` (a last block cut
short by the image border averages the pixels it has). Upsampling by exactly ``scale`` then brings a global
prediction back onto the same grid (semst.multiscale.fusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Box:
    """A pixel rectangle: rows [top, top + height), columns [left, left + width)."""

    top: int
    left: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class CropBoxes:
    global_box: Box  # the global region, in image pixels
    local_box: Box  # the local crop, in image pixels (inside global_box)
    local_in_global: Box  # the local crop in the pixels of the downsampled global crop
    scale: int  # global_region / global crop side


def _check(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def sample_multiscale_crops(
    height: int, width: int, *, global_region: int, scale: int, local_size: int, rng: np.random.Generator
) -> CropBoxes:
    """Draw an aligned (global, local) crop pair from an image of ``height`` x ``width`` pixels.

    Args:
        height, width: image size in pixels; both must be >= ``global_region``.
        global_region: side of the global region in image pixels (the paper: a large crop).
        scale: integer downsampling factor of the global crop (its side is ``global_region // scale``).
        local_size: side of the full-resolution local crop; <= ``global_region``.
        rng: the only source of randomness (seeded per sample by the data pipeline).

    Raises:
        ValueError: if the sizes are inconsistent or the image is smaller than the global region.
    """
    for name, value in (
        ("height", height),
        ("width", width),
        ("global_region", global_region),
        ("scale", scale),
        ("local_size", local_size),
    ):
        _check(name, value)
    if global_region % scale:
        raise ValueError(f"global_region ({global_region}) must be a multiple of scale ({scale})")
    if local_size % scale:
        raise ValueError(
            f"local_size ({local_size}) must be a multiple of scale ({scale}) to align with the global crop"
        )
    if local_size > global_region:
        raise ValueError(f"local_size ({local_size}) must not exceed global_region ({global_region})")
    if height < global_region or width < global_region:
        raise ValueError(
            f"the image ({height}x{width}) is smaller than the global region ({global_region}); resize it first"
        )
    top = int(rng.integers(0, height - global_region + 1))
    left = int(rng.integers(0, width - global_region + 1))
    # Local offsets inside the global region, on the grid of multiples of `scale`.
    steps = (global_region - local_size) // scale + 1
    local_top = int(rng.integers(0, steps)) * scale
    local_left = int(rng.integers(0, steps)) * scale
    return CropBoxes(
        global_box=Box(top, left, global_region, global_region),
        local_box=Box(top + local_top, left + local_left, local_size, local_size),
        local_in_global=Box(
            local_top // scale, local_left // scale, local_size // scale, local_size // scale
        ),
        scale=scale,
    )


def downsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    """T of Eq. 4: (..., H, W) -> (..., ceil(H / scale), ceil(W / scale)) by averaging scale x scale blocks.

    Blocks cut short by the image border average the pixels they have. Traceable for export (ONNX
    AveragePool with ``ceil_mode``); the identity for ``scale == 1``.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if scale == 1:
        return image
    batch = image.unsqueeze(0) if image.ndim == 3 else image  # (B, C, H, W)
    out = F.avg_pool2d(batch, scale, scale, ceil_mode=True, count_include_pad=False)
    return out[0] if image.ndim == 3 else out


def crop(image: torch.Tensor, box: Box) -> torch.Tensor:
    """Cut ``box`` out of a (..., H, W) tensor."""
    rows, cols = box.slices()
    return image[..., rows, cols]
