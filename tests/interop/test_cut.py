"""Tests for semst.interop.cut and `semst convert`: CUT/CycleGAN generator files as semst generators.

The reference networks are written here, after CUT's models/networks.py (ResnetGenerator, ResnetBlock and
Downsample/Upsample with their defaults), so that the conversion is checked against CUT's own layer order
and arithmetic rather than against semst's modules. The real-checkpoint test uses the CycleGAN generator
shipped by the `vintagify` package, run through a functional forward pass written from CycleGAN's layout.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from semst.checkpoint import read_metadata
from semst.cli import convert
from semst.interop.cut import (
    CutImportError,
    convert_cut_checkpoint,
    cut_to_semst_state,
    generator_from_cut,
    infer_cut_architecture,
    load_cut_state_dict,
)
from semst.tiling import Tiling
from semst.translators import Translator

NGF = 8  # small CUT generators: the whole module runs in seconds


# ----------------------------------------------------------------------------------------------------------
# CUT's ResnetGenerator, written from its source (models/networks.py)


class CutDownsample(nn.Module):
    """CUT's `Downsample(channels)` with its defaults: reflect pad 1, [1, 2, 1] blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d([1, 1, 1, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class CutUpsample(nn.Module):
    """CUT's `Upsample(channels)` with its defaults: replicate pad 1, [1, 3, 3, 1] filter * 4, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum() * 4)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReplicationPad2d([1, 1, 1, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])[:, :, 1:, 1:]
        return out[:, :, :-1, :-1]  # even filter size


class CutResnetBlock(nn.Module):
    """CUT's `ResnetBlock` with reflection padding; `container` names its Sequential (CUT: conv_block)."""

    def __init__(self, dim: int, norm_layer, use_bias: bool, dropout: bool, container: str) -> None:
        super().__init__()
        layers = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim)]
        self.container = container
        self.add_module(container, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + getattr(self, self.container)(x)


def cut_norm_layer(norm: str, track_running_stats: bool = False):
    """CUT's `get_norm_layer`, plus affine instance norm and running statistics for the variants."""
    if norm in ("instance", "instance_affine"):
        return functools.partial(
            nn.InstanceNorm2d, affine=norm == "instance_affine", track_running_stats=track_running_stats
        )
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    assert norm == "none"
    return lambda channels: nn.Identity()


class CutResnetGenerator(nn.Module):
    """CUT's `ResnetGenerator`: one `nn.Sequential` called `model`, so its keys are `model.<index>.*`."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = NGF,
        n_blocks: int = 9,
        norm: str = "instance",
        no_antialias: bool = False,
        no_antialias_up: bool = False,
        dropout: bool = False,
        container: str = "conv_block",
        track_running_stats: bool = False,
    ) -> None:
        super().__init__()
        norm_layer = cut_norm_layer(norm, track_running_stats)
        use_bias = norm in ("instance", "instance_affine")  # CUT: norm_layer.func == nn.InstanceNorm2d
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            if no_antialias:
                model += [
                    nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                    norm_layer(ngf * mult * 2),
                    nn.ReLU(True),
                ]
            else:
                model += [
                    nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
                    norm_layer(ngf * mult * 2),
                    nn.ReLU(True),
                    CutDownsample(ngf * mult * 2),
                ]
        model += [CutResnetBlock(ngf * 4, norm_layer, use_bias, dropout, container) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            if no_antialias_up:
                model += [
                    nn.ConvTranspose2d(
                        ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias
                    ),
                    norm_layer(ngf * mult // 2),
                    nn.ReLU(True),
                ]
            else:
                model += [
                    CutUpsample(ngf * mult),
                    nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
                    norm_layer(ngf * mult // 2),
                    nn.ReLU(True),
                ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def make_cut_generator(seed: int = 0, **kwargs) -> CutResnetGenerator:
    """A CUT generator whose biases, affine norm parameters and running statistics are random too.

    Default init leaves norm weights at 1 and biases at 0, which would hide a swapped norm or bias mapping.
    """
    torch.manual_seed(seed)
    net = CutResnetGenerator(**kwargs)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
                module.bias.normal_(0.0, 0.1)
            if isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.2)
                if module.track_running_stats:
                    module.running_mean.normal_(0.0, 1.0)
                    module.running_var.uniform_(0.5, 2.0)
    return net


def save_state(net: nn.Module, path: Path, prefix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + key: value for key, value in net.state_dict().items()}, path)
    return path


def assert_same_output(
    reference: nn.Module, generator: nn.Module, x: torch.Tensor, atol: float = 1e-5
) -> None:
    with torch.no_grad():
        expected = reference(x)
        got = generator(x)
    assert expected.std() > 0.05, "the reference output is nearly constant; the comparison would be weak"
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)


ARCH_FIELDS = ("in_channels", "out_channels", "base_channels", "num_blocks", "downsample", "upsample", "norm")


# ----------------------------------------------------------------------------------------------------------
# Architecture variants against CUT's forward pass


@pytest.mark.parametrize(
    ("num_blocks", "downsample", "upsample", "norm"),
    list(
        itertools.product(
            (9, 6), ("antialias", "strided"), ("antialias", "transposed"), ("instance", "instance_affine")
        )
    ),
)
def test_variant_converts_to_the_same_function(
    tmp_path: Path, num_blocks: int, downsample: str, upsample: str, norm: str
) -> None:
    reference = make_cut_generator(
        n_blocks=num_blocks,
        norm=norm,
        no_antialias=downsample == "strided",
        no_antialias_up=upsample == "transposed",
    ).eval()
    path = save_state(reference, tmp_path / "latest_net_G.pth")

    generator, arch = generator_from_cut(path)

    assert {field: arch[field] for field in ARCH_FIELDS} == {
        "in_channels": 3,
        "out_channels": 3,
        "base_channels": NGF,
        "num_blocks": num_blocks,
        "downsample": downsample,
        "upsample": upsample,
        "norm": norm,
    }
    assert arch["cut_netG"] == f"resnet_{num_blocks}blocks"
    assert not arch["dropout"] and not arch["running_stats"] and arch["ignored_buffers"] == 0
    assert not generator.training
    torch.manual_seed(1)
    assert_same_output(reference, generator, torch.rand(2, 3, 32, 24) * 2 - 1)
    assert_same_output(reference, generator, torch.rand(1, 3, 30, 22) * 2 - 1)  # sides not multiples of 4


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"norm": "none"}, {"norm": "none", "conv_bias": False}),
        ({"track_running_stats": True}, {"norm": "instance", "running_stats": True}),
        (
            {"norm": "instance_affine", "track_running_stats": True, "no_antialias": True},
            {"norm": "instance_affine", "running_stats": True, "downsample": "strided"},
        ),
        ({"dropout": True, "n_blocks": 6}, {"dropout": True, "num_blocks": 6}),
        (
            {"container": "block", "no_antialias_up": True},
            {"block_container": "block", "upsample": "transposed"},
        ),
        ({"in_channels": 1, "out_channels": 2}, {"in_channels": 1, "out_channels": 2}),
    ],
    ids=["no-norm", "running-stats", "affine-running-stats", "dropout", "block-container", "1-to-2-channels"],
)
def test_other_cut_variants(tmp_path: Path, kwargs: dict, expected: dict) -> None:
    reference = make_cut_generator(**kwargs)
    # Running statistics: CUT's test (without --eval) runs in training mode, i.e. with per-image statistics.
    reference.train(kwargs.get("track_running_stats", False))
    path = save_state(reference, tmp_path / "latest_net_G.pth")

    generator, arch = generator_from_cut(path)

    assert {key: arch[key] for key in expected} == expected
    if arch["running_stats"]:
        norms = sum(isinstance(m, nn.InstanceNorm2d) for m in reference.modules())
        assert arch["ignored_buffers"] == 3 * norms  # running_mean, running_var, num_batches_tracked
    torch.manual_seed(2)
    x = torch.rand(2, kwargs.get("in_channels", 3), 28, 20) * 2 - 1
    assert_same_output(reference, generator, x)


def test_dataparallel_prefix_is_removed(tmp_path: Path) -> None:
    reference = make_cut_generator(n_blocks=6).eval()
    path = save_state(reference, tmp_path / "latest_net_G.pth", prefix="module.")

    state = load_cut_state_dict(path)

    assert set(state) == set(reference.state_dict())
    generator, _ = generator_from_cut(path)
    assert_same_output(reference, generator, torch.rand(1, 3, 24, 24) * 2 - 1)


# ----------------------------------------------------------------------------------------------------------
# A real CycleGAN checkpoint: vintagify's ResNet-9 generator (ngf 64, affine InstanceNorm)


def vintagify_generator_file() -> Path | None:
    """`vintagify/resources/G_A2B_epoch33.pth` if the package is installed (it is not imported)."""
    spec = importlib.util.find_spec("vintagify")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "resources" / "G_A2B_epoch33.pth"
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def vintagify_file() -> Path:
    path = vintagify_generator_file()
    if path is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    return path


def cyclegan_reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """CycleGAN's resnet_9blocks forward pass, written with torch.nn.functional on the raw state dict.

    Layout: 0 pad, 1 conv7, 2 IN, 3 ReLU | 4 conv s2, 5 IN, 6 ReLU | 7 conv s2, 8 IN, 9 ReLU | 10-18 residual
    blocks (pad, conv, IN, ReLU, pad, conv, IN; vintagify names the Sequential `block`) | 19 convT, 20 IN,
    21 ReLU | 22 convT, 23 IN, 24 ReLU | 25 pad, 26 conv7, 27 tanh. InstanceNorm is affine, eps 1e-5.
    """

    def norm(h: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.instance_norm(h, weight=state[f"{prefix}.weight"], bias=state[f"{prefix}.bias"], eps=1e-5)

    def conv(h: torch.Tensor, prefix: str, **kwargs) -> torch.Tensor:
        return F.conv2d(h, state[f"{prefix}.weight"], state[f"{prefix}.bias"], **kwargs)

    h = F.pad(x, (3, 3, 3, 3), mode="reflect")
    h = F.relu(norm(conv(h, "model.1"), "model.2"))
    h = F.relu(norm(conv(h, "model.4", stride=2, padding=1), "model.5"))
    h = F.relu(norm(conv(h, "model.7", stride=2, padding=1), "model.8"))
    for index in range(10, 19):
        block = f"model.{index}.block"
        r = F.relu(norm(conv(F.pad(h, (1, 1, 1, 1), mode="reflect"), f"{block}.1"), f"{block}.2"))
        r = norm(conv(F.pad(r, (1, 1, 1, 1), mode="reflect"), f"{block}.5"), f"{block}.6")
        h = h + r
    for up, up_norm in (("model.19", "model.20"), ("model.22", "model.23")):
        weight, bias = state[f"{up}.weight"], state[f"{up}.bias"]
        h = F.relu(norm(F.conv_transpose2d(h, weight, bias, stride=2, padding=1, output_padding=1), up_norm))
    return torch.tanh(conv(F.pad(h, (3, 3, 3, 3), mode="reflect"), "model.26"))


def test_vintagify_cyclegan_generator(vintagify_file: Path, tmp_path: Path) -> None:
    state = load_cut_state_dict(vintagify_file)  # weights_only: this must not need vintagify's classes
    arch = infer_cut_architecture(state, source=vintagify_file)
    assert {field: arch[field] for field in ARCH_FIELDS} == {
        "in_channels": 3,
        "out_channels": 3,
        "base_channels": 64,
        "num_blocks": 9,
        "downsample": "strided",
        "upsample": "transposed",
        "norm": "instance_affine",
    }
    assert arch["block_container"] == "block"

    torch.manual_seed(3)
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        expected = cyclegan_reference_forward(state, x)
        generator, _ = generator_from_cut(vintagify_file)
        torch.testing.assert_close(generator(x), expected, atol=1e-4, rtol=0)

        out = convert_cut_checkpoint(vintagify_file, tmp_path / "vintage.safetensors", name="vintage")
        model = Translator.from_checkpoint(out, device="cpu")
        torch.testing.assert_close(model.generator(x), expected, atol=1e-4, rtol=0)

    meta = read_metadata(out)
    assert meta["kind"] == "imported" and meta["name"] == "vintage" and meta["step"] == 0
    assert meta["source"]["sha256"] == hashlib.sha256(vintagify_file.read_bytes()).hexdigest()
    assert meta["source"]["file"] == "G_A2B_epoch33.pth"
    assert meta["config"]["preset"] == "custom" and meta["config"]["multiscale"]["enabled"] is False
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (33, 45, 3), dtype=np.uint8))
    assert model.translate(image).size == (45, 33)
    assert model.translate(image, Tiling(tile=32, overlap=8)).size == (45, 33)


# ----------------------------------------------------------------------------------------------------------
# Files that are refused


class WritesMarker:
    """Pickles as a call to open(marker, "w"): unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_python_objects_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.zeros(NGF, 3, 7, 7), "payload": WritesMarker(marker)}, path)

    with pytest.raises(CutImportError, match="contains Python objects") as info:
        load_cut_state_dict(path)

    assert str(path) in str(info.value) and "will not unpickle" in str(info.value)
    assert not marker.exists()
    with pytest.raises(CutImportError):
        generator_from_cut(path)
    assert not marker.exists()
    # The payload is live: a plain unpickle would have run it (so the assertions above are not vacuous).
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_discriminator_is_not_a_generator(tmp_path: Path) -> None:
    # CUT's NLayerDiscriminator layout (conv 4x4, LeakyReLU, Downsample, conv, norm, LeakyReLU, ...).
    holder = nn.Module()
    holder.model = nn.Sequential(
        nn.Conv2d(3, NGF, 4, stride=1, padding=1),
        nn.LeakyReLU(0.2, True),
        CutDownsample(NGF),
        nn.Conv2d(NGF, 2 * NGF, 4, stride=1, padding=1),
        nn.InstanceNorm2d(2 * NGF),
        nn.LeakyReLU(0.2, True),
        CutDownsample(2 * NGF),
        nn.Conv2d(2 * NGF, 1, 4, stride=1, padding=1),
    )
    path = save_state(holder, tmp_path / "latest_net_D.pth")

    with pytest.raises(CutImportError) as info:
        generator_from_cut(path)

    message = str(info.value)
    assert str(path) in message and "not a CUT/CycleGAN ResnetGenerator" in message
    assert "model.0.weight (8, 3, 4, 4)" in message and "discriminator" in message


def test_truncated_file(tmp_path: Path) -> None:
    full = save_state(make_cut_generator(n_blocks=6), tmp_path / "full.pth")
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])

    with pytest.raises(CutImportError, match="truncated or damaged") as info:
        load_cut_state_dict(path)
    assert str(path) in str(info.value)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CutImportError, match="empty"):
        load_cut_state_dict(empty)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (torch.zeros(3), "holds a Tensor, not a state dict"),
        ({"epoch": 3, "model.1.weight": torch.zeros(1)}, r"'epoch' \(int\) is not tensors|'epoch' \(int\)"),
        ({}, "empty state dict"),
        ({"model.model.0.weight": torch.zeros(8, 3, 4, 4)}, "U-Net"),
        ({"mlp_0.0.weight": torch.zeros(256, 3)}, "projection head F"),
    ],
    ids=["tensor", "training-dict", "empty", "unet", "netF"],
)
def test_files_that_are_not_generator_state_dicts(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "weights.pth"
    torch.save(content, path)
    with pytest.raises(CutImportError, match=message) as info:
        generator_from_cut(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_cut_state_dict(tmp_path / "nope.pth")
    save_state(make_cut_generator(n_blocks=6), tmp_path / "run" / "latest_net_G.pth")
    with pytest.raises(CutImportError, match="did you mean .*latest_net_G.pth"):
        load_cut_state_dict(tmp_path / "run")


def test_batchnorm_generator_is_refused(tmp_path: Path) -> None:
    path = save_state(make_cut_generator(norm="batch", n_blocks=6), tmp_path / "latest_net_G.pth")
    with pytest.raises(CutImportError, match="BatchNorm"):
        generator_from_cut(path)


def test_mismatches_name_both_keys_and_shapes() -> None:
    state = dict(make_cut_generator(n_blocks=6).state_dict())
    arch = infer_cut_architecture(state)
    state["model.13.conv_block.5.weight"] = torch.zeros(4 * NGF, 4 * NGF, 3, 1)
    state["model.40.weight"] = torch.zeros(3)
    del state["model.4.bias"]

    with pytest.raises(CutImportError) as info:
        cut_to_semst_state(state, arch, source="gen.pth")

    message = str(info.value)
    assert message.startswith("gen.pth does not fit a semst ResnetGenerator")
    assert (
        "model.13.conv_block.5.weight (32, 32, 3, 1) -> blocks.1.conv2.weight expects (32, 32, 3, 3)"
        in message
    )
    assert "unexpected keys: model.40.weight (3,)" in message
    assert "missing: model.4.bias (for down1.conv.bias (16,))" in message


def test_non_default_blur_filter_is_refused() -> None:
    state = dict(make_cut_generator(n_blocks=6).state_dict())
    state["model.7.filt"] = torch.full_like(state["model.7.filt"], 1 / 9)  # a box filter
    with pytest.raises(CutImportError, match=r"model.7.filt holds another filter .* down1.resample.kernel"):
        cut_to_semst_state(state, infer_cut_architecture(state))


def test_convert_refusals(tmp_path: Path) -> None:
    source = save_state(make_cut_generator(n_blocks=6), tmp_path / "latest_net_G.pth")
    with pytest.raises(CutImportError, match=r"must end in \.safetensors"):
        convert_cut_checkpoint(source, tmp_path / "out.pth")
    out = convert_cut_checkpoint(source, tmp_path / "out.safetensors")
    with pytest.raises(CutImportError, match="already a semst checkpoint"):
        load_cut_state_dict(out)
    rgb_to_gray = save_state(make_cut_generator(n_blocks=6, out_channels=1), tmp_path / "gray.pth")
    with pytest.raises(CutImportError, match="3 to 1 channels|maps 3 to 1"):
        convert_cut_checkpoint(rgb_to_gray, tmp_path / "gray.safetensors")


# ----------------------------------------------------------------------------------------------------------
# `semst convert`, then translation with the converted checkpoint


def run_convert(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="semst")
    convert.add_parser(parser.add_subparsers(dest="command"))
    return convert.run(parser.parse_args(["convert", *argv]))


def test_convert_command_then_translate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = make_cut_generator().eval()  # CUT's defaults: resnet_9blocks, anti-aliased, instance norm
    source = save_state(reference, tmp_path / "checkpoints" / "h2z_CUT" / "latest_net_G.pth")

    assert run_convert([str(source), "--dry-run"]) == 0
    assert "resnet_9blocks" in capsys.readouterr().out
    assert not source.with_suffix(".safetensors").exists()

    out = tmp_path / "h2z.safetensors"
    assert run_convert([str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet_9blocks: 9 residual blocks, ngf 8, 3 -> 3 channels" in printed
    assert "anti-aliased" in printed and "InstanceNorm2d, affine=False" in printed
    assert f"wrote       {out}" in printed
    assert read_metadata(out)["name"] == "h2z_CUT"

    model = Translator.from_checkpoint(out, device="cpu")
    torch.manual_seed(4)
    x = torch.rand(1, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.translate_tensor(x), reference(x), atol=1e-5, rtol=0)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (29, 37, 3), dtype=np.uint8))
    assert model.translate(image).size == (37, 29)
    assert model.translate(image, Tiling(tile=24, overlap=8)).size == (37, 29)

    assert run_convert([str(source)]) == 0  # default output: next to the source
    assert source.with_suffix(".safetensors").is_file()
