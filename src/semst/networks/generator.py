"""ResNet encoder-decoder generator G of CUT / SemST, with named encoder feature taps.

The architecture is CUT's `ResnetGenerator` (itself Johnson et al.'s, as used by CycleGAN) with CUT's
anti-aliased resampling. Instead of CUT's positional `nce_layers` (indices into an `nn.Sequential`, whose
meaning changes with `--no_antialias`), the encoder features used by the contrastive losses are addressed by
name. For an (H, W) input, C = `base_channels` and "in" = `in_channels`:

| tap   | output of                             | shape: antialias / strided      | CUT index: aa / strided |
|-------|---------------------------------------|---------------------------------|-------------------------|
| input | ReflectionPad2d(3) (the padded input) | (in, H+6, W+6)                  | 0 / 0                   |
| stem  | the 7x7 conv, before its norm         | (C, H, W)                       | 1 / 1                   |
| down1 | the first down conv, before its norm  | (2C, H, W) / (2C, H/2, W/2)     | 4 / 4                   |
| down2 | the second down conv, before its norm | (4C, H/2, W/2) / (4C, H/4, W/4) | 8 / 7                   |
| resK  | residual block K (1-based)            | (4C, H/4, W/4)                  | 11+K / 9+K              |

CUT's default `--nce_layers 0,4,8,12,16` is therefore `DEFAULT_TAPS = ("input", "down1", "down2", "res1",
"res5")`; `cut_layer_to_tap` and `taps_from_cut_layers` convert CUT indices for either downsampling mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from semst.networks.layers import NORMS, BlurDownsample, BlurUpsample, ResidualBlock, init_weights, norm_layer

DOWNSAMPLE_MODES = ("antialias", "strided")
UPSAMPLE_MODES = ("antialias", "transposed")
DEFAULT_TAPS = ("input", "down1", "down2", "res1", "res5")

# CUT Sequential index -> tap name for the layers before the residual blocks; index of residual block 1.
_CUT_NAMED_INDICES = {
    "antialias": {0: "input", 1: "stem", 4: "down1", 8: "down2"},
    "strided": {0: "input", 1: "stem", 4: "down1", 7: "down2"},
}
_CUT_FIRST_BLOCK_INDEX = {"antialias": 12, "strided": 10}
# What CUT's unnamed encoder indices hold, for error messages.
_CUT_UNNAMED_INDICES = {
    "antialias": {
        2: "the stem norm",
        3: "the stem ReLU",
        5: "the down1 norm",
        6: "the down1 ReLU",
        7: "the down1 blur downsampling",
        9: "the down2 norm",
        10: "the down2 ReLU",
        11: "the down2 blur downsampling",
    },
    "strided": {
        2: "the stem norm",
        3: "the stem ReLU",
        5: "the down1 norm",
        6: "the down1 ReLU",
        8: "the down2 norm",
        9: "the down2 ReLU",
    },
}


def _check_choice(value: str, choices: tuple[str, ...], argument: str) -> None:
    """Raises a ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"Unknown {argument} {value!r}; expected one of {choices}.")


def _valid_cut_indices(downsample: str) -> str:
    """Describes the CUT indices that have a tap name: '0 (input), 1 (stem), ..., 12+ (res1 at 12, ...)'."""
    named = ", ".join(f"{index} ({name})" for index, name in _CUT_NAMED_INDICES[downsample].items())
    first = _CUT_FIRST_BLOCK_INDEX[downsample]
    return f"{named}, {first}+ (res1 at {first}, res2 at {first + 1}, ...)"


def cut_layer_to_tap(index: int, downsample: str = "antialias", num_blocks: int | None = None) -> str:
    """Converts an index into CUT's `ResnetGenerator.model` Sequential to a semst tap name.

    Args:
        index: CUT layer index, as in `--nce_layers`.
        downsample: Downsampling mode of the CUT generator: "antialias" (CUT's default) or "strided"
            (`--no_antialias`).
        num_blocks: Number of residual blocks of the generator. When given, indices past the last block (the
            decoder) are rejected here; otherwise any index past the downsampling stages maps to a residual
            block and the generator rejects blocks it does not have.

    Returns:
        The tap name ("input", "stem", "down1", "down2" or "resK").

    Raises:
        ValueError: If `downsample` is unknown or `index` is not the output of a tapped layer (e.g. a norm, an
            activation, a blur layer or a decoder layer).
    """
    _check_choice(downsample, DOWNSAMPLE_MODES, "downsample")
    named = _CUT_NAMED_INDICES[downsample]
    if index in named:
        return named[index]
    first_block = _CUT_FIRST_BLOCK_INDEX[downsample]
    valid = _valid_cut_indices(downsample)
    if index >= first_block:
        block = index - first_block + 1
        if num_blocks is not None and block > num_blocks:
            raise ValueError(
                f"CUT layer {index} is in the decoder of a {num_blocks}-block generator "
                f"(downsample={downsample!r}); only encoder layers have taps. "
                f"Valid indices: {valid}, up to {first_block + num_blocks - 1}."
            )
        return f"res{block}"
    what = _CUT_UNNAMED_INDICES[downsample].get(index, "not a layer of the generator")
    raise ValueError(
        f"CUT layer {index} ({what}, downsample={downsample!r}) has no named tap. Valid indices: {valid}."
    )


def taps_from_cut_layers(
    layers: str | Sequence[int], downsample: str = "antialias", num_blocks: int | None = None
) -> tuple[str, ...]:
    """Converts CUT's `--nce_layers` value to semst tap names, keeping the order.

    Args:
        layers: Comma-separated indices such as "0,4,8,12,16", or a sequence of ints.
        downsample: Downsampling mode of the CUT generator, "antialias" or "strided".
        num_blocks: Number of residual blocks, see `cut_layer_to_tap`.

    Returns:
        One tap name per index, e.g. ("input", "down1", "down2", "res1", "res5") for "0,4,8,12,16" with
        anti-aliasing.

    Raises:
        ValueError: If the string cannot be parsed, is empty, or an index has no tap.
    """
    if isinstance(layers, str):
        parts = [part.strip() for part in layers.split(",")]
        if not layers.strip() or any(not part.lstrip("-").isdigit() for part in parts):
            raise ValueError(
                f"Expected comma-separated integer layer indices such as '0,4,8,12,16', got {layers!r}."
            )
        indices = [int(part) for part in parts]
    else:
        indices = [int(index) for index in layers]
        if not indices:
            raise ValueError("Expected at least one CUT layer index, got an empty sequence.")
    return tuple(cut_layer_to_tap(index, downsample=downsample, num_blocks=num_blocks) for index in indices)


class StemBlock(nn.Module):
    """ReflectionPad2d(3) -> Conv7x7 (in -> C) -> norm -> ReLU.

    Args:
        in_channels: Number of image channels.
        out_channels: Number of output channels C.
        norm: Normalisation, one of `NORMS`.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(3)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, padding=0, bias=True)
        self.norm = norm_layer(norm, out_channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Runs the stem.

        Args:
            x: Image of shape (B, in, H, W).

        Returns:
            The padded input (B, in, H + 6, W + 6) (tap "input"), the convolution output before the norm
            (B, C, H, W) (tap "stem") and the block output (B, C, H, W).
        """
        padded = self.pad(x)  # (B, in, H + 6, W + 6)
        conv = self.conv(padded)  # (B, C, H, W)
        return padded, conv, self.act(self.norm(conv))


class DownsampleBlock(nn.Module):
    """Halves the resolution and doubles the channels.

    "antialias": Conv3x3 stride 1 -> norm -> ReLU -> BlurDownsample (attribute `resample`).
    "strided": Conv3x3 stride 2 -> norm -> ReLU (`resample` is an identity).

    Args:
        in_channels: Number of input channels.
        out_channels: Number of output channels.
        norm: Normalisation, one of `NORMS`.
        mode: One of `DOWNSAMPLE_MODES`.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, mode: str) -> None:
        super().__init__()
        _check_choice(mode, DOWNSAMPLE_MODES, "downsample")
        stride = 1 if mode == "antialias" else 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=True)
        self.norm = norm_layer(norm, out_channels)
        self.act = nn.ReLU()
        self.resample = BlurDownsample(out_channels) if mode == "antialias" else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs the block.

        Args:
            x: Feature map of shape (B, in, H, W).

        Returns:
            The convolution output before the norm, (B, out, H, W) for "antialias" and
            (B, out, ceil(H/2), ceil(W/2)) for "strided" (the feature tap), and the block output
            (B, out, ceil(H/2), ceil(W/2)).
        """
        conv = self.conv(x)
        return conv, self.resample(self.act(self.norm(conv)))


class UpsampleBlock(nn.Module):
    """Doubles the resolution and halves the channels.

    "antialias": BlurUpsample (attribute `resample`) -> Conv3x3 stride 1 -> norm -> ReLU.
    "transposed": ConvTranspose2d(k3, s2, p1, output_padding 1) -> norm -> ReLU (`resample` is an identity).

    Args:
        in_channels: Number of input channels.
        out_channels: Number of output channels.
        norm: Normalisation, one of `NORMS`.
        mode: One of `UPSAMPLE_MODES`.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, mode: str) -> None:
        super().__init__()
        _check_choice(mode, UPSAMPLE_MODES, "upsample")
        self.conv: nn.Module
        if mode == "antialias":
            self.resample = BlurUpsample(in_channels)
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=True)
        else:
            self.resample = nn.Identity()
            self.conv = nn.ConvTranspose2d(
                in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
            )
        self.norm = norm_layer(norm, out_channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block.

        Args:
            x: Feature map of shape (B, in, H, W).

        Returns:
            Tensor of shape (B, out, 2H, 2W).
        """
        return self.act(self.norm(self.conv(self.resample(x))))


class OutputHead(nn.Module):
    """ReflectionPad2d(3) -> Conv7x7 (C -> out) -> tanh.

    Args:
        in_channels: Number of input channels C.
        out_channels: Number of image channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(3)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, padding=0, bias=True)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps features (B, C, H, W) to an image (B, out, H, W) in [-1, 1]."""
        return self.act(self.conv(self.pad(x)))


class ResnetGenerator(nn.Module):
    """CUT's ResNet encoder-decoder generator with named encoder taps.

    Module structure (attribute names; C = `base_channels`):

    - `stem`: `StemBlock` with `pad` (ReflectionPad2d(3)), `conv` (7x7, in -> C), `norm`, `act`.
    - `down1`, `down2`: `DownsampleBlock`s with `conv` (3x3, C -> 2C and 2C -> 4C), `norm`, `act`, `resample`
      (BlurDownsample for "antialias", identity for "strided").
    - `blocks`: `nn.ModuleList` of `num_blocks` `ResidualBlock`s at 4C (each with `conv1`, `norm1`, `conv2`,
      `norm2`).
    - `up1`, `up2`: `UpsampleBlock`s with `resample` (BlurUpsample for "antialias", identity for
      "transposed"), `conv` (Conv3x3 or ConvTranspose2d, 4C -> 2C and 2C -> C), `norm`, `act`.
    - `head`: `OutputHead` with `pad` (ReflectionPad2d(3)), `conv` (7x7, C -> out), `act` (tanh).

    The order of computation equals CUT's `nn.Sequential`, so CUT/CycleGAN checkpoints map onto these modules
    one to one. All convolutions have a bias (see `ResidualBlock`).

    Args:
        in_channels: Number of input image channels.
        out_channels: Number of output image channels.
        base_channels: Channels C after the stem (CUT's `ngf`).
        num_blocks: Number of residual blocks (9 for CUT's `resnet_9blocks`).
        downsample: One of `DOWNSAMPLE_MODES`: "antialias" (conv + blur, CUT's default) or "strided".
        upsample: One of `UPSAMPLE_MODES`: "antialias" (blur + conv, CUT's default) or "transposed".
        norm: Normalisation, one of `NORMS`.
        init: Weight initialisation, see `init_weights`.
        init_gain: Gain of the weight initialisation.

    Attributes:
        size_multiple: Input heights and widths must be multiples of this for the output to have the input's
            size (other sizes are accepted; the output is then 4 * ceil(H / 4) by 4 * ceil(W / 4)).
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        downsample: str = "antialias",
        upsample: str = "antialias",
        norm: str = "instance",
        init: str = "xavier",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        _check_choice(downsample, DOWNSAMPLE_MODES, "downsample")
        _check_choice(upsample, UPSAMPLE_MODES, "upsample")
        _check_choice(norm, NORMS, "norm")
        for argument, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("base_channels", base_channels),
            ("num_blocks", num_blocks),
        ):
            if value < 1:
                raise ValueError(f"ResnetGenerator expects {argument} >= 1, got {value}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.num_blocks = num_blocks
        self.downsample = downsample
        self.upsample = upsample

        c = base_channels
        self.stem = StemBlock(in_channels, c, norm=norm)
        self.down1 = DownsampleBlock(c, 2 * c, norm=norm, mode=downsample)
        self.down2 = DownsampleBlock(2 * c, 4 * c, norm=norm, mode=downsample)
        self.blocks = nn.ModuleList([ResidualBlock(4 * c, norm=norm) for _ in range(num_blocks)])
        self.up1 = UpsampleBlock(4 * c, 2 * c, norm=norm, mode=upsample)
        self.up2 = UpsampleBlock(2 * c, c, norm=norm, mode=upsample)
        self.head = OutputHead(c, out_channels)

        self._tap_channels = {"input": in_channels, "stem": c, "down1": 2 * c, "down2": 4 * c}
        self._tap_channels.update({f"res{k}": 4 * c for k in range(1, num_blocks + 1)})
        init_weights(self, kind=init, gain=init_gain)

    @property
    def tap_names(self) -> tuple[str, ...]:
        """All encoder taps in network order: ("input", "stem", "down1", "down2", "res1", ..., "resN")."""
        return tuple(self._tap_channels)

    def tap_channels(self, taps: Sequence[str]) -> dict[str, int]:
        """Returns the channel count of each requested tap, in the requested order.

        Raises:
            ValueError: If a tap name is unknown.
        """
        self._check_taps(taps)
        return {tap: self._tap_channels[tap] for tap in taps}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translates a batch of images.

        Args:
            x: Images of shape (B, in_channels, H, W), H and W multiples of `size_multiple`.

        Returns:
            Translated images of shape (B, out_channels, H, W) in [-1, 1].
        """
        output, _ = self._run(x, taps=(), decode=True)
        return output

    def forward_with_taps(
        self, x: torch.Tensor, taps: Sequence[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Translates `x` and returns the requested encoder features from the same pass.

        Args:
            x: Images of shape (B, in_channels, H, W).
            taps: Tap names (see `tap_names`); may be empty.

        Returns:
            The translation (B, out_channels, H, W) and a dict tap name -> feature map, in the order of
            `taps`.
        """
        output, features = self._run(x, taps=taps, decode=True)
        return output, features

    def encode(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        """Returns the requested encoder features, running the encoder only as far as the deepest tap.

        Args:
            x: Images of shape (B, in_channels, H, W).
            taps: At least one tap name (see `tap_names`).

        Returns:
            Dict tap name -> feature map, in the order of `taps`.

        Raises:
            ValueError: If `taps` is empty or contains an unknown name, or `x` has the wrong shape.
        """
        if len(taps) == 0:
            raise ValueError(f"encode expects at least one tap; valid taps are {self.tap_names}.")
        _, features = self._run(x, taps=taps, decode=False)
        return features

    def _check_taps(self, taps: Sequence[str]) -> None:
        if isinstance(taps, str):
            raise ValueError(
                f"Expected a sequence of tap names such as ('input', 'down1'), got the string {taps!r}."
            )
        unknown = [tap for tap in taps if tap not in self._tap_channels]
        if unknown:
            raise ValueError(f"Unknown generator taps {unknown}; valid taps are {self.tap_names}.")

    def _run(
        self, x: torch.Tensor, taps: Sequence[str], decode: bool
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Runs the encoder collecting `taps`, then the decoder if `decode` (else stops at the last tap)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ResnetGenerator expects images of shape (B, {self.in_channels}, H, W), "
                f"got shape {tuple(x.shape)}."
            )
        self._check_taps(taps)
        wanted = set(taps)
        found: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> bool:
            """Stores a tap if requested; True when the encoder may stop here."""
            if name in wanted:
                found[name] = value
            return not decode and len(found) == len(wanted)

        def ordered() -> dict[str, torch.Tensor]:
            return {tap: found[tap] for tap in taps}

        padded, stem_conv, h = self.stem(x)  # (B, in, H+6, W+6), (B, C, H, W), (B, C, H, W)
        keep("input", padded)
        if keep("stem", stem_conv):
            return None, ordered()
        del padded, stem_conv  # kept only if tapped: full-resolution maps would otherwise live to the end
        down1_conv, h = self.down1(h)  # (B, 2C, H or H/2, W or W/2), (B, 2C, H/2, W/2)
        if keep("down1", down1_conv):
            return None, ordered()
        del down1_conv
        down2_conv, h = self.down2(h)  # (B, 4C, H/2 or H/4, W/2 or W/4), (B, 4C, H/4, W/4)
        if keep("down2", down2_conv):
            return None, ordered()
        del down2_conv
        for k, block in enumerate(self.blocks, start=1):
            h = block(h)  # (B, 4C, H/4, W/4)
            if keep(f"res{k}", h):
                return None, ordered()
        h = self.up1(h)  # (B, 2C, H/2, W/2)
        h = self.up2(h)  # (B, C, H, W)
        return self.head(h), ordered()  # (B, out, H, W)
