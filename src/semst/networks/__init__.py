"""Networks of SemST: the ResNet generator G, the PatchGAN discriminator D and the projection head F.

Contents:

- `layers`: shared blocks (`BlurDownsample`, `BlurUpsample`, `ResidualBlock`, `norm_layer`, `init_weights`).
- `generator`: `ResnetGenerator` with named encoder taps (`DEFAULT_TAPS`, `taps_from_cut_layers` for CUT's
  `--nce_layers`).
- `discriminator`: `PatchDiscriminator` (CUT's 70x70 PatchGAN).
- `projection`: `sample_locations` and `PatchProjector` (CUT's `PatchSampleF` with `mlp_sample`).

Generators and discriminators are looked up by name in the explicit registries `GENERATORS` and
`DISCRIMINATORS` through `build_generator(name, **kwargs)` and `build_discriminator(name, **kwargs)`.

How to add a network, e.g. a U-Net generator called "unet":

1. Write it in its own file, `semst/networks/unet.py`, built from `layers` where possible. Its constructor
   takes explicit keyword arguments with defaults (no option objects) and creates every parameter in
   `__init__`. A generator must offer the same interface as `ResnetGenerator`: `forward(x)`,
   `forward_with_taps(x, taps)`, `encode(x, taps)`, `tap_names`, `tap_channels(taps)` and `size_multiple`. A
   discriminator maps (B, C, H, W) images to logits.
2. Register it here: `GENERATORS["unet"] = UnetGenerator` (or in `DISCRIMINATORS`).
3. The registry-parametrised tests in `tests/networks/` then cover it automatically (shapes, backward, taps);
   add tests for anything specific to it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from semst.networks.discriminator import DiscriminatorBlock, PatchDiscriminator
from semst.networks.generator import (
    DEFAULT_TAPS,
    DOWNSAMPLE_MODES,
    UPSAMPLE_MODES,
    DownsampleBlock,
    OutputHead,
    ResnetGenerator,
    StemBlock,
    UpsampleBlock,
    cut_layer_to_tap,
    taps_from_cut_layers,
)
from semst.networks.layers import (
    INIT_KINDS,
    NORMS,
    BlurDownsample,
    BlurUpsample,
    ResidualBlock,
    init_weights,
    norm_layer,
)
from semst.networks.projection import PatchProjector, sample_locations

GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"patchgan": PatchDiscriminator}


class UnknownNetworkError(KeyError, ValueError):
    """Raised for a network name that is not registered; catchable as KeyError or as ValueError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _lookup(registry: dict[str, type[nn.Module]], name: str, kind: str) -> type[nn.Module]:
    if name not in registry:
        raise UnknownNetworkError(f"Unknown {kind} {name!r}; expected one of {tuple(registry)}.")
    return registry[name]


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Builds the generator registered as `name` in `GENERATORS` with keyword arguments `kwargs`.

    Raises:
        UnknownNetworkError: (a KeyError and a ValueError) if `name` is not registered.
    """
    return _lookup(GENERATORS, name, "generator")(**kwargs)


def build_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Builds the discriminator registered as `name` in `DISCRIMINATORS` with keyword arguments `kwargs`.

    Raises:
        UnknownNetworkError: (a KeyError and a ValueError) if `name` is not registered.
    """
    return _lookup(DISCRIMINATORS, name, "discriminator")(**kwargs)


__all__ = [
    "DEFAULT_TAPS",
    "DISCRIMINATORS",
    "DOWNSAMPLE_MODES",
    "GENERATORS",
    "INIT_KINDS",
    "NORMS",
    "UPSAMPLE_MODES",
    "BlurDownsample",
    "BlurUpsample",
    "DiscriminatorBlock",
    "DownsampleBlock",
    "OutputHead",
    "PatchDiscriminator",
    "PatchProjector",
    "ResidualBlock",
    "ResnetGenerator",
    "StemBlock",
    "UnknownNetworkError",
    "UpsampleBlock",
    "build_discriminator",
    "build_generator",
    "cut_layer_to_tap",
    "init_weights",
    "norm_layer",
    "sample_locations",
    "taps_from_cut_layers",
]
