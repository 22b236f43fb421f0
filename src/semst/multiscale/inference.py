"""Full-resolution multi-scale translation with bounded memory.

For an image of H x W pixels and a model trained with downsampling factor ``s``:

1. **Global pass.** The image is downsampled by area averaging to ``ceil(H / s) x ceil(W / s)`` (the
   operator T of Eq. 4, applied to the whole image instead of a crop) and G_g translates it, in one pass if
   it fits in a ``global_window`` x ``global_window`` window, else in overlapping windows blended with
   linear ramps. The same pass predicts the scale attention M_s from G_g's bottleneck features; Y_g and M_s
   travel together as one 4-channel low-resolution map.
2. **Local pass.** G_l translates overlapping full-resolution ``tile`` x ``tile`` windows, ``tile_batch``
   at a time, blended with linear ramps that weight each tile toward its centre (semst.tiling).
3. **Fusion** (Eq. 6): ``Y = M_s * Y_l + (1 - M_s) * Y_g`` with Y_g and M_s upsampled bilinearly to H x W,
   band by band into the local output, so no full-resolution copy of the global maps is ever held.

Beyond the input image and the output (with the tiler's weight canvas), memory holds one tile batch and
one global window: it does not grow with the image size (tests/multiscale/test_inference.py measures it).
The global generator's instance norm sees the statistics of the whole downsampled image (or of a large
window) and the local generator those of a tile the size of its training crops, as in training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semst.multiscale.fusion import attention_tap, upsample_rows, upsample_to
from semst.tiling import tiled_apply

FUSION_BAND_ROWS = 256  # output rows fused at a time


def downsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    """T of Eq. 4 for a whole image: area averaging to ``ceil(H / scale) x ceil(W / scale)``.

    Equals ``avg_pool2d(image, scale)`` when both sides are multiples of ``scale`` (as the training crops).
    """
    height, width = image.shape[-2:]
    size = (math.ceil(height / scale), math.ceil(width / scale))
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="area")


def global_prediction(generator: nn.Module, attention: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """G_g's translation and the scale attention of a (B, 3, h, w) batch, as one (B, 4, h, w) map:
    channels 0-2 = Y_g in [-1, 1], channel 3 = M_s in [0, 1] (upsampled from the bottleneck's resolution)."""
    tap = attention_tap(generator)
    out, features = generator.forward_with_taps(x, [tap])
    weights = upsample_to(attention(features[tap]), tuple(out.shape[-2:]))  # (B, 1, h, w)
    return torch.cat([out, weights.to(out.dtype)], dim=1)  # (B, 4, h, w)


@torch.no_grad()
def translate_multiscale(
    generator_global: nn.Module,
    generator_local: nn.Module,
    attention: nn.Module,
    image: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    tile_batch: int = 4,
    global_window: int = 512,
    global_overlap: int | None = None,
    device: torch.device | str | None = None,
    parts: bool = False,
    progress: bool = False,
):
    """Translate one (1, 3, H, W) image in [-1, 1] at full resolution (see the module docstring).

    Args:
        generator_global, generator_local, attention: G_g, G_l and the scale-attention head (eval mode).
        image: (1, 3, H, W) float tensor, any size; it stays where it is (typically on the CPU) and tiles
            are moved to ``device``.
        scale: the global crop's downsampling factor used in training (``multiscale.scale``).
        tile, overlap, tile_batch: the local pass's window size, overlap and batch size.
        global_window: the largest window of the global pass (in downsampled pixels).
        global_overlap: overlap of global windows (default ``global_window // 8``).
        device: where the networks run (default: the image's device).
        parts: also return the global prediction, the local prediction and M_s at full resolution
            (memory then grows with the image size: this is for pictures, not for data sets).
        progress: progress bars over tile batches.

    Returns:
        (1, 3, H, W) fused translation in [-1, 1] on ``image.device``; with ``parts`` a dict with the
        keys ``global``, ``local``, ``attention`` ((1, 1, H, W) in [0, 1]) and ``fused``.
    """
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected one (1, 3, H, W) image, got shape {tuple(image.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    height, width = image.shape[-2:]
    multiple = generator_global.size_multiple
    global_overlap = global_window // 8 if global_overlap is None else global_overlap

    # 1. Global pass: Y_g and M_s on the downsampled image, (1, 4, ceil(H/s), ceil(W/s)).
    low = downsample(image.float(), scale)
    global_maps = tiled_apply(
        lambda x: global_prediction(generator_global, attention, x),
        low,
        tile=global_window,
        overlap=min(global_overlap, global_window - 1),
        batch_size=1,
        multiple=multiple,
        out_channels=4,
        device=device,
        progress=progress,
    )
    del low

    # 2. Local pass: G_l on full-resolution tiles, (1, 3, H, W).
    local = tiled_apply(
        generator_local,
        image.float(),
        tile=tile,
        overlap=overlap,
        batch_size=tile_batch,
        multiple=generator_local.size_multiple,
        out_channels=3,
        device=device,
        progress=progress,
    )

    # 3. Fusion, Eq. 6.
    if parts:
        up = upsample_to(global_maps, (height, width))  # (1, 4, H, W)
        weights = up[:, 3:].clamp(0, 1)
        fused = weights * local + (1 - weights) * up[:, :3]
        return {"global": up[:, :3], "local": local, "attention": weights, "fused": fused}
    for top in range(0, height, FUSION_BAND_ROWS):
        rows = slice(top, min(height, top + FUSION_BAND_ROWS))
        band = upsample_rows(global_maps, rows, (height, width))  # (1, 4, rows, W)
        weights = band[:, 3:].clamp(0, 1)
        local[..., rows, :] = weights * local[..., rows, :] + (1 - weights) * band[:, :3]
    return local
