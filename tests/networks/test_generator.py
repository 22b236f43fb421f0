"""Tests for semst.networks.generator: shapes, named taps versus CUT's Sequential indices, early stopping."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from semst.networks import (
    DEFAULT_TAPS,
    DOWNSAMPLE_MODES,
    GENERATORS,
    NORMS,
    UPSAMPLE_MODES,
    ResnetGenerator,
    UnknownNetworkError,
    build_generator,
    cut_layer_to_tap,
    taps_from_cut_layers,
)

# Tiny constructor arguments for every registered generator; a new registry entry must add its configs here.
GENERATOR_CONFIGS: dict[str, list[dict]] = {
    "resnet": [
        {"base_channels": 4, "num_blocks": 2, "downsample": down, "upsample": up, "norm": norm}
        for down, up, norm in itertools.product(DOWNSAMPLE_MODES, UPSAMPLE_MODES, NORMS)
    ],
}
CASES = [(name, config) for name, configs in GENERATOR_CONFIGS.items() for config in configs]
CASE_IDS = [f"{name}-" + "-".join(str(v) for v in config.values()) for name, config in CASES]


def test_every_registered_generator_has_test_configs() -> None:
    assert set(GENERATOR_CONFIGS) == set(GENERATORS)


@pytest.mark.parametrize(("name", "config"), CASES, ids=CASE_IDS)
def test_registered_generator_shapes_range_and_backward(name: str, config: dict) -> None:
    torch.manual_seed(0)
    generator = build_generator(name, **config)
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    taps = generator.tap_names
    output, features = generator.forward_with_taps(x, taps)
    assert output.shape == (2, 3, 16, 12)
    assert output.abs().max() <= 1.0
    assert tuple(features) == taps
    channels = generator.tap_channels(taps)
    for tap, feature in features.items():
        assert feature.shape[:2] == (2, channels[tap]), tap
    loss = output.square().mean() + sum(feature.mean() for feature in features.values())
    loss.backward()
    for parameter_name, parameter in generator.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize(("name", "config"), CASES[:4], ids=CASE_IDS[:4])
def test_registered_generator_encode_matches_forward_with_taps(name: str, config: dict) -> None:
    generator = build_generator(name, **config)
    x = torch.randn(1, 3, 16, 16)
    taps = ("down2", "input", "res1")
    _, features = generator.forward_with_taps(x, taps)
    encoded = generator.encode(x, taps)
    assert tuple(encoded) == taps  # the requested order, not the network order
    for tap in taps:
        torch.testing.assert_close(encoded[tap], features[tap])


def test_build_generator_unknown_name_lists_choices() -> None:
    with pytest.raises(KeyError, match="resnet"):
        build_generator("unet")
    with pytest.raises(ValueError, match="resnet"):
        build_generator("unet")
    assert issubclass(UnknownNetworkError, KeyError)


# --- CUT tap table ----------------------------------------------------------------------------------------


def cut_sequential(generator: ResnetGenerator) -> nn.Sequential:
    """CUT's `ResnetGenerator.model` layer order, rebuilt from the generator's own submodules."""
    layers: list[nn.Module] = [
        generator.stem.pad,
        generator.stem.conv,
        generator.stem.norm,
        generator.stem.act,
    ]
    for down in (generator.down1, generator.down2):
        layers += [down.conv, down.norm, down.act]
        if generator.downsample == "antialias":
            layers.append(down.resample)
    layers += list(generator.blocks)
    for up in (generator.up1, generator.up2):
        if generator.upsample == "antialias":
            layers.append(up.resample)
        layers += [up.conv, up.norm, up.act]
    layers += [generator.head.pad, generator.head.conv, generator.head.act]
    return nn.Sequential(*layers)


def sequential_outputs(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    outputs = []
    for layer in model:
        x = layer(x)
        outputs.append(x)
    return outputs


@pytest.mark.parametrize(
    ("downsample", "upsample", "length", "nce_layers", "expected_taps"),
    [
        ("antialias", "antialias", 32, "0,4,8,12,16", ("input", "down1", "down2", "res1", "res5")),
        ("strided", "transposed", 28, "0,4,7,12,16", ("input", "down1", "down2", "res3", "res7")),
    ],
)
def test_taps_equal_cut_sequential_outputs(
    downsample: str, upsample: str, length: int, nce_layers: str, expected_taps: tuple[str, ...]
) -> None:
    torch.manual_seed(0)
    generator = ResnetGenerator(base_channels=8, num_blocks=9, downsample=downsample, upsample=upsample)
    model = cut_sequential(generator)
    assert len(model) == length  # CUT's resnet_9blocks: 32 layers with anti-aliasing, 28 without
    x = torch.randn(2, 3, 32, 32)
    outputs = sequential_outputs(model, x)

    taps = taps_from_cut_layers(nce_layers, downsample=downsample)
    assert taps == expected_taps
    translated, features = generator.forward_with_taps(x, taps)
    torch.testing.assert_close(translated, outputs[-1])
    for index, tap in zip((int(i) for i in nce_layers.split(",")), taps, strict=True):
        torch.testing.assert_close(features[tap], outputs[index], msg=f"CUT layer {index} vs tap {tap}")

    # Every encoder index either has a tap whose value equals CUT's output, or is rejected.
    all_taps = generator.encode(x, generator.tap_names)
    named = []
    for index in range(len(model)):
        try:
            tap = cut_layer_to_tap(index, downsample=downsample, num_blocks=9)
        except ValueError:
            continue
        named.append(index)
        torch.testing.assert_close(all_taps[tap], outputs[index], msg=f"CUT layer {index} vs tap {tap}")
    first_block = 12 if downsample == "antialias" else 10
    down2 = 8 if downsample == "antialias" else 7
    assert named == [0, 1, 4, down2, *range(first_block, first_block + 9)]


def test_default_taps_shapes_match_cut_table() -> None:
    c, height, width = 8, 32, 40
    generator = ResnetGenerator(base_channels=c, num_blocks=9)
    assert DEFAULT_TAPS == ("input", "down1", "down2", "res1", "res5")
    features = generator.encode(torch.randn(1, 3, height, width), DEFAULT_TAPS)
    assert features["input"].shape == (1, 3, height + 6, width + 6)
    assert features["down1"].shape == (1, 2 * c, height, width)
    assert features["down2"].shape == (1, 4 * c, height // 2, width // 2)
    assert features["res1"].shape == (1, 4 * c, height // 4, width // 4)
    assert features["res5"].shape == (1, 4 * c, height // 4, width // 4)
    assert generator.tap_channels(DEFAULT_TAPS) == {
        "input": 3,
        "down1": 16,
        "down2": 32,
        "res1": 32,
        "res5": 32,
    }


def test_strided_tap_shapes() -> None:
    c = 4
    generator = ResnetGenerator(base_channels=c, num_blocks=2, downsample="strided")
    features = generator.encode(torch.randn(1, 3, 16, 16), ("stem", "down1", "down2", "res2"))
    assert features["stem"].shape == (1, c, 16, 16)
    assert features["down1"].shape == (1, 2 * c, 8, 8)
    assert features["down2"].shape == (1, 4 * c, 4, 4)
    assert features["res2"].shape == (1, 4 * c, 4, 4)


def test_cut_layer_to_tap_table() -> None:
    assert [cut_layer_to_tap(i) for i in (0, 1, 4, 8, 12, 16, 20)] == [
        "input",
        "stem",
        "down1",
        "down2",
        "res1",
        "res5",
        "res9",
    ]
    strided = [cut_layer_to_tap(i, downsample="strided") for i in (0, 1, 4, 7, 10, 12, 16, 18)]
    assert strided == ["input", "stem", "down1", "down2", "res1", "res3", "res7", "res9"]
    assert taps_from_cut_layers([0, 4, 8, 12, 16]) == DEFAULT_TAPS
    assert taps_from_cut_layers(" 0, 4 ,8,12 ,16 ") == DEFAULT_TAPS


@pytest.mark.parametrize(
    ("index", "downsample", "what"),
    [
        (2, "antialias", "stem norm"),
        (3, "antialias", "stem ReLU"),
        (7, "antialias", "blur"),
        (11, "antialias", "blur"),
        (8, "strided", "down2 norm"),
        (9, "strided", "down2 ReLU"),
        (-1, "antialias", "not a layer"),
    ],
)
def test_cut_layer_to_tap_rejects_unnamed_layers(index: int, downsample: str, what: str) -> None:
    with pytest.raises(ValueError, match=what) as error:
        cut_layer_to_tap(index, downsample=downsample)
    assert "Valid indices: 0 (input), 1 (stem), 4 (down1)" in str(error.value)


def test_cut_layer_to_tap_rejects_decoder_layers_and_bad_input() -> None:
    assert cut_layer_to_tap(20, num_blocks=9) == "res9"
    with pytest.raises(ValueError, match="decoder of a 9-block generator"):
        cut_layer_to_tap(21, num_blocks=9)
    with pytest.raises(ValueError, match="strided"):
        cut_layer_to_tap(0, downsample="blur")
    for bad in ("", "0,,4", "0,four", "0;4"):
        with pytest.raises(ValueError, match="comma-separated"):
            taps_from_cut_layers(bad)
    with pytest.raises(ValueError, match="has no named tap"):
        taps_from_cut_layers("0,5")
    with pytest.raises(ValueError, match="at least one"):
        taps_from_cut_layers([])


# --- forward / encode contracts ---------------------------------------------------------------------------


def test_forward_with_taps_output_equals_forward() -> None:
    torch.manual_seed(0)
    generator = ResnetGenerator(base_channels=4, num_blocks=3)
    x = torch.randn(2, 3, 16, 16)
    output, features = generator.forward_with_taps(x, DEFAULT_TAPS[:4])
    torch.testing.assert_close(output, generator(x))
    assert tuple(features) == DEFAULT_TAPS[:4]
    output_no_taps, no_features = generator.forward_with_taps(x, ())
    torch.testing.assert_close(output_no_taps, output)
    assert no_features == {}


def _record_calls(generator: ResnetGenerator) -> list[str]:
    calls: list[str] = []
    for name in ("down1", "down2", "up1", "up2", "head"):
        getattr(generator, name).register_forward_hook(lambda *_, name=name: calls.append(name))
    for k, block in enumerate(generator.blocks, start=1):
        block.register_forward_hook(lambda *_, k=k: calls.append(f"res{k}"))
    return calls


def test_encode_stops_after_the_deepest_requested_tap() -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=6)
    calls = _record_calls(generator)
    x = torch.randn(1, 3, 16, 16)

    generator.encode(x, ("res2", "input"))
    assert calls == ["down1", "down2", "res1", "res2"]

    calls.clear()
    generator.encode(x, ("input",))
    assert calls == []

    calls.clear()
    generator.encode(x, ("down1",))
    assert calls == ["down1"]

    calls.clear()
    generator.forward_with_taps(x, ("input",))
    assert calls == ["down1", "down2", *(f"res{k}" for k in range(1, 7)), "up1", "up2", "head"]


@pytest.mark.parametrize("size", [(16, 16), (24, 40), (36, 20)])
def test_output_size_equals_input_size_for_multiples_of_four(size: tuple[int, int]) -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=1)
    assert generator.size_multiple == 4
    assert generator(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_other_sizes_round_up_to_a_multiple_of_four() -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=1)
    assert generator(torch.randn(1, 3, 18, 21)).shape == (1, 3, 20, 24)


def test_output_is_in_tanh_range_even_for_large_weights() -> None:
    torch.manual_seed(0)
    generator = ResnetGenerator(base_channels=4, num_blocks=1, init="normal", init_gain=1.0)
    output = generator(torch.randn(1, 3, 16, 16) * 10)
    assert output.abs().max() <= 1.0
    assert output.abs().max() > 0.9  # the head really saturates: this is the tanh, not a clamp of tiny values


def test_other_channel_counts() -> None:
    generator = ResnetGenerator(in_channels=1, out_channels=2, base_channels=4, num_blocks=1)
    output, features = generator.forward_with_taps(torch.randn(1, 1, 16, 16), ("input",))
    assert output.shape == (1, 2, 16, 16)
    assert features["input"].shape == (1, 1, 22, 22)
    assert generator.tap_channels(("input",)) == {"input": 1}


def test_wrong_input_shape_is_rejected_with_expected_shape() -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=1)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 1, 16, 16\)"):
        generator(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        generator.encode(torch.randn(3, 16, 16), ("input",))


def test_unknown_taps_list_valid_names() -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=2)
    assert generator.tap_names == ("input", "stem", "down1", "down2", "res1", "res2")
    with pytest.raises(ValueError, match=r"res5.*'res2'"):
        generator.tap_channels(DEFAULT_TAPS)
    with pytest.raises(ValueError, match="res3"):
        generator.encode(torch.randn(1, 3, 16, 16), ("res3",))
    with pytest.raises(ValueError, match="at least one tap"):
        generator.encode(torch.randn(1, 3, 16, 16), ())
    with pytest.raises(ValueError, match="string"):
        generator.encode(torch.randn(1, 3, 16, 16), "input")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"downsample": "blur"}, "strided"),
        ({"upsample": "bilinear"}, "transposed"),
        ({"norm": "batch"}, "instance_affine"),
        ({"num_blocks": 0}, "num_blocks >= 1"),
        ({"init": "uniform"}, "orthogonal"),
    ],
)
def test_invalid_constructor_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResnetGenerator(base_channels=4, **kwargs)


def test_module_structure_and_initialisation() -> None:
    torch.manual_seed(5)
    first = ResnetGenerator(base_channels=4, num_blocks=2)
    torch.manual_seed(5)
    second = ResnetGenerator(base_channels=4, num_blocks=2)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=key)
    for name in ("stem", "down1", "down2", "blocks", "up1", "up2", "head"):
        assert hasattr(first, name)
    assert len(first.blocks) == 2
    assert first.stem.conv.weight.shape == (4, 3, 7, 7)
    assert first.down2.conv.weight.shape == (16, 8, 3, 3)
    assert first.head.conv.weight.shape == (3, 4, 7, 7)
    assert torch.count_nonzero(first.stem.conv.bias) == 0
    expected_std = 0.02 * (2.0 / (3 * 49 + 4 * 49)) ** 0.5  # xavier_normal_ with gain 0.02
    assert first.stem.conv.weight.std().item() == pytest.approx(expected_std, rel=0.2)
    # blur filters are buffers, not parameters
    assert "down1.resample.kernel" in first.state_dict()
    assert not any("kernel" in name for name, _ in first.named_parameters())
