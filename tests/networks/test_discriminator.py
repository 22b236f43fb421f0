"""Tests for semst.networks.discriminator (PatchGAN)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from semst.networks import DISCRIMINATORS, NORMS, BlurDownsample, PatchDiscriminator, build_discriminator

# Tiny constructor arguments for each registered discriminator; a new registry entry must add configs here.
DISCRIMINATOR_CONFIGS: dict[str, list[dict]] = {
    "patchgan": [
        {"base_channels": 4, "num_layers": 3, "norm": norm, "antialias": antialias}
        for norm, antialias in itertools.product(NORMS, (True, False))
    ],
}
CASES = [(name, config) for name, configs in DISCRIMINATOR_CONFIGS.items() for config in configs]
CASE_IDS = [f"{name}-" + "-".join(str(v) for v in config.values()) for name, config in CASES]


def expected_logit_size(size: int, num_layers: int) -> int:
    """Spatial size of CUT's NLayerDiscriminator output (the same with and without anti-aliasing)."""
    for _ in range(num_layers):
        size = -(-(size - 1) // 2)  # conv k4 p1 (size - 1), then 2x downsampling (ceil)
    return size - 2  # two stride-1 k4 p1 convolutions


def test_every_registered_discriminator_has_test_configs() -> None:
    assert set(DISCRIMINATOR_CONFIGS) == set(DISCRIMINATORS)


@pytest.mark.parametrize(("name", "config"), CASES, ids=CASE_IDS)
def test_registered_discriminator_shape_and_backward(name: str, config: dict) -> None:
    torch.manual_seed(0)
    discriminator = build_discriminator(name, **config)
    x = torch.randn(2, 3, 48, 40, requires_grad=True)
    logits = discriminator(x)
    assert logits.shape == (2, 1, expected_logit_size(48, 3), expected_logit_size(40, 3)) == (2, 1, 4, 3)
    logits.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for parameter_name, parameter in discriminator.named_parameters():
        assert parameter.grad is not None, parameter_name


@pytest.mark.parametrize("antialias", [True, False])
def test_256_input_gives_30x30_logits(antialias: bool) -> None:
    discriminator = PatchDiscriminator(base_channels=2, antialias=antialias)
    assert discriminator(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize(
    ("num_layers", "antialias", "field"),
    [
        (3, False, 70),
        (3, True, 84),
        (1, False, 16),
        (1, True, 18),
        (2, False, 34),
        (2, True, 40),
        (4, True, 172),
    ],
)
def test_receptive_field(num_layers: int, antialias: bool, field: int) -> None:
    # Without normalisation (instance norm couples all positions) the gradient of one logit is non-zero
    # exactly on its receptive field: the 70x70 PatchGAN (16 and 34 px with one and two layers), widened by
    # the blur filters in the anti-aliased version (docs/experiments.md, experiment 51, relies on these).
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(
        base_channels=2, num_layers=num_layers, norm="none", antialias=antialias, init_gain=1.0
    ).double()
    x = torch.randn(1, 3, 256, 256, dtype=torch.float64, requires_grad=True)
    logits = discriminator(x)
    logits[0, 0, logits.shape[-2] // 2, logits.shape[-1] // 2].backward()
    rows, cols = (x.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == field
    assert cols.max() - cols.min() + 1 == field


@pytest.mark.parametrize("num_layers", [1, 2, 4, 5])
def test_num_layers_widths_and_sizes(num_layers: int) -> None:
    c = 2
    discriminator = PatchDiscriminator(base_channels=c, num_layers=num_layers)
    assert len(discriminator.blocks) == num_layers + 1
    widths = [block.conv.out_channels for block in discriminator.blocks]
    assert widths == [c * min(2**k, 8) for k in range(num_layers + 1)]
    assert discriminator.classifier.in_channels == widths[-1]
    assert discriminator(torch.randn(1, 3, 96, 96)).shape[-1] == expected_logit_size(96, num_layers)


def test_structure_matches_cut() -> None:
    antialiased = PatchDiscriminator(base_channels=4, antialias=True)
    strided = PatchDiscriminator(base_channels=4, antialias=False)
    for index, block in enumerate(antialiased.blocks):
        assert (
            block.conv.kernel_size == (4, 4) and block.conv.padding == (1, 1) and block.conv.stride == (1, 1)
        )
        assert isinstance(block.resample, BlurDownsample) == (index < 3)
        assert isinstance(block.act, nn.LeakyReLU) and block.act.negative_slope == 0.2
    assert [block.conv.stride for block in strided.blocks] == [(2, 2), (2, 2), (2, 2), (1, 1)]
    assert not any(isinstance(module, BlurDownsample) for module in strided.modules())
    # the first block has no norm, the others instance norm
    assert isinstance(antialiased.blocks[0].norm, nn.Identity)
    assert all(isinstance(block.norm, nn.InstanceNorm2d) for block in antialiased.blocks[1:])
    # raw logits: no sigmoid anywhere
    assert not any(isinstance(module, nn.Sigmoid) for module in antialiased.modules())


def test_initialisation_is_xavier_with_zero_bias_and_deterministic() -> None:
    torch.manual_seed(1)
    first = PatchDiscriminator(base_channels=4)
    torch.manual_seed(1)
    second = PatchDiscriminator(base_channels=4)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=key)
    assert all(torch.count_nonzero(block.conv.bias) == 0 for block in first.blocks)
    weight = first.blocks[2].conv.weight  # (16, 8, 4, 4)
    expected_std = 0.02 * (2.0 / (8 * 16 + 16 * 16)) ** 0.5
    assert weight.std().item() == pytest.approx(expected_std, rel=0.15)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        PatchDiscriminator(base_channels=2)(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="instance_affine"):
        PatchDiscriminator(norm="batch")
    with pytest.raises(ValueError, match="num_layers >= 1"):
        PatchDiscriminator(num_layers=0)
    with pytest.raises(KeyError, match="patchgan"):
        build_discriminator("stylegan2")
