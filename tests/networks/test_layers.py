"""Tests for semst.networks.layers: blur resampling, residual block, norms and initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semst.networks.layers import (
    INIT_KINDS,
    NORMS,
    BlurDownsample,
    BlurUpsample,
    ResidualBlock,
    init_weights,
    norm_layer,
)


def test_norm_layer_kinds() -> None:
    plain = norm_layer("instance", 5)
    assert isinstance(plain, nn.InstanceNorm2d)
    assert not plain.affine and not plain.track_running_stats
    affine = norm_layer("instance_affine", 5)
    assert isinstance(affine, nn.InstanceNorm2d)
    assert affine.affine and not affine.track_running_stats
    assert sum(p.numel() for p in affine.parameters()) == 10
    assert isinstance(norm_layer("none", 5), nn.Identity)
    assert set(NORMS) == {"instance", "instance_affine", "none"}


@pytest.mark.parametrize("name", ["instance", "instance_affine"])
@pytest.mark.parametrize("shape", [(2, 5, 9, 13), (1, 3, 1, 2), (3, 4, 32, 32)])
def test_instance_norm_equals_an_independent_computation_with_gradients(name: str, shape: tuple) -> None:
    # The CPU path computes a group norm with one group a channel; reference: each (image, channel) plane
    # minus its mean over its biased standard deviation, in float64, then the per-channel affine.
    torch.manual_seed(0)
    norm = norm_layer(name, shape[1])
    if norm.affine:
        with torch.no_grad():
            norm.weight.copy_(torch.randn(shape[1]))
            norm.bias.copy_(torch.randn(shape[1]))
    x = (torch.randn(shape) * 3 + 1).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    mean = x64.mean(dim=(2, 3), keepdim=True)
    var = x64.var(dim=(2, 3), unbiased=False, keepdim=True)
    expected = (x64 - mean) / torch.sqrt(var + norm.eps)
    if norm.affine:
        expected = expected * norm.weight.double()[:, None, None] + norm.bias.double()[:, None, None]
    with torch.no_grad():
        translated = norm(x)  # the group-norm path
    torch.testing.assert_close(translated.double(), expected, rtol=1e-5, atol=1e-5)
    out = norm(x)  # training: nn.InstanceNorm2d's own computation, bit for bit
    torch.testing.assert_close(
        out, F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps), rtol=0, atol=0
    )
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(shape)
    (out * upstream).sum().backward()
    (expected * upstream.double()).sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_instance_norm_uses_group_norm_only_to_translate_on_the_cpu(monkeypatch) -> None:
    calls = []
    group_norm = F.group_norm
    monkeypatch.setattr(
        F, "group_norm", lambda *args, **kwargs: calls.append(1) or group_norm(*args, **kwargs)
    )
    norm = norm_layer("instance", 4)
    x = torch.randn(1, 4, 6, 6)
    with torch.inference_mode():
        norm(x)
    assert calls == [1]
    norm(x)  # gradients recorded: training's numerics stay nn.InstanceNorm2d's
    assert calls == [1]
    with torch.no_grad():
        traced = torch.jit.trace(norm, (x,), check_trace=False)
        assert calls == [1]  # the traced graph records aten::instance_norm, as nn.InstanceNorm2d's
        assert "instance_norm" in str(traced.graph)
        torch.testing.assert_close(traced(x), norm(x))
        # Another channel count: nn.InstanceNorm2d's behaviour (a warning), not a group norm over pairs.
        with pytest.warns(UserWarning, match="does not match num_features"):
            norm(torch.randn(1, 8, 6, 6))
    assert calls == [1, 1]


def test_norm_layer_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="instance_affine"):
        norm_layer("batch", 5)


# --- BlurDownsample ---------------------------------------------------------------------------------------


def test_blur_downsample_filter_is_a_normalised_binomial_buffer() -> None:
    layer = BlurDownsample(3)
    assert list(layer.parameters()) == []
    assert "kernel" in dict(layer.named_buffers())
    assert layer.kernel.shape == (3, 1, 3, 3)
    expected = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    for channel in range(3):
        torch.testing.assert_close(layer.kernel[channel, 0], expected)
        assert layer.kernel[channel].sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9), (5, 6), (2, 3)])
def test_blur_downsample_output_size_is_ceil_half(height: int, width: int) -> None:
    out = BlurDownsample(2)(torch.randn(1, 2, height, width))
    assert out.shape == (1, 2, -(-height // 2), -(-width // 2))


def test_blur_downsample_keeps_constant_images_constant_everywhere() -> None:
    x = torch.full((2, 3, 9, 10), 0.7)
    out = BlurDownsample(3)(x)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


def test_blur_downsample_matches_manual_blur_and_subsample() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 1, 6, 6)
    out = BlurDownsample(1)(x)
    weights = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    # Output (1, 1) is centred on input (2, 2): an interior position, no padding involved.
    expected_interior = (x[0, 0, 1:4, 1:4] * weights).sum()
    torch.testing.assert_close(out[0, 0, 1, 1], expected_interior)
    # Output (0, 0) is centred on input (0, 0): the reflect padding mirrors row/column 1 into row/column -1.
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    torch.testing.assert_close(out[0, 0, 0, 0], (padded[0, 0, 0:3, 0:3] * weights).sum())
    assert padded[0, 0, 0, 0] == x[0, 0, 1, 1]


def test_blur_downsample_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        BlurDownsample(4)(torch.randn(1, 3, 8, 8))


# --- BlurUpsample -----------------------------------------------------------------------------------------


def test_blur_upsample_filter_sums_to_four() -> None:
    layer = BlurUpsample(2)
    assert list(layer.parameters()) == []
    assert layer.kernel.shape == (2, 1, 4, 4)
    row = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(layer.kernel[1, 0], torch.outer(row, row) / 64 * 4)
    assert layer.kernel[0].sum().item() == pytest.approx(4.0)


@pytest.mark.parametrize(("height", "width"), [(4, 4), (5, 7), (1, 2), (8, 3)])
def test_blur_upsample_doubles_size_exactly(height: int, width: int) -> None:
    out = BlurUpsample(3)(torch.randn(2, 3, height, width))
    assert out.shape == (2, 3, 2 * height, 2 * width)


def test_blur_upsample_keeps_constant_images_constant_everywhere() -> None:
    x = torch.full((1, 2, 5, 6), -0.3)
    out = BlurUpsample(2)(x)
    torch.testing.assert_close(out, torch.full_like(out, -0.3))


def test_blur_upsample_equals_cut_formulation() -> None:
    # CUT: conv_transpose2d(replicate_pad(x), filt, stride=2, padding=2) with the first and last rows and
    # columns dropped.
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 7)
    layer = BlurUpsample(3)
    reference = F.conv_transpose2d(
        F.pad(x, (1, 1, 1, 1), mode="replicate"), layer.kernel, stride=2, padding=2, groups=3
    )
    reference = reference[:, :, 1:-1, 1:-1]
    torch.testing.assert_close(layer(x), reference)


def test_blur_upsample_interpolates_a_linear_ramp_in_the_interior() -> None:
    # A linear ramp is reproduced exactly away from the borders by the [1, 3, 3, 1] interpolator (up to a
    # half-pixel phase), which guards against a wrong stride/padding combination.
    ramp = torch.arange(8, dtype=torch.float32).repeat(8, 1)[None, None]  # (1, 1, 8, 8), value = column
    up = BlurUpsample(1)(ramp)  # (1, 1, 16, 16)
    interior = up[0, 0, 4:12, 2:14]
    expected = (torch.arange(16, dtype=torch.float32)[2:14] - 0.5) / 2
    torch.testing.assert_close(interior, expected.expand_as(interior))


# --- ResidualBlock ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_residual_block_shape_and_skip(norm: str) -> None:
    block = ResidualBlock(6, norm=norm)
    x = torch.randn(2, 6, 5, 7)
    assert block(x).shape == x.shape
    for conv in (block.conv1, block.conv2):
        assert conv.bias is not None
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    torch.testing.assert_close(block(x), x)  # zero residual branch -> identity


# --- init_weights -----------------------------------------------------------------------------------------


def _toy_network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.InstanceNorm2d(8, affine=True),
        nn.ConvTranspose2d(8, 4, 3),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


@pytest.mark.parametrize("kind", INIT_KINDS)
def test_init_weights_is_deterministic_and_zeroes_biases(kind: str) -> None:
    torch.manual_seed(3)
    first = init_weights(_toy_network(), kind=kind, gain=0.02)
    torch.manual_seed(3)
    second = init_weights(_toy_network(), kind=kind, gain=0.02)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    for layer in (first[0], first[2], first[4]):
        assert torch.count_nonzero(layer.bias) == 0
    torch.testing.assert_close(first[1].weight, torch.ones(8))  # norms keep PyTorch's defaults


def test_init_weights_normal_uses_gain_as_std() -> None:
    torch.manual_seed(0)
    layer = init_weights(nn.Linear(500, 400), kind="normal", gain=0.02)
    assert layer.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert layer.weight.mean().abs().item() < 1e-3


def test_init_weights_xavier_scale() -> None:
    torch.manual_seed(0)
    layer = init_weights(nn.Linear(300, 200), kind="xavier", gain=0.02)
    expected_std = 0.02 * (2.0 / (300 + 200)) ** 0.5
    assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.03)


def test_init_weights_unknown_kind_lists_choices() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        init_weights(nn.Linear(2, 2), kind="uniform")
