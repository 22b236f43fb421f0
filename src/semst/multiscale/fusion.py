"""Scale attention and the fusion of global and local predictions (SemST Eq. 6, after HRDA).

``Y = M_s * Y_l + (1 - M_s) * Y_g``: over the local crop, the full-resolution local prediction ``Y_l`` and
the global prediction ``Y_g`` (upsampled and cropped to the local region) are mixed by the scale-attention
map ``M_s`` in [0, 1], predicted from features that see the global context (HRDA predicts its attention from
the low-resolution context branch only, for the same reason: which scale to trust depends on the layout).
"""

from __future__ import annotations

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


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` (no-op if it already has that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def fuse_predictions(
    local_pred: torch.Tensor, global_pred: torch.Tensor, attention: torch.Tensor, local_in_global: Box
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 6 over the local crop.

    Args:
        local_pred: Y_l, (B, C, hl, wl), the local generator's output at full resolution.
        global_pred: Y_g, (B, C, hg, wg), the global generator's output on the downsampled global crop.
        attention: M_s at any resolution covering the global crop, (B, 1, ha, wa); resized to (hg, wg).
        local_in_global: the local crop's box in global-output pixels (from ``sample_multiscale_crops``).

    Returns:
        (fused, global_on_local, attention_on_local), each at the local crop's resolution (hl, wl).
    """
    if local_pred.shape[:2] != global_pred.shape[:2]:
        raise ValueError(
            f"local and global predictions differ in batch/channels: {tuple(local_pred.shape)} vs "
            f"{tuple(global_pred.shape)}"
        )
    size = tuple(local_pred.shape[-2:])
    rows, cols = local_in_global.slices()
    attention = upsample_to(attention, tuple(global_pred.shape[-2:]))  # (B, 1, hg, wg)
    global_on_local = upsample_to(global_pred[..., rows, cols], size)  # (B, C, hl, wl)
    attention_on_local = upsample_to(attention[..., rows, cols], size)  # (B, 1, hl, wl)
    fused = attention_on_local * local_pred + (1 - attention_on_local) * global_on_local
    return fused, global_on_local, attention_on_local
