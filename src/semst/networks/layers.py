"""Small building blocks shared by the semst networks.

This module holds the layers that the generator and the discriminator are assembled from:

- `norm_layer`: the normalisation factory (instance norm with or without affine parameters, or none).
- `InstanceNorm2d`: instance norm that translates on the CPU as a group norm (faster there, same values).
- `BlurDownsample` / `BlurUpsample`: CUT's anti-aliased resampling layers (fixed depthwise binomial filters,
  after Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019).
- `ResidualBlock`: the two-convolution residual block of the ResNet generator.
- `init_weights`: CUT's weight initialisation for convolutions and linear layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "instance_affine", "none")
INIT_KINDS = ("xavier", "normal", "kaiming", "orthogonal")

_INITIALISED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)


def norm_layer(name: str, channels: int) -> nn.Module:
    """Builds the normalisation layer called `name` for `channels` feature maps.

    Args:
        name: One of `NORMS`: "instance" (InstanceNorm2d without affine parameters and without running
            statistics, CUT's default), "instance_affine" (the same with a learnable scale and shift) or
            "none" (identity).
        channels: Number of channels that will be normalised.

    Returns:
        The normalisation module.

    Raises:
        ValueError: If `name` is not one of `NORMS` or `channels` is not positive.
    """
    if channels < 1:
        raise ValueError(f"norm_layer expects a positive channel count, got channels={channels}.")
    if name == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if name == "instance_affine":
        return InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {name!r}; expected one of {NORMS}.")


class InstanceNorm2d(nn.InstanceNorm2d):
    """`torch.nn.InstanceNorm2d` without running statistics that, when no gradient is recorded on the CPU
    (translation), computes as a group norm with one group per channel.

    Both normalise each (image, channel) plane by its own mean and biased variance, then apply the optional
    per-channel affine, so the results agree to float rounding (a test checks it). PyTorch's CPU instance
    norm reshapes the input to one batch-norm "batch" of B * C channels; its group-norm kernel is 2-3x faster
    at the generators' shapes (a 512-pixel tile of the default generator: 0.18-0.24 s against 0.49-0.51 s of
    a 4-6 s pass, measured with the profiler). Training keeps `torch.nn.InstanceNorm2d`'s own computation:
    there the norms are about 4 % of a generator's forward and backward (0.28 s of 7 s at 256 px, 0.16-0.19 s
    as a group norm), and the same numerics keep a run bit-identical to the same seed's run of earlier
    versions. So do CUDA, traced and ONNX-exported graphs and inputs whose channel count differs.
    Parameters, state-dict keys and ``repr`` are that module's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            or torch.jit.is_tracing()
            or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export()
            or x.device.type != "cpu"
            or x.dim() != 4
            or x.shape[1] != self.num_features
            or self.track_running_stats
        ):
            return super().forward(x)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def _binomial_filter(taps: tuple[float, ...]) -> torch.Tensor:
    """Returns the normalised 2-D outer product of a 1-D binomial filter, shape (len(taps), len(taps))."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


def _check_feature_map(x: torch.Tensor, channels: int, layer: str) -> None:
    """Raises a ValueError unless `x` is a (B, channels, H, W) tensor."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{layer} expects a 4-D tensor of shape (B, {channels}, H, W), got shape {tuple(x.shape)}."
        )


class BlurDownsample(nn.Module):
    """Anti-aliased 2x downsampling: blur with a fixed [1, 2, 1] binomial filter, then subsample.

    The input is reflect-padded by one pixel on each side and convolved depthwise with
    outer([1, 2, 1], [1, 2, 1]) / 16 at stride 2 (CUT's `Downsample` with its defaults). An (H, W) input gives
    a (ceil(H / 2), ceil(W / 2)) output. The filter is a buffer (it moves with the module and appears in the
    state dict as `kernel`) and is never trained.

    Args:
        channels: Number of input (and output) channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"BlurDownsample expects a positive channel count, got channels={channels}.")
        self.channels = channels
        kernel = _binomial_filter((1.0, 2.0, 1.0))  # (3, 3), sums to 1
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())  # (C, 1, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blurs and subsamples `x`.

        Args:
            x: Feature map of shape (B, C, H, W), H and W at least 2.

        Returns:
            Tensor of shape (B, C, ceil(H / 2), ceil(W / 2)).
        """
        _check_feature_map(x, self.channels, "BlurDownsample")
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (B, C, H + 2, W + 2)
        return F.conv2d(padded, self.kernel, stride=2, groups=self.channels)  # (B, C, ceil(H/2), ceil(W/2))

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class BlurUpsample(nn.Module):
    """Anti-aliased 2x upsampling with a fixed [1, 3, 3, 1] binomial filter.

    This is CUT's `Upsample` with its defaults (filter size 4, replicate padding): the input is
    replicate-padded by one pixel, then a depthwise transposed convolution at stride 2 with the filter
    outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64 * 4 (the factor 4 = stride**2 keeps the mean intensity) is applied.
    CUT calls `conv_transpose2d(..., padding=2)` and then drops the first and the last row and column; a
    transposed-convolution padding of 3 crops exactly the same rows and columns, so that is what is used here.
    An (H, W) input gives exactly a (2H, 2W) output, and a constant image stays constant (also at the borders,
    thanks to the replicate padding). The filter is a non-trainable buffer called `kernel`.

    Args:
        channels: Number of input (and output) channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"BlurUpsample expects a positive channel count, got channels={channels}.")
        self.channels = channels
        kernel = _binomial_filter((1.0, 3.0, 3.0, 1.0)) * 4.0  # (4, 4), sums to stride**2 = 4
        self.register_buffer("kernel", kernel.expand(channels, 1, 4, 4).clone())  # (C, 1, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsamples `x` by a factor of two.

        Args:
            x: Feature map of shape (B, C, H, W).

        Returns:
            Tensor of shape (B, C, 2H, 2W).
        """
        _check_feature_map(x, self.channels, "BlurUpsample")
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2)
        # padding=3 crops 3 rows/columns per side of the (2H + 6, 2W + 6) full transposed-convolution output
        upsampled = F.conv_transpose2d(padded, self.kernel, stride=2, padding=3, groups=self.channels)
        return upsampled  # (B, C, 2H, 2W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ResidualBlock(nn.Module):
    """ResNet block: x + norm(conv(relu(norm(conv(x))))) with 3x3 convolutions and reflection padding.

    Layout (attribute names): `pad` (ReflectionPad2d(1), used before both convolutions), `conv1`, `norm1`,
    `act`, `conv2`, `norm2`. Both convolutions keep their bias for every norm: CUT enables the bias exactly
    when the norm is an InstanceNorm, which covers "instance" and "instance_affine"; with "none" CUT drops it,
    but a bias is the sensible choice without normalisation, so semst keeps it everywhere. There is no dropout
    (CUT's default `--no_dropout`).

    Args:
        channels: Number of input (and output) channels.
        norm: Normalisation, one of `NORMS`.
    """

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=0, bias=True)
        self.norm1 = norm_layer(norm, channels)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=0, bias=True)
        self.norm2 = norm_layer(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the block.

        Args:
            x: Feature map of shape (B, C, H, W), H and W at least 2.

        Returns:
            Tensor of shape (B, C, H, W).
        """
        h = self.act(self.norm1(self.conv1(self.pad(x))))  # (B, C, H, W)
        h = self.norm2(self.conv2(self.pad(h)))  # (B, C, H, W)
        return x + h


def init_weights(module: nn.Module, kind: str = "xavier", gain: float = 0.02) -> nn.Module:
    """Initialises every convolution, transposed convolution and linear layer inside `module` in place.

    Follows CUT's `init_weights`: weights are drawn according to `kind` and biases are set to zero. Other
    layers (e.g. affine instance norms) keep PyTorch's defaults. The result depends only on torch's global RNG
    state.

    Args:
        module: Network to initialise (the module itself and all its descendants are visited).
        kind: One of `INIT_KINDS`: "xavier" (xavier_normal_ with `gain`, CUT's default), "normal"
            (N(0, gain**2)), "kaiming" (kaiming_normal_, fan_in, a=0; `gain` is ignored, as in CUT) or
            "orthogonal" (with `gain`).
        gain: Scale of the initial weights, see `kind`.

    Returns:
        `module`, for chaining.

    Raises:
        ValueError: If `kind` is not one of `INIT_KINDS`.
    """
    if kind not in INIT_KINDS:
        raise ValueError(f"Unknown init kind {kind!r}; expected one of {INIT_KINDS}.")

    def initialise(layer: nn.Module) -> None:
        if not isinstance(layer, _INITIALISED_LAYERS):
            return
        if kind == "xavier":
            nn.init.xavier_normal_(layer.weight, gain=gain)
        elif kind == "normal":
            nn.init.normal_(layer.weight, mean=0.0, std=gain)
        elif kind == "kaiming":
            nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in")
        else:
            nn.init.orthogonal_(layer.weight, gain=gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    with torch.no_grad():
        module.apply(initialise)
    return module
