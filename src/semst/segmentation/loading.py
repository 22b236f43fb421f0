"""Segmenter files: semst segmenter checkpoints, TorchScript archives and ONNX models, loaded without pickle.

The semantic-distortion evaluation (SemST, section 4) runs a target-domain segmenter on translated images.
:func:`load_segmenter` accepts three kinds of file and never unpickles anything:

- a semst segmenter checkpoint (``.safetensors`` with ``kind: "segmenter"`` metadata, written by
  :func:`save_segmenter` / :func:`~semst.segmentation.train.train_segmenter`): the network is rebuilt from
  the metadata and its weights are read as raw tensors;
- a TorchScript archive (``torch.jit.save``; :func:`export_segmenter_torchscript` writes one from a
  checkpoint): loaded with ``torch.jit.load``, which rebuilds compiled code and tensors, not arbitrary
  Python objects;
- an ONNX model (``.onnx``), run with the optional package ``onnxruntime``.

A plain ``torch.save`` file or any other pickle is refused: unpickling a file from the internet can run code.
"""

from __future__ import annotations

import json
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from semst.checkpoint import (
    CheckpointError,
    check_shapes,
    load_module_state,
    load_tensors,
    read_metadata,
    save_checkpoint,
    tensor_shapes,
)
from semst.evaluation.segmentation import unwrap_logits
from semst.files import atomic_path
from semst.segmentation.network import SegmentationUNet

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "Segmenter",
    "export_segmenter_torchscript",
    "load_segmenter",
    "load_segmenter_network",
    "save_segmenter",
]

KIND = "segmenter"
PREFIX = "segmenter."
NORMALIZATIONS = ("none", "imagenet")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Name of the JSON file that export_segmenter_torchscript stores in the TorchScript archive (an extra file).
_EXTRA_FILE = "semst_segmenter.json"
_ARCHITECTURES = {"unet": SegmentationUNet}
# Recent torch versions mark torch.jit.* deprecated (in favour of torch.export); TorchScript is still the
# portable format that loads without running Python code, so semst keeps it and does not repeat the warning.
_JIT_DEPRECATION = r".*torch\.jit\..* is deprecated"


def save_segmenter(
    network: SegmentationUNet,
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``network`` as a semst segmenter checkpoint, atomically (`semst.checkpoint.save_checkpoint`).

    Tensors are named ``segmenter.<parameter>``; the metadata holds ``kind: "segmenter"``, the
    ``architecture`` (network name and constructor arguments), ``num_classes``, ``class_names`` and the
    entries of ``extra_meta`` (training settings, validation scores).
    """
    if class_names is not None and len(class_names) != network.num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but the network has {network.num_classes}"
        )
    meta = {
        **(extra_meta or {}),
        "kind": KIND,
        "architecture": {"name": "unet", **network.architecture()},
        "num_classes": network.num_classes,
        "class_names": list(class_names) if class_names is not None else None,
        "input": "RGB float32 (B, 3, H, W) in [0, 1], normalised inside the network",
    }
    tensors = {PREFIX + name: t for name, t in network.state_dict().items()}
    return save_checkpoint(path, tensors, meta)


def load_segmenter_network(
    path: str | Path, *, device: str = "cpu"
) -> tuple[SegmentationUNet, dict[str, Any]]:
    """Rebuilds the network of a semst segmenter checkpoint, in eval mode; returns it and the metadata.

    Raises:
        CheckpointError: The file is not a semst checkpoint, not a segmenter, or its weights do not fit.
    """
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("kind") != KIND:
        kind = meta.get("kind")
        what = f"of kind {kind!r}" if kind else "of a translation model"
        raise CheckpointError(f"{path} is a semst checkpoint {what}, not a segmenter checkpoint")
    architecture = meta.get("architecture")
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{path}: the segmenter checkpoint describes no architecture")
    architecture = dict(architecture)
    name = architecture.pop("name", None)
    if not isinstance(name, str) or name not in _ARCHITECTURES:
        raise CheckpointError(
            f"{path}: unknown segmenter architecture {name!r}; this semst knows {sorted(_ARCHITECTURES)}"
        )
    num_classes = meta.get("num_classes")
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or num_classes != architecture.get("num_classes")
    ):
        raise CheckpointError(
            f"{path}: the segmenter's num_classes {num_classes!r} does not match its architecture {architecture}"
        )

    def build() -> SegmentationUNet:
        try:
            return _ARCHITECTURES[name](**architecture)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: the segmenter architecture {meta.get('architecture')} is invalid: {exc}"
            ) from exc

    # Compare the header's tensor shapes with the architecture's before allocating anything.
    with torch.device("meta"):
        expected = {k: tuple(t.shape) for k, t in build().state_dict().items()}
    found = {k[len(PREFIX) :]: shape for k, shape in tensor_shapes(path, prefixes=[PREFIX]).items()}
    check_shapes(expected, found, what="segmenter", path=path)
    network = build()
    state = {k[len(PREFIX) :]: t for k, t in load_tensors(path, prefixes=[PREFIX]).items()}
    load_module_state(network, state, what="segmenter", path=path)
    return network.to(device).eval(), meta


def export_segmenter_torchscript(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Compiles a semst segmenter checkpoint to a TorchScript archive (``torch.jit.script``).

    Scripting (not tracing) keeps the padding logic, so the archive accepts any input size. The class count
    and names are stored in the archive as the extra file ``semst_segmenter.json``, which
    :func:`load_segmenter` reads back. The file is written atomically.

    Returns:
        ``out_path``.
    """
    network, meta = load_segmenter_network(checkpoint_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=DeprecationWarning)
        scripted = torch.jit.script(network)
    info = {
        "num_classes": meta["num_classes"],
        "class_names": meta.get("class_names"),
        "architecture": meta["architecture"],
        "source": str(checkpoint_path),
        "input": meta.get("input"),
    }
    out_path = Path(out_path)
    with atomic_path(out_path) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=DeprecationWarning)
        torch.jit.save(scripted, str(temporary), _extra_files={_EXTRA_FILE: json.dumps(info)})
    return out_path


class Segmenter:
    """A loaded segmenter: ``segmenter(x)`` maps RGB (B, 3, H, W) in [0, 1] to logits (B, C, h, w).

    Normalisation (if any) is applied before the model; the model's output is returned as is, on the
    segmenter's device. semst networks return logits at the input size; user models may return another size
    (for example FCN-style 1/8 outputs), which callers resize as they need.

    Attributes:
        num_classes: Number of classes C, or None where the file does not say.
        class_names: Class names, or None.
        device: Where the model runs.
        source: A description of the file, for messages.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], Any],
        *,
        num_classes: int | None,
        class_names: Sequence[str] | None,
        device: torch.device,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        source: str,
    ) -> None:
        self.model = model
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.device = device
        self.source = source
        self._mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) if mean else None
        self._std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) if std else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Segments a batch.

        Args:
            x: RGB images (B, 3, H, W), float in [0, 1].

        Returns:
            Logits (B, C, h, w) on ``self.device``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"segmenter {self.source} expects float RGB images (B, 3, H, W), got {shape}")
        x = x.to(self.device, torch.float32)
        if self._mean is not None and self._std is not None:
            x = (x - self._mean) / self._std
        with torch.no_grad():
            out = unwrap_logits(self.model(x), f"segmenter {self.source}")
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != x.shape[0]:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"segmenter {self.source} returned {shape} for input {list(x.shape)}; "
                f"expected logits (B, C, h, w)"
            )
        if self.num_classes is not None and out.shape[1] != self.num_classes:
            raise ValueError(
                f"segmenter {self.source} returned {out.shape[1]} channels "
                f"but declares {self.num_classes} classes"
            )
        return out


def _normalization(
    normalize: str, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalize={normalize!r}; expected one of {NORMALIZATIONS} (or mean= and std=)"
        )
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None and std is not None:
        if normalize != "none":
            raise ValueError(
                f"normalize={normalize!r} and an explicit mean/std contradict each other; give one"
            )
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each (RGB), std > 0; got mean={mean}, std={std}")
        return mean, std
    if normalize == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    return None, None


def _is_torchscript(path: Path) -> bool:
    """True for a ``torch.jit.save`` archive, a zip with compiled code (``torch.save`` zips hold data)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def _load_onnx(path: Path, device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor], int | None]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"{path} is an ONNX model; running it needs the optional package onnxruntime: "
            f"pip install onnxruntime (or onnxruntime-gpu)"
        ) from exc
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own error types for invalid models
        raise CheckpointError(f"{path} is not a valid ONNX model: {exc}") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise CheckpointError(f"{path}: expected an ONNX model with one image input, it has {len(inputs)}")
    input_name = inputs[0].name
    names = [o.name for o in outputs]
    index = names.index("out") if "out" in names else 0
    channels = outputs[index].shape[1] if len(outputs[index].shape) == 4 else None

    def run(x: torch.Tensor) -> torch.Tensor:
        result = session.run([names[index]], {input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(result).to(device)

    return run, channels if isinstance(channels, int) else None


def load_segmenter(
    path: str | Path,
    *,
    device: str = "cpu",
    normalize: str = "none",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Segmenter:
    """Loads a segmenter from a semst checkpoint, a TorchScript archive or an ONNX model, never unpickling.

    Args:
        path: The segmenter file.
        device: Torch device to run on.
        normalize: What the model expects: "none" (RGB in [0, 1], as semst segmenters, which normalise
            inside the network) or "imagenet" (``(x - mean) / std`` with ImageNet statistics applied first).
        mean: Explicit per-channel mean (3 values, RGB in [0, 1] units), with ``std``; replaces
            ``normalize``.
        std: Explicit per-channel standard deviation, with ``mean``.

    Returns:
        The segmenter.

    Raises:
        CheckpointError: The file is missing, is a pickle or ``torch.save`` file, or is not a valid model.
        ImportError: An ONNX model without onnxruntime installed.
        ValueError: Contradictory normalisation arguments.
    """
    path = Path(path)
    norm_mean, norm_std = _normalization(normalize, mean, std)
    torch_device = torch.device(device)
    if not path.is_file():
        raise CheckpointError(
            f"segmenter {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    with open(path, "rb") as handle:
        head = handle.read(16)

    if head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0:
        network, meta = load_segmenter_network(path, device=device)
        if norm_mean is not None:
            raise ValueError(
                f"{path} is a semst segmenter, which normalises inside the network; load it with "
                f"normalize='none' and no mean/std"
            )
        return Segmenter(
            network,
            num_classes=meta["num_classes"],
            class_names=meta.get("class_names"),
            device=torch_device,
            mean=None,
            std=None,
            source=str(path),
        )
    if head.startswith(b"PK\x03\x04"):
        return _load_torchscript(path, torch_device, norm_mean, norm_std)
    if path.suffix.lower() == ".onnx":
        run, channels = _load_onnx(path, torch_device)
        return Segmenter(
            run,
            num_classes=channels,
            class_names=None,
            device=torch_device,
            mean=norm_mean,
            std=norm_std,
            source=str(path),
        )
    if head[:1] == b"\x80":
        what = "a Python pickle (torch.save with the legacy format, .pkl)"
    elif not head:
        what = "empty"
    else:
        what = "not a semst segmenter checkpoint, TorchScript archive (zip) or ONNX model (.onnx)"
    raise CheckpointError(
        f"{path} is {what}; semst loads segmenters only from those three formats and never unpickles files, "
        f"since a pickle can run code"
    )


def _load_torchscript(
    path: Path,
    device: torch.device,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> Segmenter:
    """A TorchScript archive (never a `torch.save` zip); one that semst exported carries its classes."""
    if not _is_torchscript(path):
        raise CheckpointError(
            f"{path} is a torch.save file (a pickle in a zip archive); semst never unpickles files, "
            f"since a pickle can run code. Export the model with torch.jit.script/trace + "
            f"torch.jit.save, or to ONNX, and load that file"
        )
    extra = {_EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError subclasses for damaged archives
        raise CheckpointError(f"{path} is not a loadable TorchScript archive: {exc}") from exc
    module.eval()
    info = json.loads(extra[_EXTRA_FILE]) if extra[_EXTRA_FILE] else {}
    if info and mean is not None:
        raise ValueError(
            f"{path} is an exported semst segmenter, which normalises inside the network; load it with "
            f"normalize='none' and no mean/std"
        )
    return Segmenter(
        module,
        num_classes=info.get("num_classes"),
        class_names=info.get("class_names"),
        device=device,
        mean=mean,
        std=std,
        source=str(path),
    )
