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


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` (no-op if it already has that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
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


def upsample_rows(x: torch.Tensor, rows: slice, size: tuple[int, int]) -> torch.Tensor:
    """Rows ``rows`` of ``upsample_to(x, size)``, computed without the full-size result.

    Full-resolution translation fuses a low-resolution global prediction into a large image band by band,
    so memory holds one band, not an upsampled copy of the whole image. Equal (to float rounding) to
    ``upsample_to(x, size)[..., rows, :]``.

    Args:
        x: (B, C, h, w).
        rows: a slice with explicit start and stop in ``[0, size[0]]``.
        size: the full output size (H, W).
    """
    height, width = size
    if not (0 <= rows.start < rows.stop <= height) or rows.step not in (None, 1):
        raise ValueError(f"rows {rows} must be a non-empty slice of 0..{height}")
    if tuple(x.shape[-2:]) == (height, width):
        return x[..., rows, :]
    top, bottom, frac_y = _linear_taps(rows.start, rows.stop, x.shape[-2], height)
    left, right, frac_x = _linear_taps(0, width, x.shape[-1], width)
    frac_y = frac_y.to(x.device, x.dtype)[:, None]  # (band, 1)
    frac_x = frac_x.to(x.device, x.dtype)  # (W,)
    top, bottom, left, right = (t.to(x.device) for t in (top, bottom, left, right))
    band = x[..., top, :] * (1 - frac_y) + x[..., bottom, :] * frac_y  # (B, C, band, w)
    return band[..., left] * (1 - frac_x) + band[..., right] * frac_x  # (B, C, band, W)


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


def fuse_predictions(
    local_pred: torch.Tensor,
    global_pred: torch.Tensor,
    attention: torch.Tensor,
    local_in_global: Box | Sequence[Box] | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 6 over the local crop.

    The global prediction and the attention are upsampled over the whole global crop (bilinear, by the
    crop's integer scale) and then cut to the local crop, exactly as full-resolution translation upsamples
    them over the whole image, so that training and inference fuse the same values.

    Args:
        local_pred: Y_l, (B, C, hl, wl), the local generator's output at full resolution.
        global_pred: Y_g, (B, C, hg, wg), the global generator's output on the downsampled global crop.
        attention: M_s at any resolution covering the global crop, (B, 1, ha, wa); resized to (hg, wg).
        local_in_global: the local crop's box in global-output pixels (from ``sample_multiscale_crops``):
            one Box for the whole batch, one per image, or a (B, 4) tensor of (top, left, height, width).

    Returns:
        (fused, global_on_local, attention_on_local), each at the local crop's resolution (hl, wl).
    """
    if local_pred.shape[:2] != global_pred.shape[:2]:
        raise ValueError(
            f"local and global predictions differ in batch/channels: {tuple(local_pred.shape)} vs "
            f"{tuple(global_pred.shape)}"
        )
    batch, channels = local_pred.shape[:2]
    hl, wl = local_pred.shape[-2:]
    hg, wg = global_pred.shape[-2:]
    attention = upsample_to(attention, (hg, wg))  # (B, 1, hg, wg)
    both = torch.cat([global_pred, attention], dim=1)  # (B, C + 1, hg, wg)
    pieces = []
    for b, box in enumerate(_as_boxes(local_in_global, batch)):
        if hl % box.height or wl % box.width or hl // box.height != wl // box.width:
            raise ValueError(f"the local prediction ({hl}x{wl}) is not an integer upscale of its box {box}")
        s = hl // box.height
        up = upsample_to(both[b : b + 1], (hg * s, wg * s))  # (1, C + 1, hg * s, wg * s)
        pieces.append(up[..., box.top * s : box.top * s + hl, box.left * s : box.left * s + wl])
    on_local = torch.cat(pieces)  # (B, C + 1, hl, wl)
    global_on_local, attention_on_local = on_local[:, :channels], on_local[:, channels:]
    fused = attention_on_local * local_pred + (1 - attention_on_local) * global_on_local
    return fused, global_on_local, attention_on_local
