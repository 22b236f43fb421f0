"""Scale attention and the fusion of global and local predictions (SemST Eq. 6, after HRDA).

``Y = M_s * Y_l + (1 - M_s) * Y_g``: over the local crop, the full-resolution local prediction ``Y_l`` and
the global prediction ``Y_g`` (upsampled and cropped to the local region) are mixed by the scale-attention
map ``M_s`` in [0, 1], predicted from features that see the global context (HRDA predicts its attention from
the low-resolution context branch only, for the same reason: which scale to trust depends on the layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semst.multiscale.crops import Box
from semst.networks import init_weights, norm_layer


class ScaleAttentionHead(nn.Module):
    """Predicts ``M_s`` (B, 1, h, w) in [0, 1] from global-branch features (B, C, h, w).

    conv3x3 (C -> hidden) - norm - ReLU - conv1x1 (hidden -> 1) - sigmoid, as HRDA's attention head reduced to
    its fusion layer. The last convolution's bias starts at ``initial_bias`` (0: both scales trusted equally).
    """

    def __init__(self, in_channels: int, hidden: int = 64, norm: str = "instance", initial_bias: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, padding_mode="reflect"),
            norm_layer(norm, hidden),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(hidden, 1, kernel_size=1)
        init_weights(self, kind="xavier", gain=0.02)
        nn.init.constant_(self.out.bias, initial_bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.body(features)))  # (B, 1, h, w)


def attention_tap(generator: nn.Module) -> str:
    """The generator tap the scale-attention head reads: the bottleneck (last residual block), whose receptive
    field spans the most context; ``down2`` for a generator without residual blocks."""
    blocks = len(getattr(generator, "blocks", ()))
    return f"res{blocks}" if blocks else "down2"


def upsample_by(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear upsampling of (B, C, h, w) by exactly ``scale`` to (B, C, h * scale, w * scale).

    The inverse grid of `semst.multiscale.crops.downsample`: pixel i of ``x`` lands on output pixels
    ``[i * scale, (i + 1) * scale)``. The output size is computed from ``x``'s shape (traceable).
    """
    if scale == 1:
        return x
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _linear_taps(out_start: int, out_stop: int, in_size: int, out_size: int):
    """Source indices and weights of 1-D linear interpolation (``align_corners=False``) for the outputs
    ``out_start .. out_stop - 1`` of a resize from ``in_size`` to ``out_size``, as PyTorch computes them."""
    scale = in_size / out_size
    src = ((torch.arange(out_start, out_stop, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = (src - low).to(torch.float32)
    return low, high, frac


def upsample_rows(x: torch.Tensor, rows: slice, scale: int, width: int) -> torch.Tensor:
    """``upsample_by(x, scale)[..., rows, :width]``, computed without the full-size result.

    Full-resolution translation fuses a low-resolution global prediction into a large image band by band,
    so memory holds one band, not an upsampled copy of the whole image. Equal (to float rounding) to the
    full computation.

    Args:
        x: (B, C, h, w).
        rows: a slice with explicit start and stop in ``[0, h * scale]``.
        scale: the upsampling factor.
        width: output columns kept, at most ``w * scale``.
    """
    height, full_width = x.shape[-2] * scale, x.shape[-1] * scale
    if not (0 <= rows.start < rows.stop <= height) or rows.step not in (None, 1):
        raise ValueError(f"rows {rows} must be a non-empty slice of 0..{height}")
    if not 0 < width <= full_width:
        raise ValueError(f"width {width} must be in 1..{full_width}")
    if scale == 1:
        return x[..., rows, :width]
    top, bottom, frac_y = _linear_taps(rows.start, rows.stop, x.shape[-2], height)
    left, right, frac_x = _linear_taps(0, width, x.shape[-1], full_width)
    frac_y = frac_y.to(x.device, x.dtype)[:, None]  # (band, 1)
    frac_x = frac_x.to(x.device, x.dtype)  # (width,)
    top, bottom, left, right = (t.to(x.device) for t in (top, bottom, left, right))
    band = x[..., top, :] * (1 - frac_y) + x[..., bottom, :] * frac_y  # (B, C, band, w)
    return band[..., left] * (1 - frac_x) + band[..., right] * frac_x  # (B, C, band, width)


def _as_boxes(boxes: Box | Sequence[Box] | torch.Tensor, batch: int) -> list[Box]:
    if isinstance(boxes, Box):
        return [boxes] * batch
    if isinstance(boxes, torch.Tensor):
        if boxes.shape != (batch, 4):
            raise ValueError(
                f"boxes must be a ({batch}, 4) tensor of (top, left, height, width), got {tuple(boxes.shape)}"
            )
        return [Box(*(int(v) for v in row)) for row in boxes.tolist()]
    boxes = list(boxes)
    if len(boxes) != batch:
        raise ValueError(f"expected {batch} boxes, one per image, got {len(boxes)}")
    return boxes


def crop_to_boxes(maps: torch.Tensor, boxes: Box | Sequence[Box] | torch.Tensor, scale: int) -> torch.Tensor:
    """The global maps (B, C, hg, wg) upsampled by ``scale`` and cut to each image's local crop.

    Args:
        maps: global-branch maps (Y_g and M_s) at the global crop's resolution.
        boxes: each local crop's box in global-crop pixels (from ``sample_multiscale_crops``): one Box for
            the whole batch, one per image, or a (B, 4) tensor of (top, left, height, width).
        scale: the global crop's downsampling factor.

    Returns:
        (B, C, box.height * scale, box.width * scale): the values full-resolution translation computes at
        the local crop's pixels (it upsamples the whole downsampled image the same way).
    """
    pieces = []
    for b, box in enumerate(_as_boxes(boxes, maps.shape[0])):
        up = upsample_by(maps[b : b + 1], scale)  # (1, C, hg * s, wg * s)
        top, left = box.top * scale, box.left * scale
        pieces.append(up[..., top : top + box.height * scale, left : left + box.width * scale])
    return torch.cat(pieces)  # (B, C, hl, wl)


def fuse(local: torch.Tensor, global_image: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``Y = M_s * Y_l + (1 - M_s) * Y_g``, all at one resolution: (B, C, h, w), (B, C, h, w),
    (B, 1, h, w) -> (B, C, h, w). The one place the fusion is computed, in training and inference."""
    return attention * local + (1 - attention) * global_image
