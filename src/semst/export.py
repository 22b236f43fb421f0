"""Exporting a trained translator for deployment: ONNX and TorchScript files that need no semst to run.

>>> from semst.export import export_checkpoint
>>> export_checkpoint("runs/gta2cs", "gta2cs.onnx", format="onnx")              # or format="torchscript"

Both formats hold `DeployableTranslator`, one network with the deployment convention:

- **input** ``image``: float32 (B, 3, H, W), RGB in [0, 1], any batch size, height and width;
- **output** ``translated``: float32 (B, 3, H, W), RGB in [0, 1], the input's size.

Inside, the image is mapped to [-1, 1] and translated by the translator's own ``forward``
(`semst.translators.Translator.forward`), the same code path that ``semst translate`` tiles and that training
runs on crops: padded on the bottom and right to the generator's size multiple by
`semst.networks.padding.pad_to_multiple`, translated, cropped back and mapped to [0, 1]. A multi-scale model
runs SemST Eq. 4-6 on the whole image: G_g on the image downsampled by T, the scale attention M_s from
G_g's bottleneck, G_l on the full-resolution image, and ``M_s * Y_l + (1 - M_s) * Y_g`` with Y_g and M_s
upsampled by the scale factor.

**The exported graph does not tile.** Every image is translated in one pass, so memory grows with H x W
(about 3 KB of activations a pixel for the default generator, docs/design.md; a multi-scale model adds
G_g's pass on the downsampled image): a 2048 x 1024 image needs several GB. ``semst translate``
(`Translator.translate`) instead bounds memory with overlapping tiles; for large images either tile outside
the exported model or use semst. An exported model equals ``Translator.translate`` with a tiling whose tiles
and global window are larger than the image (``Tiling(tile=None, global_window=None)``), not the default
tiled result: instance norm sees the whole image, not tiles. A single-scale export equals
``Translator.translate`` with its default tiling (whole images).

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
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import semst
from semst.files import atomic_path

if TYPE_CHECKING:
    from semst.translators import Translator

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
MIN_ONNX_OPSET = 11  # CumSum (the padding's index arithmetic) and Resize to a computed size
INPUT_NAME = "image"
OUTPUT_NAME = "translated"
# Name of the JSON document stored inside TorchScript archives (torch.jit.save's extra files).
TORCHSCRIPT_EXTRA_FILE = "semst_translator.json"
_INPUT = "image: float32 (B, 3, H, W), RGB in [0, 1], any batch size, height and width"
_OUTPUT = "translated: float32 (B, 3, H, W), RGB in [0, 1], the input's size"
_TILING = (
    "none: one whole-image pass, memory grows with H x W (semst translate tiles to bound it); "
    "bottom/right padding by repeated reflection to a multiple of {multiple} and at least {min_size} pixels "
    "a side, cropped back"
)
# torch.jit.* is marked deprecated in recent torch (FutureWarning for trace, DeprecationWarning for
# save/load); TorchScript is still the portable format that loads without Python code, so exporting
# does not repeat the warning to every user.
_JIT_DEPRECATION = r".*torch\.jit\..* is deprecated"


class DeployableTranslator(nn.Module):
    """A translator as one network for deployment: RGB (B, 3, H, W) in [0, 1] -> the same in [0, 1].

    It wraps (does not copy) a `semst.translators.Translator` and runs its ``forward``; call ``eval()`` as
    for any module.
    """

    def __init__(self, translator: Translator) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translates (B, 3, H, W) RGB in [0, 1], any H and W; returns (B, 3, H, W) RGB in [0, 1]."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"DeployableTranslator expects a (B, 3, H, W) batch, got shape {tuple(image.shape)}"
            )
        return (self.translator(image * 2 - 1) + 1) / 2


def export_info(translator: Translator) -> dict[str, Any]:
    """What an exported file records about its translator: semst's version, a one-line summary, the full
    config, the input/output convention, the padding and tiling, and the source checkpoint and step (if
    known)."""
    multiple = translator.size_multiple
    return {
        "semst_version": semst.__version__,
        "torch_version": torch.__version__,
        "summary": f"semst {semst.__version__} {translator.describe()}",
        "multiscale": translator.kind == "multi-scale",
        "scale": translator.scale,
        "size_multiple": multiple,
        "input": _INPUT,
        "output": _OUTPUT,
        "tiling": _TILING.format(multiple=multiple, min_size=2 * multiple),
        "checkpoint": str(translator.checkpoint_path) if translator.checkpoint_path is not None else None,
        "step": translator.step,
        "weights": translator.weights,
        "config": translator.config.to_dict(),
    }


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


def _export_copy(translator: Translator) -> DeployableTranslator:
    """A CPU, eval-mode copy of ``translator`` for deployment (the caller's is neither moved nor switched)."""
    deployable = DeployableTranslator(copy.deepcopy(translator))
    return deployable.to("cpu", torch.float32).eval()


def _example_input(example_size: tuple[int, int]) -> torch.Tensor:
    if len(example_size) != 2:
        raise ValueError(f"example_size must be two positive sides (H, W), got {example_size}")
    height, width = (int(side) for side in example_size)
    if height < 1 or width < 1:
        raise ValueError(f"example_size must be two positive sides (H, W), got {example_size}")
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, height, width, generator=generator)  # (1, 3, H, W) in [0, 1]


def export_torchscript(
    translator: Translator, path: str | Path, *, example_size: tuple[int, int] = (256, 256)
) -> Path:
    """Writes ``translator`` as a `DeployableTranslator` TorchScript archive (``torch.jit.trace``), atomically.

    The archive runs on any (B, 3, H, W) input: the size arithmetic is traced symbolically and its index
    tensors follow the input's device (see the module docstring). What `export_info` returns (semst's version,
    a summary, the config, ...) is stored as the JSON extra file ``semst_translator.json``.

    Args:
        translator: a `semst.translators.Translator` (single- or multi-scale); it is not modified.
        path: the file to write (conventionally ``.pt``).
        example_size: (H, W) of the input traced with; any size works.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    deployable = _export_copy(translator)
    example = _example_input(example_size)
    info = export_info(translator)
    with _quiet_export(), torch.no_grad():
        traced = torch.jit.trace(deployable, (example,), check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(info)})
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
    translator: Translator, path: str | Path, *, opset: int = 17, example_size: tuple[int, int] = (256, 256)
) -> Path:
    """Writes ``translator`` as a `DeployableTranslator` ONNX model, atomically.

    Input ``image`` and output ``translated`` have dynamic axes ``batch``, ``height`` and ``width``. Uses
    PyTorch's TorchScript-based exporter (``dynamo=False``), which needs no extra package and keeps the
    traced size arithmetic symbolic. What `export_info` returns is stored as ``metadata_props`` (keys
    ``semst_version``, ``semst_summary``, ``semst_config``, ...: each key of `export_info` prefixed with
    ``semst_`` unless it has the prefix; values that are not strings as JSON; None values left out) and the
    summary as the model's ``doc_string``.

    Args:
        translator: a `semst.translators.Translator` (single- or multi-scale); it is not modified.
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
    deployable = _export_copy(translator)
    example = _example_input(example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path) as tmp:
        with _quiet_export(), torch.no_grad():
            torch.onnx.export(
                deployable,
                (example,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        info = export_info(translator)
        proto.doc_string = info["summary"]
        for key, value in info.items():
            if value is None:
                continue
            entry = proto.metadata_props.add()
            entry.key = key if key.startswith("semst_") else f"semst_{key}"
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return path


def export_checkpoint(
    checkpoint_or_run_dir: str | Path,
    out: str | Path,
    *,
    format: str,
    opset: int = 17,
    example_size: tuple[int, int] = (256, 256),
    weights: str = "average",
) -> Path:
    """Exports the translator of a semst checkpoint (a file, or a run directory's latest) to ``out``.

    Args:
        checkpoint_or_run_dir: what `semst.translators.Translator.from_checkpoint` accepts.
        out: the file to write.
        format: one of `EXPORT_FORMATS`: "onnx" or "torchscript".
        opset: ONNX opset (ignored for TorchScript).
        example_size: (H, W) of the traced example input; any size works.
        weights: "average" (the run's weight average where it kept one) or "last" (the last step's).

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: For an unknown format.
        ImportError: For "onnx" without the optional package onnx.
        semst.checkpoint.CheckpointError: The checkpoint is missing, unreadable or not a translator.
    """
    from semst.translators import Translator

    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if format == "onnx":
        _import_onnx()  # fail before loading the checkpoint
    translator = Translator.from_checkpoint(checkpoint_or_run_dir, device="cpu", weights=weights)
    if format == "onnx":
        return export_onnx(translator, out, opset=opset, example_size=example_size)
    return export_torchscript(translator, out, example_size=example_size)
