"""PatchGAN discriminator D of CUT / SemST (CUT's `NLayerDiscriminator`, the "70x70 PatchGAN").

Every output logit judges one overlapping patch of the input: 70x70 pixels for `num_layers=3` with strided
convolutions. With CUT's anti-aliased downsampling (the default) each downsampling convolution runs at stride
1 and is followed by a `BlurDownsample`, which widens the receptive field to 84x84; both versions give 30x30
logits for a 256x256 input. There is no sigmoid: the adversarial losses take raw logits.
"""

from __future__ import annotations

import torch
from torch import nn

from semst.networks.layers import NORMS, BlurDownsample, init_weights, norm_layer


class DiscriminatorBlock(nn.Module):
    """Conv4x4 (padding 1) -> norm -> LeakyReLU(0.2), optionally followed by 2x downsampling.

    Attribute names: `conv`, `norm`, `act`, `resample`. With `downsample="antialias"` the convolution has
    stride 1 and `resample` is a `BlurDownsample`; with "strided" the convolution has stride 2; with "none" it
    has stride 1 and no downsampling follows. `resample` is an identity unless it blurs.

    Args:
        in_channels: Number of input channels.
        out_channels: Number of output channels.
        norm: Normalisation, one of `NORMS`.
        downsample: "antialias", "strided" or "none".
    """

    DOWNSAMPLE_MODES = ("antialias", "strided", "none")

    def __init__(self, in_channels: int, out_channels: int, norm: str, downsample: str) -> None:
        super().__init__()
        if downsample not in self.DOWNSAMPLE_MODES:
            raise ValueError(f"Unknown downsample {downsample!r}; expected one of {self.DOWNSAMPLE_MODES}.")
        stride = 2 if downsample == "strided" else 1
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=True)
        self.norm = norm_layer(norm, out_channels)
        self.act = nn.LeakyReLU(0.2)
        self.resample = BlurDownsample(out_channels) if downsample == "antialias" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps (B, in, H, W) to (B, out, H', W'), H' = ceil((H - 1) / 2) when downsampling, else H - 1."""
        return self.resample(self.act(self.norm(self.conv(x))))


class PatchDiscriminator(nn.Module):
    """CUT's N-layer PatchGAN discriminator.

    Module structure (attribute names; C = `base_channels`, n = `num_layers`):

    - `blocks`: `nn.ModuleList` of n + 1 `DiscriminatorBlock`s:
      block 0: in -> C, no norm, downsampling;
      block k (1 <= k < n): C * min(2**(k-1), 8) -> C * min(2**k, 8), norm, downsampling;
      block n: -> C * min(2**n, 8), norm, no downsampling.
    - `classifier`: Conv4x4 stride 1 padding 1 to one logit channel.

    All convolutions have a bias (CUT drops it after the first layer when the norm is not an InstanceNorm).

    Args:
        in_channels: Number of input image channels.
        base_channels: Channels C of the first layer (CUT's `ndf`).
        num_layers: Number of downsampling layers n (CUT's `n_layers_D`, 3 for the 70x70 PatchGAN).
        norm: Normalisation of all but the first block, one of `NORMS`.
        antialias: If True, downsample with stride-1 convolutions followed by `BlurDownsample` (CUT's
            default); if False, with stride-2 convolutions (CUT's `--no_antialias`).
        init: Weight initialisation, see `init_weights`.
        init_gain: Gain of the weight initialisation.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: str = "instance",
        antialias: bool = True,
        init: str = "xavier",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"Unknown norm {norm!r}; expected one of {NORMS}.")
        for argument, value in (
            ("in_channels", in_channels),
            ("base_channels", base_channels),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise ValueError(f"PatchDiscriminator expects {argument} >= 1, got {value}.")
        self.in_channels = in_channels
        self.num_layers = num_layers
        downsample = "antialias" if antialias else "strided"

        widths = [base_channels * min(2**k, 8) for k in range(num_layers + 1)]  # C, 2C, 4C, 8C, 8C, ...
        blocks = [DiscriminatorBlock(in_channels, widths[0], norm="none", downsample=downsample)]
        for k in range(1, num_layers):
            blocks.append(DiscriminatorBlock(widths[k - 1], widths[k], norm=norm, downsample=downsample))
        blocks.append(
            DiscriminatorBlock(widths[num_layers - 1], widths[num_layers], norm=norm, downsample="none")
        )
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(widths[num_layers], 1, kernel_size=4, stride=1, padding=1, bias=True)
        init_weights(self, kind=init, gain=init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores every patch of `x`.

        Args:
            x: Images of shape (B, in_channels, H, W).

        Returns:
            Logits of shape (B, 1, H', W'); (B, 1, 30, 30) for 256x256 inputs and `num_layers=3`.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator expects images of shape (B, {self.in_channels}, H, W), "
                f"got shape {tuple(x.shape)}."
            )
        h = x
        for block in self.blocks:
            h = block(h)
        return self.classifier(h)  # (B, 1, H', W')
