"""A compact U-Net for semantic segmentation: semst's stand-in for the paper's FCN-8s evaluator.

The semantic-distortion protocol (SemST, section 4) scores a translation by segmenting translated source
images with a network trained on the target domain. No pretrained segmenter can be assumed, so semst trains
its own; this network is small enough to train in minutes on a CPU at 256x128 to 512x256 pixels and keeps a
full-resolution skip connection, which thin classes (poles, signs, people) need: an FCN-8s-style head that
predicts at 1/8 resolution and upsamples blurs one-pixel-wide structures away.

Structure (C = ``width``, D = ``depth``)::

    normalise -> pad to a multiple of 2**D
    stem:      conv3x3 -> norm -> ReLU -> conv3x3 -> norm -> ReLU               C channels, full resolution
    down[i]:   maxpool 2 -> 2 x (conv3x3 -> norm -> ReLU)                        C * 2**(i+1), 1 / 2**(i+1)
    up[i]:     bilinear x2 -> concat skip -> 2 x (conv3x3 -> norm -> ReLU)       back up to C, full resolution
    head:      conv1x1 -> num_classes logits -> crop to the input size

The network is TorchScript-scriptable (``torch.jit.script``), so it exports with dynamic input sizes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SEGMENTER_NORMS", "SegmentationUNet"]

SEGMENTER_NORMS = ("group", "batch")
"""Normalisations of :class:`SegmentationUNet` (the translator's are :data:`semst.networks.layers.NORMS`)."""

# ImageNet statistics: the usual choice, and they bring RGB in [0, 1] to roughly zero mean and unit variance.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _norm(name: str, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    # Up to 8 groups, as many as divide the channels evenly (GroupNorm requires that).
    groups = max(g for g in range(1, 9) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ConvBlock(nn.Module):
    """Two (conv3x3 -> norm -> ReLU) layers: (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DownBlock(nn.Module):
    """Max-pool by 2, then a `ConvBlock`: (B, in, H, W) -> (B, out, H / 2, W / 2)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv = ConvBlock(in_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.max_pool2d(x, kernel_size=2))


class UpBlock(nn.Module):
    """Bilinear x2, concatenate the skip, then a `ConvBlock`.

    (B, in, H / 2, W / 2) and skip (B, skip, H, W) -> (B, out, H, W).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv = ConvBlock(in_channels + skip_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(skip.shape[-2], skip.shape[-1]), mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))  # (B, in + skip, H, W) -> (B, out, H, W)


class SegmentationUNet(nn.Module):
    """U-Net segmenter: RGB (B, 3, H, W) in [0, 1] -> logits (B, num_classes, H, W), for any H and W.

    Inputs are normalised inside the network (ImageNet mean and std), padded on the bottom and right to a
    multiple of ``2**depth`` (by reflection, or replication where the image is too small to reflect) and the
    logits are cropped back, so the output always has the input's size.

    Args:
        num_classes: Number of classes (output channels).
        width: Channels C at full resolution; level i has ``C * 2**i``, capped at ``max_width``.
        depth: Number of 2x downsamplings (1 to 6).
        norm: "group" (GroupNorm, no train/eval difference, works at batch 1) or "batch" (BatchNorm).
        max_width: Upper bound on the channels of the deepest levels (keeps the parameter count small).
    """

    def __init__(
        self, num_classes: int, *, width: int = 24, depth: int = 4, norm: str = "group", max_width: int = 256
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"SegmentationUNet needs num_classes >= 1, got {num_classes}")
        if width < 1 or max_width < width:
            raise ValueError(
                f"SegmentationUNet needs 1 <= width <= max_width, got width={width}, {max_width=}"
            )
        if not 1 <= depth <= 6:
            raise ValueError(f"SegmentationUNet depth must be 1 to 6 downsamplings, got {depth}")
        if norm not in SEGMENTER_NORMS:
            raise ValueError(f"Unknown norm {norm!r} for SegmentationUNet; expected one of {SEGMENTER_NORMS}")
        self.num_classes = num_classes
        self.width = width
        self.depth = depth
        self.norm = norm
        self.max_width = max_width
        self.multiple = 2**depth
        channels = [min(width * 2**i, max_width) for i in range(depth + 1)]
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = ConvBlock(3, channels[0], norm)
        self.down = nn.ModuleList(DownBlock(channels[i], channels[i + 1], norm) for i in range(depth))
        self.up = nn.ModuleList(
            UpBlock(channels[i + 1], channels[i], channels[i], norm) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments: ``SegmentationUNet(**net.architecture())`` rebuilds the network."""
        return {
            "num_classes": self.num_classes,
            "width": self.width,
            "depth": self.depth,
            "norm": self.norm,
            "max_width": self.max_width,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segments a batch.

        Args:
            x: RGB images (B, 3, H, W), float in [0, 1].

        Returns:
            Logits (B, num_classes, H, W).
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"SegmentationUNet expects RGB images (B, 3, H, W), got shape {list(x.shape)}")
        height, width = x.shape[-2], x.shape[-1]
        x = (x - self.mean) / self.std
        pad_h = (-height) % self.multiple
        pad_w = (-width) % self.multiple
        if pad_h > 0 or pad_w > 0:
            # Reflection needs the pad to be smaller than the side; tiny images are replicated instead.
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, [0, pad_w, 0, pad_h], mode=mode)  # (B, 3, H', W'), multiples of 2**depth
        features = self.stem(x)  # (B, C, H', W')
        skips = [features]
        for block in self.down:
            features = block(features)  # (B, C * 2**i, H' / 2**i, W' / 2**i)
            skips.append(features)
        for i, block in enumerate(self.up):
            features = block(features, skips[self.depth - 1 - i])
        logits = self.head(features)  # (B, num_classes, H', W')
        return logits[:, :, :height, :width]
