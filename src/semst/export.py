"""Exporting a trained translator for deployment: ONNX and TorchScript files that need no semst to run.

>>> from semst.export import export_checkpoint
>>> export_checkpoint("runs/gta2cs", "gta2cs.onnx", format="onnx")              # or format="torchscript"

Both formats hold `DeployableTranslator`, one network with the deployment convention:

- **input** ``image``: float32 (B, 3, H, W), RGB in [0, 1], any batch size, height and width;
- **output** ``translated``: float32 (B, 3, H, W), RGB in [0, 1], the input's size.

Inside, the image is mapped to [-1, 1], padded on the bottom and right to the generator's size multiple
(4, its two stride-2 stages) and to at least 2 x 4 = 8 pixels a side, translated, cropped back and mapped to
[0, 1]. Padding mirrors the image (reflection); a side too short to mirror is replicated, exactly as
`semst.model.pad_to_multiple` (single-scale) and `semst.tiling.pad_bottom_right` (multi-scale, whose tiles
it pads) do. A multi-scale model runs the whole-image form of `semst.multiscale.inference` (SemST Eq. 4-6):
G_g on the image area-averaged to ceil(H/s) x ceil(W/s), the scale attention M_s from G_g's bottleneck,
G_l on the full-resolution image, and ``M_s * Y_l + (1 - M_s) * Y_g`` with Y_g and M_s upsampled
bilinearly to H x W.

**The exported graph does not tile.** Every image is translated in one pass, so memory grows with H x W
(about 3 KB of activations a pixel for the default generator, docs/design.md; a multi-scale model adds
G_g's pass on the downsampled image): a 2048 x 1024 image needs several GB. ``semst translate``
(`SemST.translate`) instead bounds memory with overlapping tiles; for large images either tile outside the
exported model or use semst. Because nothing is tiled, a multi-scale export equals
`semst.multiscale.inference.translate_multiscale` with a tile and a global window larger than the image,
not its default tiled result: instance norm sees the whole image, not tiles. A single-scale export equals
``SemST.translate`` without tiles (its default).

The size arithmetic (padding, the global pass's output size, the final crop) is written as tensor
operations on the input's shape, so the traced graph keeps it symbolic: one export serves every size. The
index tensors are created on the input's device, so the graph records no device of its own, and sizes meet
device tensors only in element-wise binary operations, which accept 0-dim CPU tensors: a TorchScript file
exported on the CPU is meant to run on a GPU after ``torch.jit.load(path, map_location="cuda")`` (semst's
CPU test suite does not check that). Files carry semst's version and the model's config: ONNX as
``metadata_props`` (keys ``semst_*``), TorchScript as the extra file ``semst_translator.json``
(``torch.jit.load(path, _extra_files={"semst_translator.json": ""})``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

import semst
from semst.multiscale.fusion import attention_tap

if TYPE_CHECKING:
    from semst.model import SemST

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_NAME",
    "MIN_ONNX_OPSET",
    "OUTPUT_NAME",
    "TORCHSCRIPT_EXTRA_FILE",
    "DeployableTranslator",
    "export_checkpoint",
    "export_info",
    "export_onnx",
    "export_torchscript",
]

EXPORT_FORMATS = ("onnx", "torchscript")
MIN_ONNX_OPSET = 11  # CumSum (the index arithmetic) and Resize to a computed size
INPUT_NAME = "image"
OUTPUT_NAME = "translated"
# Name of the JSON document stored inside TorchScript archives (torch.jit.save's extra files).
TORCHSCRIPT_EXTRA_FILE = "semst_translator.json"
_INPUT = "image: float32 (B, 3, H, W), RGB in [0, 1], any batch size, height and width"
_OUTPUT = "translated: float32 (B, 3, H, W), RGB in [0, 1], the input's size"
_TILING = (
    "none: one whole-image pass, memory grows with H x W (semst translate tiles to bound it); "
    "bottom/right padding by reflection (replication where a side is too short) to a multiple of {multiple} "
    "and at least {min_size} pixels a side, cropped back"
)
# torch.jit.* is marked deprecated in recent torch (FutureWarning for trace, DeprecationWarning for
# save/load); TorchScript is still the portable format that loads without Python code, so exporting
# does not repeat the warning to every user.
_JIT_DEPRECATION = r".*torch\.jit\..* is deprecated"


# --- size arithmetic that stays symbolic when traced -------------------------------------------------------
# Under torch.jit.trace and the TorchScript-based ONNX exporter, ``x.shape[d]`` is a 0-dim tensor whose
# arithmetic is recorded, so the helpers below compute with tensors only (no Python ``max``/``if`` on
# sizes, which would freeze the example's size into the graph).


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.shape[dim]`` as a 0-dim int64 tensor (while tracing it already is one, linked to the graph)."""
    size = x.shape[dim]
    return size if isinstance(size, torch.Tensor) else torch.tensor(size)


def _arange_like(x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """``arange(length)`` (int64) on ``x``'s device.

    ``torch.arange(..., device=x.device)`` would record the tracing device as a constant; ``new_ones``
    takes its device from ``x`` when the graph runs.
    """
    return x.new_ones(length, dtype=torch.long).cumsum(0) - 1  # (length,)


def _padding_indices(
    x: torch.Tensor, length: torch.Tensor, padded: torch.Tensor, mirror: torch.Tensor
) -> torch.Tensor:
    """Source index of each of ``padded`` positions along an axis of ``length`` pixels padded at its end.

    With ``mirror`` (a 0-dim bool tensor): reflection repeated as often as needed (the image, then its
    mirror image, ...), which is `semst.tiling.pad_bottom_right` and, for a pad shorter than the side,
    ``F.pad(mode="reflect")``; a side of one pixel can only repeat itself. Without: replication of the last
    pixel, ``F.pad(mode="replicate")``.
    """
    index = _arange_like(x, padded)  # (padded,)
    last = length - 1
    period = torch.clamp(2 * last, min=1)  # reflection repeats every 2 * (length - 1) pixels
    mirrored = last - (last - index % period).abs()
    replicated = torch.minimum(index, last)
    return replicated + mirror.long() * (mirrored - replicated)  # (padded,)


def _pad_bottom_right(
    x: torch.Tensor, multiple: int, min_size: int, *, mirror_each_axis: bool
) -> torch.Tensor:
    """Pads (B, C, H, W) on the bottom/right to multiples of ``multiple`` of at least ``min_size`` pixels.

    ``mirror_each_axis=False`` is `semst.model.pad_to_multiple`: reflection if both pads are shorter than
    their sides, else replication of both axes. ``True`` is `semst.tiling.pad_bottom_right` (how
    ``tiled_apply`` pads the multi-scale passes): each axis reflected as often as needed. The two agree
    whenever both pads are shorter than their sides, e.g. whenever both sides have at least 5 pixels.
    """
    height, width = _size(x, 2), _size(x, 3)
    padded_h = torch.clamp((height + multiple - 1) // multiple * multiple, min=min_size)
    padded_w = torch.clamp((width + multiple - 1) // multiple * multiple, min=min_size)
    if mirror_each_axis:
        mirror_h = mirror_w = height > 0  # always true, as a tensor
    else:
        mirror_h = mirror_w = (padded_h - height < height) & (padded_w - width < width)
    rows = _padding_indices(x, height, padded_h, mirror_h)  # (padded_h,)
    cols = _padding_indices(x, width, padded_w, mirror_w)  # (padded_w,)
    return x.index_select(2, rows).index_select(3, cols)  # (B, C, padded_h, padded_w)


def _area_average_axis(x: torch.Tensor, dim: int, scale: int) -> torch.Tensor:
    """Area averaging of axis ``dim`` of ``x`` from L to ceil(L / scale) pixels, as ``mode="area"``.

    ``F.interpolate(mode="area")`` is adaptive average pooling: output pixel i averages inputs
    floor(i L / n) .. ceil((i + 1) L / n) - 1 (n = ceil(L / scale)), at most ``scale + 1`` of them. ONNX has
    no adaptive pooling for sizes that do not divide, so the bins are summed with ``scale + 1`` gathers.
    """
    length = _size(x, dim)
    count_out = (length + scale - 1) // scale
    index = _arange_like(x, count_out)  # (n,)
    start = index * length // count_out
    stop = ((index + 1) * length + count_out - 1) // count_out
    count = stop - start  # (n,) pixels per bin, 1 .. scale + 1
    shape = [-1] + [1] * (x.ndim - 1 - dim)  # broadcasts (n,) along ``dim``
    total = x.index_select(dim, start)  # (..., n, ...): every bin has at least one pixel
    for k in range(1, scale + 1):
        taken = x.index_select(dim, torch.minimum(start + k, length - 1))  # (..., n, ...)
        total = total + taken * (count > k).to(x.dtype).reshape(shape)
    return total / count.to(x.dtype).reshape(shape)


def _area_downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """T of SemST Eq. 4 for a whole (B, C, H, W) image: (B, C, ceil(H / scale), ceil(W / scale)), equal to
    `semst.multiscale.inference.downsample` (area interpolation)."""
    if scale == 1:
        return x
    return _area_average_axis(_area_average_axis(x, 3, scale), 2, scale)


class DeployableTranslator(nn.Module):
    """A SemST translator as one network for deployment: RGB (B, 3, H, W) in [0, 1] -> the same in [0, 1].

    Give ``generator`` for a single-scale model, or ``generator_global``, ``generator_local``, ``attention``
    and ``scale`` for a multi-scale one; `from_model` does this for a `semst.model.SemST`. The networks are
    used as they are (not copied); call ``eval()`` as for any module. See the module docstring for the
    padding and for what is not done here (tiling).

    Args:
        generator: G of a single-scale model.
        generator_global: G_g of a multi-scale model, applied to the image downsampled by ``scale``.
        generator_local: G_l, applied to the full-resolution image.
        attention: the scale-attention head, reading G_g's bottleneck
            (`semst.multiscale.fusion.attention_tap`).
        scale: the multi-scale model's downsampling factor s (``multiscale.scale``).

    Attributes:
        multiscale: whether this is the multi-scale form.
        size_multiple: the generators' size multiple (4); inputs are padded to it internally.
        min_size: the smallest padded side, 2 * ``size_multiple``.
    """

    def __init__(
        self,
        generator: nn.Module | None = None,
        *,
        generator_global: nn.Module | None = None,
        generator_local: nn.Module | None = None,
        attention: nn.Module | None = None,
        scale: int = 1,
    ) -> None:
        super().__init__()
        multiscale_parts = (generator_global, generator_local, attention)
        if generator is not None and all(part is None for part in multiscale_parts):
            self.multiscale = False
            self.generator = generator
            self.size_multiple = int(generator.size_multiple)
        elif generator is None and all(part is not None for part in multiscale_parts):
            if scale < 1:
                raise ValueError(f"DeployableTranslator: scale must be >= 1, got {scale}")
            self.multiscale = True
            self.generator_global = generator_global
            self.generator_local = generator_local
            self.attention = attention
            self.scale = int(scale)
            self.tap = attention_tap(generator_global)
            self.size_multiple = max(int(generator_global.size_multiple), int(generator_local.size_multiple))
        else:
            raise ValueError(
                "DeployableTranslator takes either `generator` (single-scale) or all of `generator_global`, "
                "`generator_local` and `attention` (multi-scale)"
            )
        self.min_size = 2 * self.size_multiple

    @classmethod
    def from_model(cls, model: SemST) -> DeployableTranslator:
        """The translation networks of ``model`` (shared, not copied) in the deployment form."""
        if model.multiscale:
            return cls(
                generator_global=model.generator_global,
                generator_local=model.generator_local,
                attention=model.attention,
                scale=model.config.multiscale.scale,
            )
        return cls(model.generator)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translates (B, 3, H, W) RGB in [0, 1], any H and W; returns (B, 3, H, W) RGB in [0, 1]."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"DeployableTranslator expects a (B, 3, H, W) batch, got shape {tuple(image.shape)}"
            )
        x = image * 2 - 1  # (B, 3, H, W) in [-1, 1], the generators' range
        translated = (
            self._fused(x) if self.multiscale else self._whole(self.generator, x, mirror_each_axis=False)
        )
        return (translated + 1) / 2

    def _whole(self, generator: nn.Module, x: torch.Tensor, *, mirror_each_axis: bool) -> torch.Tensor:
        """``generator`` on the padded image, cropped back to (B, 3, H, W)."""
        height, width = x.shape[-2], x.shape[-1]
        padded = _pad_bottom_right(x, self.size_multiple, self.min_size, mirror_each_axis=mirror_each_axis)
        return generator(padded)[..., :height, :width]

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-scale translation of (B, 3, H, W) in [-1, 1] without tiles (Eq. 6 over the whole image)."""
        height, width = x.shape[-2], x.shape[-1]
        # Global pass: Y_g and M_s on the downsampled image, as inference.global_prediction computes them.
        low = _area_downsample(x, self.scale)  # (B, 3, h, w), h = ceil(H / s)
        low_h, low_w = low.shape[-2], low.shape[-1]
        padded = _pad_bottom_right(low, self.size_multiple, self.min_size, mirror_each_axis=True)
        global_out, features = self.generator_global.forward_with_taps(padded, [self.tap])  # (B, 3, ph, pw)
        weights = self.attention(features[self.tap])  # (B, 1, ph / 4, pw / 4)
        weights = F.interpolate(weights, size=global_out.shape[-2:], mode="bilinear", align_corners=False)
        global_maps = torch.cat([global_out, weights.to(global_out.dtype)], dim=1)[..., :low_h, :low_w]
        up = F.interpolate(
            global_maps, size=(height, width), mode="bilinear", align_corners=False
        )  # (B, 4, H, W)
        # Local pass on the full-resolution image, then Eq. 6.
        local = self._whole(self.generator_local, x, mirror_each_axis=True)  # (B, 3, H, W)
        weights = up[:, 3:].clamp(0, 1)  # M_s, (B, 1, H, W)
        return weights * local + (1 - weights) * up[:, :3]


def export_info(model: SemST) -> dict[str, Any]:
    """What an exported file records about its model: semst's version, a one-line summary, the full config,
    the input/output convention, the padding and tiling, and the source checkpoint and step (if known)."""
    config = model.config
    gen = config.generator
    if model.multiscale:
        kind = (
            f"multi-scale (G_g on the image downsampled {config.multiscale.scale}x, G_l at full resolution, "
            "fused by scale attention)"
        )
    else:
        kind = "single-scale (one generator)"
    summary = (
        f"semst {semst.__version__} translator, preset {config.preset}, {kind}; "
        f"{gen.architecture} generator: "
        f"{gen.num_blocks} residual blocks, {gen.base_channels} channels, {gen.downsample}/{gen.upsample} "
        f"resampling, norm {gen.norm}"
    )
    multiple = DeployableTranslator.from_model(model).size_multiple
    checkpoint_path = getattr(model, "checkpoint_path", None)
    return {
        "semst_version": semst.__version__,
        "torch_version": torch.__version__,
        "summary": summary,
        "multiscale": bool(model.multiscale),
        "scale": config.multiscale.scale if model.multiscale else 1,
        "size_multiple": multiple,
        "input": _INPUT,
        "output": _OUTPUT,
        "tiling": _TILING.format(multiple=multiple, min_size=2 * multiple),
        "checkpoint": str(checkpoint_path) if checkpoint_path is not None else None,
        "step": getattr(model, "step", None),
        "config": config.to_dict(),
    }


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[str]:
    """Yields a temporary file name next to ``path``; renamed over ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp_name
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silences the warnings that exporting triggers by design.

    - torch.jit's deprecation (see ``_JIT_DEPRECATION``);
    - TracerWarnings: they come from shape checks that raise on bad input (channel counts, the instance
      norm's "more than one pixel"), not from the computation; the sizes that shape the computation are
      kept symbolic (tests/test_export.py runs the exported files at sizes other than the example's);
    - the ONNX exporter's notes that instance norm is exported with ``train=True`` (semst's instance norm
      keeps no running statistics, so it always normalises with the input's statistics, as in eval) and
      that slices with dynamic bounds are not constant-folded;
    - the deprecation of the TorchScript-based ONNX exporter, chosen on purpose: the torch.export-based one
      needs the extra package onnxscript.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*operator 'instance_norm' is set to train=True")
        warnings.filterwarnings("ignore", message=r"Constant folding - Only steps=1 can be constant folded")
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings(
            "ignore",
            message=r"The feature will be removed",
            module=r"torch\.onnx\..*",
            category=DeprecationWarning,
        )
        yield


def _export_copy(model: SemST) -> DeployableTranslator:
    """A CPU, eval-mode copy of ``model``'s translator (the caller's model is neither moved nor switched)."""
    translator = copy.deepcopy(DeployableTranslator.from_model(model))
    return translator.to("cpu", torch.float32).eval()


def _example_input(example_size: tuple[int, int]) -> torch.Tensor:
    if len(example_size) != 2:
        raise ValueError(f"example_size must be two positive sides (H, W), got {example_size}")
    height, width = (int(side) for side in example_size)
    if height < 1 or width < 1:
        raise ValueError(f"example_size must be two positive sides (H, W), got {example_size}")
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, height, width, generator=generator)  # (1, 3, H, W) in [0, 1]


def export_torchscript(model: SemST, path: str | Path, *, example_size: tuple[int, int] = (256, 256)) -> Path:
    """Writes ``model``'s `DeployableTranslator` as a TorchScript archive (``torch.jit.trace``), atomically.

    The archive runs on any (B, 3, H, W) input: the size arithmetic is traced symbolically and its index
    tensors follow the input's device (see the module docstring). What `export_info` returns (semst's version,
    a summary, the config, ...) is stored as the JSON extra file ``semst_translator.json``.

    Args:
        model: a `semst.model.SemST` (single- or multi-scale); it is not modified.
        path: the file to write (conventionally ``.pt``).
        example_size: (H, W) of the input traced with; any size works.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    translator = _export_copy(model)
    example = _example_input(example_size)
    info = export_info(model)
    with _quiet_export(), torch.no_grad():
        traced = torch.jit.trace(translator, (example,), check_trace=False)
        with _atomic_output(path) as tmp_name:
            torch.jit.save(traced, tmp_name, _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(info)})
    return path


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "exporting to ONNX needs the optional package onnx: pip install 'semst[onnx]' "
            "(which also installs onnxruntime, to run the exported model)"
        ) from exc
    return onnx


def export_onnx(
    model: SemST, path: str | Path, *, opset: int = 17, example_size: tuple[int, int] = (256, 256)
) -> Path:
    """Writes ``model``'s `DeployableTranslator` as an ONNX model, atomically.

    Input ``image`` and output ``translated`` have dynamic axes ``batch``, ``height`` and ``width``. Uses
    PyTorch's TorchScript-based exporter (``dynamo=False``), which needs no extra package and keeps the
    traced size arithmetic symbolic. What `export_info` returns is stored as ``metadata_props`` (keys
    ``semst_version``, ``semst_summary``, ``semst_config``, ...: each key of `export_info` prefixed with
    ``semst_`` unless it has the prefix; values that are not strings as JSON; None values left out) and the
    summary as the model's ``doc_string``.

    Args:
        model: a `semst.model.SemST` (single- or multi-scale); it is not modified.
        path: the file to write (conventionally ``.onnx``).
        opset: ONNX opset version, at least `MIN_ONNX_OPSET` (11).
        example_size: (H, W) of the input traced with; any size works.

    Returns:
        ``path`` as a Path.

    Raises:
        ImportError: The optional package onnx is not installed.
        ValueError: For an opset older than `MIN_ONNX_OPSET`.
    """
    onnx = _import_onnx()
    if opset < MIN_ONNX_OPSET:
        raise ValueError(
            f"export_onnx: opset {opset} is too old; the translator needs opset {MIN_ONNX_OPSET} or newer "
            "(CumSum and Resize to a computed size for the size arithmetic; 17 is the tested default)"
        )
    path = Path(path)
    translator = _export_copy(model)
    example = _example_input(example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with _atomic_output(path) as tmp_name:
        with _quiet_export(), torch.no_grad():
            torch.onnx.export(
                translator,
                (example,),
                tmp_name,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(tmp_name)
        info = export_info(model)
        proto.doc_string = info["summary"]
        for key, value in info.items():
            if value is None:
                continue
            entry = proto.metadata_props.add()
            entry.key = key if key.startswith("semst_") else f"semst_{key}"
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp_name)
    return path


def export_checkpoint(
    checkpoint_or_run_dir: str | Path,
    out: str | Path,
    *,
    format: str,
    opset: int = 17,
    example_size: tuple[int, int] = (256, 256),
) -> Path:
    """Exports the translator of a semst checkpoint (a file, or a run directory's latest) to ``out``.

    Args:
        checkpoint_or_run_dir: what `semst.model.SemST.from_checkpoint` accepts.
        out: the file to write.
        format: one of `EXPORT_FORMATS`: "onnx" or "torchscript".
        opset: ONNX opset (ignored for TorchScript).
        example_size: (H, W) of the traced example input; any size works.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: For an unknown format.
        ImportError: For "onnx" without the optional package onnx.
        semst.checkpoint.CheckpointError: The checkpoint is missing, unreadable or not a translator.
    """
    from semst.model import SemST

    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if format == "onnx":
        _import_onnx()  # fail before loading the checkpoint
    model = SemST.from_checkpoint(checkpoint_or_run_dir, device="cpu")
    if format == "onnx":
        return export_onnx(model, out, opset=opset, example_size=example_size)
    return export_torchscript(model, out, example_size=example_size)
