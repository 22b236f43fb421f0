"""Generators trained by CUT or CycleGAN, loaded as semst generators and written as semst checkpoints.

CUT (taesungp/contrastive-unpaired-translation) and CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix) save their
generator as `latest_net_G.pth`: a `torch.save`d state dict of their `ResnetGenerator`, whose layers form one
`nn.Sequential` called `model`. semst's `ResnetGenerator` computes the same function with named stages, so the
weights map one to one. CUT's Sequential indices (C = ngf; "aa" = anti-aliased resampling, CUT's default;
"strided" = `--no_antialias` and CycleGAN; "transposed" = `--no_antialias_up` and CycleGAN):

- 0-3: ReflectionPad2d(3), Conv7x7, norm, ReLU -> `stem.conv`, `stem.norm`.
- aa 4-7 / strided 4-6: Conv3x3 (stride 1 / 2), norm, ReLU, [Downsample] -> `down1.conv`, `.norm`,
  [`.resample`]; aa 8-11 / strided 7-9: the same for `down2`.
- aa 12.. / strided 10..: the ResnetBlocks, each `conv_block.{1,2,5,6}` (ReflectionPad2d, Conv, norm, ReLU,
  ReflectionPad2d, Conv, norm) -> `blocks.K.conv1`, `.norm1`, `.conv2`, `.norm2`.
- per upsampling stage, aa: Upsample, Conv3x3, norm, ReLU -> `upK.resample`, `.conv`, `.norm`; transposed:
  ConvTranspose2d (stride 2, output_padding 1), norm, ReLU -> `upK.conv`, `.norm`.
- the last three: ReflectionPad2d(3), Conv7x7, Tanh -> `head.conv`.

CUT's `Downsample`/`Upsample` hold their fixed blur filter as a `filt` buffer (semst: `resample.kernel`).

Variants that are recognised from the keys and shapes alone: the number of residual blocks (resnet_9blocks,
resnet_6blocks, ...), ngf, input/output channels, anti-aliased or strided downsampling and anti-aliased or
transposed upsampling (separately: CUT's `--no_antialias` and `--no_antialias_up`), InstanceNorm with affine
parameters (weight/bias keys) or without, no norm (CUT `--normG none`: convolutions without bias, which become
zero biases here), a `module.` prefix (DataParallel), a residual-block container named other than
`conv_block` (e.g. `block`), and dropout inside the blocks (`use_dropout`, e.g. pix2pix's ResNet generators;
semst applies no dropout, which is what the network computes in eval mode).

InstanceNorm `running_mean`/`running_var`/`num_batches_tracked` buffers (checkpoints from PyTorch < 0.4 or
with `track_running_stats=True`) are dropped: CUT and CycleGAN normalise by each image's own statistics at
test time (their test scripts run the network in training mode unless `--eval`, and CycleGAN's loader deletes
these buffers for InstanceNorm), which is what semst's generator does. (Only a network that really tracked
running statistics and was tested with `--eval` would normalise by them instead.)

BatchNorm generators (`--norm batch`) are refused, since semst has no BatchNorm generator; they are
recognised by their convolutions having no bias (CUT and CycleGAN give convolutions a bias exactly when the
norm is an InstanceNorm) while their norms carry parameters or running statistics.

Files are read with `torch.load(path, map_location="cpu", weights_only=True)` only: a file that contains
Python objects beyond tensors is refused rather than unpickled, because unpickling can run arbitrary code.
"""

from __future__ import annotations

import logging
import pickle
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch

import semst
from semst import checkpoint as ckpt
from semst.config import ExperimentConfig
from semst.files import file_sha256
from semst.networks.generator import ResnetGenerator
from semst.networks.layers import BlurDownsample, BlurUpsample

logger = logging.getLogger(__name__)

IMPORTED_KIND = "imported"  # `kind` in the metadata of checkpoints written by `convert_cut_checkpoint`
SOURCE_FORMAT = "CUT/CycleGAN ResnetGenerator state dict"

_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
_LAYER_KEY = re.compile(r"model\.(\d+)\.(.+)")
_BLOCK_KEY = re.compile(r"([A-Za-z_]\w*)\.(\d+)\.(\w+)")
_MAX_LISTED = 6


class CutImportError(ValueError):
    """A CUT/CycleGAN generator file cannot be read safely, is not a ResnetGenerator or does not fit."""


# ----------------------------------------------------------------------------------------------------------
# Reading the file


def load_cut_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a CUT/CycleGAN generator state dict without unpickling any Python object.

    The file is read with `torch.load(path, map_location="cpu", weights_only=True)`; a `module.` prefix
    (added by `nn.DataParallel`) is removed from the names. A safetensors file holding a plain state dict is
    also accepted (it contains no pickle at all).

    Args:
        path: A `latest_net_G.pth` (or `<epoch>_net_G.pth`) file.

    Returns:
        Parameter name -> tensor, e.g. `{"model.1.weight": (64, 3, 7, 7) tensor, ...}`, on the CPU.

    Raises:
        FileNotFoundError: If `path` does not exist.
        CutImportError: If `path` is a directory, contains Python objects that a weights-only load refuses
            (it is then not unpickled), is truncated or damaged, is already a semst checkpoint, or does not
            hold a dict of tensors.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CUT/CycleGAN generator file {path} does not exist")
    if path.is_dir():
        candidate = path / "latest_net_G.pth"
        hint = f"; did you mean {candidate}?" if candidate.is_file() else " (CUT saves latest_net_G.pth)"
        raise CutImportError(f"{path} is a directory, not a generator file{hint}")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) >= 9 and head[8:9] == b"{":  # an 8-byte header length, then the JSON header
        loaded = _load_safetensors(path)
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CutImportError(_describe_refused_pickle(path, exc)) from exc
        except Exception as exc:
            # Damaged files raise RuntimeError, OSError, EOFError, KeyError...; torch's own text runs on for
            # lines, and its first sentence is the useful part.
            detail = str(exc).strip().splitlines()[0].split(". ")[0][:200] if str(exc).strip() else ""
            raise CutImportError(
                f"{path} could not be read as a PyTorch file ({size} bytes): {_describe_damage(head, size)} "
                f"({type(exc).__name__}{': ' + detail if detail else ''})"
            ) from exc
    return _as_state_dict(loaded, path)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Reads a plain safetensors state dict; refuses semst checkpoints (they need no conversion)."""
    try:
        ckpt.read_metadata(path)
    except ckpt.CheckpointError:
        pass
    else:
        raise CutImportError(
            f"{path} is already a semst checkpoint; use it directly, "
            f"e.g. semst translate {path} IMAGES -o OUT"
        )
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CutImportError(f"{path} could not be read as a safetensors file: {exc}") from exc


def _describe_refused_pickle(path: Path, exc: Exception) -> str:
    """Explains why `torch.load(weights_only=True)` refused `path`, naming the offending global if known."""
    message = str(exc)
    advice = (
        "semst reads .pth files with torch.load(weights_only=True) and will not unpickle them, because "
        "unpickling can run arbitrary code. If you trust the file, load it yourself and save only the "
        "generator's weights, e.g. torch.save(netG.state_dict(), 'latest_net_G.pth'), then convert that."
    )
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found:
        return f"{path} contains Python objects, not only tensors (it refers to {found[1]}): {advice}"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    reason = f" ({detail[1].strip()})" if detail else ""
    if "Weights only load failed" in message:
        return (
            f"{path} contains Python objects or pickle instructions that a weights-only load "
            f"refuses{reason}, or it is damaged: {advice}"
        )
    return f"{path} is not a readable PyTorch file: it is a damaged or unsupported pickle ({message[:200]})"


def _describe_damage(head: bytes, size: int) -> str:
    if size == 0:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a torch.save zip archive that is truncated or damaged"
    if head[:1] == b"\x80":
        return "it is a pickle that is truncated or damaged"
    return "it is neither a torch.save zip archive nor a pickle"


def _as_state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """Checks that `loaded` maps names to tensors and removes DataParallel's `module.` prefix."""
    if not isinstance(loaded, Mapping):
        raise CutImportError(
            f"{path} holds a {type(loaded).__name__}, not a state dict (a dict of parameter names to "
            "tensors, which is what netG.state_dict() returns and CUT/CycleGAN save as latest_net_G.pth)"
        )
    wrong = [(key, value) for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    wrong += [(key, value) for key, value in loaded.items() if not isinstance(key, str)]
    if wrong:
        listed = ", ".join(f"{key!r} ({type(value).__name__})" for key, value in wrong[:_MAX_LISTED])
        raise CutImportError(
            f"{path} is not a state dict of tensors: {listed}{_more(len(wrong))} "
            f"{'is' if len(wrong) == 1 else 'are'} not tensors (top-level keys: {_preview(list(loaded))}). "
            "semst needs the generator's own state dict, as CUT/CycleGAN save it in latest_net_G.pth"
        )
    state: dict[str, torch.Tensor] = {}
    for key, tensor in loaded.items():
        name = key.removeprefix("module.")
        if name in state:
            raise CutImportError(f"{path} holds both {key!r} and {name!r}; which one is the generator's?")
        state[name] = tensor
    return state


# ----------------------------------------------------------------------------------------------------------
# Recognising the architecture


def infer_cut_architecture(state: Mapping[str, torch.Tensor], *, source: str | Path | None = None) -> dict:
    """Infers the generator settings of a CUT/CycleGAN ResnetGenerator state dict from its keys and shapes.

    Args:
        state: The state dict (`load_cut_state_dict`), names without a `module.` prefix.
        source: File name used in error messages (default: "the state dict").

    Returns:
        A JSON-serialisable dict. Keys named like semst's `GeneratorConfig` fields: `in_channels`,
        `out_channels`, `base_channels` (ngf), `num_blocks`, `downsample` ("antialias" or "strided"),
        `upsample` ("antialias" or "transposed"), `norm` ("instance", "instance_affine" or "none"). Details
        of the source layout: `cut_netG` (e.g. "resnet_9blocks"), `conv_bias` (False only with no norm),
        `block_container` (the residual block's Sequential, "conv_block" in CUT/CycleGAN), `dropout`
        (dropout layers inside the blocks), `running_stats` (InstanceNorm running statistics are present) and
        `ignored_buffers` (how many running-statistics tensors the conversion drops).

    Raises:
        CutImportError: If the state dict is not a ResnetGenerator (the message lists keys that do not fit and
            what the file looks like, e.g. a discriminator, a U-Net or CUT's projection head F), or is a
            variant semst cannot represent (BatchNorm, zero-padded residual blocks, mixed resampling modes).
    """
    where = str(source) if source is not None else "the state dict"
    if not state:
        raise CutImportError(f"{where} is an empty state dict")
    layers, foreign = _group_layers(state)
    if foreign:
        _not_a_generator(where, state, foreign, "its keys are not all of the form 'model.<index>.<name>'")
    if 0 in layers:
        _not_a_generator(
            where,
            state,
            _keys_of(layers, 0),
            "layer model.0 has weights, but a ResnetGenerator starts with a parameter-free ReflectionPad2d",
        )
    stem = layers.get(1, {}).get("weight")
    if stem is None or stem.ndim != 4 or tuple(stem.shape[2:]) != (7, 7):
        found = f"found {_shape(stem)}" if stem is not None else "it is missing"
        _not_a_generator(
            where, state, _keys_of(layers, 1), f"model.1.weight should be the 7x7 stem convolution; {found}"
        )
    base_channels, in_channels = int(stem.shape[0]), int(stem.shape[1])
    norm = _infer_norm(where, layers)
    downsample, first_block = _infer_downsample(where, state, layers)
    blocks = _infer_blocks(where, state, layers, first_block)
    upsample, index = _infer_upsample(where, state, layers, first_block + blocks["num_blocks"], base_channels)
    head = layers.get(index + 1, {}).get("weight")
    if head is None or head.ndim != 4 or tuple(head.shape[1:]) != (base_channels, 7, 7):
        _not_a_generator(
            where,
            state,
            _keys_of(layers, index + 1),
            f"model.{index + 1}.weight should be the 7x7 output convolution with {base_channels} input "
            f"channels; {'found ' + _shape(head) if head is not None else 'it is missing'}",
        )
    return {
        "cut_netG": f"resnet_{blocks['num_blocks']}blocks",
        "in_channels": in_channels,
        "out_channels": int(head.shape[0]),
        "base_channels": base_channels,
        "num_blocks": blocks["num_blocks"],
        "downsample": downsample,
        "upsample": upsample,
        "norm": norm["norm"],
        "conv_bias": norm["conv_bias"],
        "block_container": blocks["block_container"],
        "dropout": blocks["dropout"],
        "running_stats": norm["running_stats"],
        "ignored_buffers": sum(1 for key in state if key.rsplit(".", 1)[-1] in _RUNNING_STATS),
    }


_Layers = Mapping[int, Mapping[str, torch.Tensor]]


def _infer_norm(where: str, layers: _Layers) -> dict[str, Any]:
    """The generator's `norm`, `conv_bias` and `running_stats`, read from the stem's convolution and norm."""
    conv_bias = "bias" in layers[1]
    stem_norm = layers.get(2, {})
    affine = "weight" in stem_norm
    running_stats = "running_mean" in stem_norm
    if not conv_bias and (affine or running_stats):
        raise CutImportError(
            f"{where} is a ResnetGenerator with BatchNorm (CUT/CycleGAN --norm batch: its convolutions have "
            f"no bias and model.2 has {_preview(sorted(stem_norm))}); semst generators use instance norm "
            "(affine or not) or no norm, so this generator cannot be converted"
        )
    if not conv_bias:
        norm = "none"
    else:
        norm = "instance_affine" if affine else "instance"
    return {"norm": norm, "conv_bias": conv_bias, "running_stats": running_stats}


def _infer_downsample(where: str, state: Mapping[str, torch.Tensor], layers: _Layers) -> tuple[str, int]:
    """ "antialias" or "strided", and the index of the first residual block."""
    seventh = layers.get(7, {})
    if "filt" in seventh:
        return "antialias", 12
    if "weight" in seventh and seventh["weight"].ndim == 4:
        return "strided", 10
    _not_a_generator(
        where,
        state,
        _keys_of(layers, 7),
        "model.7 is neither CUT's anti-aliasing Downsample (a 'filt' buffer) nor the second strided "
        "downsampling convolution",
    )


def _infer_blocks(
    where: str, state: Mapping[str, torch.Tensor], layers: _Layers, first: int
) -> dict[str, Any]:
    """The residual blocks from model.`first` on: `num_blocks`, `block_container` and `dropout`."""
    index, num_blocks, container, block_convs = first, 0, None, None
    while index in layers:
        matches = [_BLOCK_KEY.fullmatch(key) for key in layers[index]]
        if not all(matches):
            break
        names = {match[1] for match in matches}
        if len(names) != 1 or (container is not None and names != {container}):
            expected = container or "one container such as 'conv_block'"
            _not_a_generator(
                where,
                state,
                _keys_of(layers, index),
                f"residual block model.{index} holds sub-modules {sorted(names)}, expected {expected}",
            )
        container = names.pop()
        convs = sorted(
            int(match[2])
            for match in matches
            if match[3] == "weight" and layers[index][match[0]].ndim == 4  # type: ignore[index]
        )
        block_convs = convs if block_convs is None else block_convs
        num_blocks += 1
        index += 1
    if num_blocks == 0:
        _not_a_generator(
            where,
            state,
            _keys_of(layers, first),
            f"no residual blocks: model.{first} should hold ResnetBlock weights such as "
            f"model.{first}.conv_block.1.weight",
        )
    if block_convs == [1, 5]:
        dropout = False
    elif block_convs == [1, 6]:
        dropout = True  # ReflectionPad, Conv, norm, ReLU, Dropout, ReflectionPad, Conv, norm
    elif block_convs == [0, 3]:
        raise CutImportError(
            f"{where}: the residual blocks convolve with zero padding (padding_type='zero': no "
            f"ReflectionPad2d before model.{first}.{container}.0); semst's residual blocks use "
            "reflection padding, so this generator cannot be converted"
        )
    else:
        _not_a_generator(
            where,
            state,
            _keys_of(layers, first),
            f"residual block model.{first} has convolutions at {container} positions {block_convs}; "
            "a ResnetBlock has them at 1 and 5 (or 1 and 6 with dropout)",
        )
    return {"num_blocks": num_blocks, "block_container": container, "dropout": dropout}


def _infer_upsample(
    where: str, state: Mapping[str, torch.Tensor], layers: _Layers, index: int, base_channels: int
) -> tuple[str, int]:
    """ "antialias" or "transposed" for the two upsampling stages from model.`index` on, and the index after
    them (the head's ReflectionPad2d)."""
    modes = []
    channels = 4 * base_channels
    for stage in (1, 2):
        layer = layers.get(index, {})
        weight = layer.get("weight")
        if "filt" in layer:
            modes.append("antialias")
            index += 4  # Upsample, Conv3x3, norm, ReLU
        elif weight is not None and weight.ndim == 4 and tuple(weight.shape[:2]) == (channels, channels // 2):
            modes.append("transposed")  # ConvTranspose2d weights are (in, out, kH, kW)
            index += 3  # ConvTranspose2d, norm, ReLU
        else:
            _not_a_generator(
                where,
                state,
                _keys_of(layers, index),
                f"model.{index} should be upsampling stage {stage}: CUT's Upsample (a 'filt' buffer) or a "
                f"ConvTranspose2d with weights ({channels}, {channels // 2}, 3, 3)",
            )
        channels //= 2
    if modes[0] != modes[1]:
        raise CutImportError(
            f"{where}: the two upsampling stages differ ({modes[0]} then {modes[1]}); CUT and CycleGAN use "
            "one mode for both, and so does semst"
        )
    return modes[0], index


def _group_layers(state: Mapping[str, torch.Tensor]) -> tuple[dict[int, dict[str, torch.Tensor]], list[str]]:
    """Splits `model.<index>.<rest>` keys into {index: {rest: tensor}}; returns the other keys separately."""
    layers: dict[int, dict[str, torch.Tensor]] = {}
    foreign = []
    for key, tensor in state.items():
        match = _LAYER_KEY.fullmatch(key)
        if match:
            layers.setdefault(int(match[1]), {})[match[2]] = tensor
        else:
            foreign.append(key)
    return layers, foreign


def _keys_of(layers: Mapping[int, Mapping[str, torch.Tensor]], index: int) -> list[str]:
    return [f"model.{index}.{rest}" for rest in layers.get(index, {})]


def _guess(state: Mapping[str, torch.Tensor]) -> str:
    """A sentence on what a non-generator state dict probably is, or ''."""
    keys = list(state)
    if any(key.startswith("model.model.") for key in keys):
        return (
            " It looks like a U-Net generator (CUT/CycleGAN --netG unet_256 or unet_128), which semst does "
            "not implement."
        )
    if any(key.startswith("mlp_") for key in keys):
        return (
            " It looks like CUT's projection head F (latest_net_F.pth); convert the generator, "
            "latest_net_G.pth."
        )
    first = state.get("model.0.weight")
    if first is not None and first.ndim == 4 and tuple(first.shape[2:]) == (4, 4):
        return (
            " A 4x4 convolution as the first layer is how the PatchGAN discriminator of CUT and CycleGAN "
            "(latest_net_D.pth) starts; convert the generator, latest_net_G.pth."
        )
    return ""


def _not_a_generator(where: str, state: Mapping[str, torch.Tensor], keys: list[str], reason: str) -> NoReturn:
    listed = ", ".join(f"{key} {_shape(state.get(key))}" for key in keys[:_MAX_LISTED]) or "(none)"
    raise CutImportError(
        f"{where} is not a CUT/CycleGAN ResnetGenerator state dict: {reason}.{_guess(state)} "
        f"Keys that do not fit: {listed}{_more(len(keys))}."
    )


def _shape(tensor: torch.Tensor | None) -> str:
    return str(tuple(tensor.shape)) if tensor is not None else "(missing)"


def _more(count: int) -> str:
    return f" and {count - _MAX_LISTED} more" if count > _MAX_LISTED else ""


def _preview(items: list[str]) -> str:
    return ", ".join(repr(item) for item in items[:_MAX_LISTED]) + _more(len(items))


# ----------------------------------------------------------------------------------------------------------
# Mapping the weights


def _cut_layout(arch: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """CUT module prefix -> semst module prefix, in network order, with the kind of module.

    Kinds: "conv" (weight, and bias unless `arch["conv_bias"]` is False), "head" (weight and bias: CUT's last
    convolution always has one), "norm" (weight and bias for affine instance norm) and "filter" (a blur
    filter buffer, `filt` in CUT and `kernel` in semst).
    """
    entries = [("model.1", "stem.conv", "conv"), ("model.2", "stem.norm", "norm")]
    index = 4  # after ReflectionPad2d, Conv7x7, norm, ReLU
    for stage in ("down1", "down2"):
        entries += [
            (f"model.{index}", f"{stage}.conv", "conv"),
            (f"model.{index + 1}", f"{stage}.norm", "norm"),
        ]
        if arch["downsample"] == "antialias":
            entries.append((f"model.{index + 3}", f"{stage}.resample", "filter"))  # after the ReLU
            index += 4
        else:
            index += 3
    second = 6 if arch["dropout"] else 5  # the second conv follows ReLU, [Dropout,] ReflectionPad2d
    for k in range(arch["num_blocks"]):
        block = f"model.{index}.{arch['block_container']}"
        entries += [
            (f"{block}.1", f"blocks.{k}.conv1", "conv"),
            (f"{block}.2", f"blocks.{k}.norm1", "norm"),
            (f"{block}.{second}", f"blocks.{k}.conv2", "conv"),
            (f"{block}.{second + 1}", f"blocks.{k}.norm2", "norm"),
        ]
        index += 1
    for stage in ("up1", "up2"):
        if arch["upsample"] == "antialias":
            entries += [
                (f"model.{index}", f"{stage}.resample", "filter"),
                (f"model.{index + 1}", f"{stage}.conv", "conv"),
                (f"model.{index + 2}", f"{stage}.norm", "norm"),
            ]
            index += 4
        else:
            entries += [
                (f"model.{index}", f"{stage}.conv", "conv"),
                (f"model.{index + 1}", f"{stage}.norm", "norm"),
            ]
            index += 3
    entries.append((f"model.{index + 1}", "head.conv", "head"))  # after ReflectionPad2d(3)
    return entries


def _generator_kwargs(arch: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("in_channels", "out_channels", "base_channels", "num_blocks", "downsample", "upsample", "norm")
    missing = [key for key in keys if key not in arch]
    if missing:
        raise CutImportError(
            f"the architecture dict lacks {missing}; use infer_cut_architecture() to make one"
        )
    return {key: arch[key] for key in keys}


def cut_to_semst_state(
    state: Mapping[str, torch.Tensor], arch: Mapping[str, Any], *, source: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """Maps a CUT/CycleGAN ResnetGenerator state dict onto the parameter names of semst's `ResnetGenerator`.

    Every tensor is checked against the semst generator built with `arch`: a missing tensor, a shape that
    differs, an unexpected key or a blur filter other than CUT's default is an error that names the CUT key,
    the semst key and both shapes. Only InstanceNorm running statistics are dropped (see the module
    docstring); biases absent in the source (no norm) become zeros.

    Args:
        state: The CUT state dict (`load_cut_state_dict`).
        arch: Its architecture (`infer_cut_architecture`).
        source: File name used in error messages.

    Returns:
        The state dict for `ResnetGenerator(**{k: arch[k] for k in (in_channels, out_channels, base_channels,
        num_blocks, downsample, upsample, norm)})`, e.g. `{"stem.conv.weight": (64, 3, 7, 7) tensor, ...}`,
        float32 on the CPU, with exactly that generator's keys.

    Raises:
        CutImportError: If any tensor does not fit.
    """
    where = str(source) if source is not None else "the state dict"
    kwargs = _generator_kwargs(arch)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        expected = {key: tuple(t.shape) for key, t in ResnetGenerator(**kwargs).state_dict().items()}
    mapping = _WeightMapping(state, expected)
    for cut_prefix, semst_prefix, kind in _cut_layout(arch):
        if kind in ("conv", "head"):
            mapping.conv(cut_prefix, semst_prefix, bias=kind == "head" or arch.get("conv_bias", True))
        elif kind == "norm":
            mapping.norm(cut_prefix, semst_prefix, arch["norm"])
        else:
            mapping.blur_filter(cut_prefix, semst_prefix)
    problems = mapping.problems()
    if problems:
        raise CutImportError(
            f"{where} does not fit a semst ResnetGenerator with {_describe_kwargs(kwargs)}: "
            + " | ".join(problems)
        )
    return {key: mapping.converted[key] for key in expected}


class _WeightMapping:
    """Moves tensors from a CUT state dict to semst names, checking each against the expected shapes and
    collecting what does not fit instead of stopping at the first problem."""

    def __init__(self, state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]):
        self.state, self.expected = state, expected
        self.converted: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()  # CUT keys accounted for
        self.missing: list[str] = []
        self.mismatched: list[str] = []

    def take(self, cut_key: str, semst_key: str) -> None:
        want = self.expected.get(semst_key)
        tensor = self.state.get(cut_key)
        if tensor is None:
            self.missing.append(f"{cut_key} (for {semst_key} {want})")
        elif tuple(tensor.shape) != want or not tensor.is_floating_point():
            what = "" if tensor.is_floating_point() else f" of dtype {tensor.dtype}"
            self.mismatched.append(f"{cut_key} {tuple(tensor.shape)}{what} -> {semst_key} expects {want}")
            self.used.add(cut_key)
        else:
            self.converted[semst_key] = tensor.detach().to("cpu", torch.float32)
            self.used.add(cut_key)

    def conv(self, cut_prefix: str, semst_prefix: str, *, bias: bool) -> None:
        self.take(f"{cut_prefix}.weight", f"{semst_prefix}.weight")
        if bias:
            self.take(f"{cut_prefix}.bias", f"{semst_prefix}.bias")
        else:  # CUT drops conv biases without a norm; semst keeps them, and zero is the same function
            self.converted[f"{semst_prefix}.bias"] = torch.zeros(self.expected[f"{semst_prefix}.bias"])

    def norm(self, cut_prefix: str, semst_prefix: str, norm: str) -> None:
        if norm == "instance_affine":
            self.take(f"{cut_prefix}.weight", f"{semst_prefix}.weight")
            self.take(f"{cut_prefix}.bias", f"{semst_prefix}.bias")
        if norm != "none":  # InstanceNorm running statistics: unused by CUT's tests, dropped
            self.used.update(
                f"{cut_prefix}.{name}" for name in _RUNNING_STATS if f"{cut_prefix}.{name}" in self.state
            )

    def blur_filter(self, cut_prefix: str, semst_prefix: str) -> None:
        """CUT's `filt` buffer; semst's fixed kernel is kept, and any other filter is a mismatch."""
        semst_key = f"{semst_prefix}.kernel"
        self.take(f"{cut_prefix}.filt", semst_key)
        if semst_key not in self.converted:
            return
        blur = BlurDownsample if semst_prefix.startswith("down") else BlurUpsample
        reference = blur(self.expected[semst_key][0]).kernel
        if not torch.allclose(self.converted[semst_key], reference, atol=1e-6):
            self.mismatched.append(
                f"{cut_prefix}.filt holds another filter than CUT's default "
                f"{'[1, 2, 1]' if blur is BlurDownsample else '[1, 3, 3, 1]'} blur -> {semst_key}"
            )
        self.converted[semst_key] = reference

    def problems(self) -> list[str]:
        """One line for each kind of problem found (empty when every tensor fits)."""
        unexpected = [f"{key} {tuple(self.state[key].shape)}" for key in self.state if key not in self.used]
        # Every semst tensor has a source once nothing is missing; anything else is a bug in _cut_layout.
        absent = (
            []
            if self.missing or self.mismatched
            else [key for key in self.expected if key not in self.converted]
        )
        problems = []
        for label, items in (
            ("missing", self.missing),
            ("shape mismatches", self.mismatched),
            ("unexpected keys", unexpected),
            ("semst parameters with no source (a bug in semst.interop.cut)", absent),
        ):
            if items:
                problems.append(f"{label}: {'; '.join(items[:_MAX_LISTED])}{_more(len(items))}")
        return problems


def _describe_kwargs(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())


# ----------------------------------------------------------------------------------------------------------
# Generators and checkpoints


def generator_from_cut(path: str | Path) -> tuple[ResnetGenerator, dict]:
    """Loads a CUT/CycleGAN `latest_net_G.pth` as a semst `ResnetGenerator`.

    Args:
        path: The generator file.

    Returns:
        The generator (CPU, eval mode; it maps (B, in_channels, H, W) images in [-1, 1] to
        (B, out_channels, H, W) images in [-1, 1], H and W multiples of 4, as CUT's does) and the architecture
        dict of `infer_cut_architecture`.

    Raises:
        FileNotFoundError, CutImportError: See `load_cut_state_dict`, `infer_cut_architecture` and
            `cut_to_semst_state`.
    """
    state = load_cut_state_dict(path)
    arch = infer_cut_architecture(state, source=path)
    converted = cut_to_semst_state(state, arch, source=path)
    generator = ResnetGenerator(**_generator_kwargs(arch))
    generator.load_state_dict(converted)
    return generator.eval(), arch


def convert_cut_checkpoint(path: str | Path, out: str | Path, *, name: str | None = None) -> Path:
    """Converts a CUT/CycleGAN generator file into a semst checkpoint for `Translator.from_checkpoint`.

    The checkpoint holds the generator as `translator.generator.*` tensors and, as metadata, a single-scale config
    (`preset: custom`, `multiscale.enabled: false`, the inferred generator settings; the other sections keep
    semst's defaults, since the training settings of the source are unknown), `kind: "imported"`, `step: 0`,
    `name` and `source` (file name, absolute path, size, SHA-256 and the inferred architecture). It works with
    `semst translate` and `semst info`, whole-image and tiled; it cannot be resumed as a training run.

    Args:
        path: The CUT/CycleGAN generator file (`latest_net_G.pth`).
        out: The checkpoint to write; must end in `.safetensors`. Written atomically.
        name: A label stored in the metadata; default: the name of the folder holding `path` (CUT and
            CycleGAN name it after the experiment, `checkpoints/<name>/latest_net_G.pth`).

    Returns:
        `out` as a Path.

    Raises:
        FileNotFoundError, CutImportError: See `generator_from_cut`; also if `out` does not end in
            `.safetensors`, is a directory or is the source file, or if the generator does not map 3 channels
            to 3 (semst translates RGB images; `generator_from_cut` still loads such a generator).
    """
    path, out = Path(path), Path(out)
    if out.suffix != ckpt.SUFFIX:
        raise CutImportError(
            f"the output {out} must end in {ckpt.SUFFIX} (semst checkpoints are safetensors files)"
        )
    if out.is_dir():
        raise CutImportError(f"the output {out} is a directory; give a file name ending in {ckpt.SUFFIX}")
    if out.exists() and path.exists() and out.resolve() == path.resolve():
        raise CutImportError(f"the output {out} is the input file; choose another name")
    state = load_cut_state_dict(path)
    arch = infer_cut_architecture(state, source=path)
    if (arch["in_channels"], arch["out_channels"]) != (3, 3):
        raise CutImportError(
            f"{path}: the generator maps {arch['in_channels']} to {arch['out_channels']} channels; semst "
            "checkpoints hold RGB generators (3 to 3). generator_from_cut() still loads it as a network."
        )
    converted = cut_to_semst_state(state, arch, source=path)
    generator_settings = {
        key: arch[key] for key in ("base_channels", "num_blocks", "downsample", "upsample", "norm")
    }
    config = ExperimentConfig.from_dict(
        {"preset": "custom", "generator": generator_settings, "multiscale": {"enabled": False}},
        source=f"the architecture of {path}",
    ).validate()
    # The checkpoint must load with Translator.from_checkpoint, which builds the generator from this config.
    from semst.translators import generator_from_config

    with torch.device("meta"):  # shapes only
        wanted = {
            key: tuple(t.shape) for key, t in generator_from_config(config.generator).state_dict().items()
        }
    if wanted != {key: tuple(t.shape) for key, t in converted.items()}:
        raise CutImportError(
            f"{path}: the converted weights do not fit the generator of the semst config "
            f"{config.generator} (a bug in semst.interop.cut)"
        )
    meta = {
        "kind": IMPORTED_KIND,
        "semst_version": semst.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config.to_dict(),
        "step": 0,
        "name": name if name is not None else path.resolve().parent.name,
        "source": {
            "format": SOURCE_FORMAT,
            "file": path.name,
            "path": str(path.resolve()),
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
            "architecture": arch,
        },
    }
    tensors = {f"translator.generator.{key}": tensor for key, tensor in converted.items()}
    written = ckpt.save_checkpoint(out, tensors, meta)
    logger.debug("converted %s (%s) to %s", path, arch["cut_netG"], written)
    return written
