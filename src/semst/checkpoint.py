"""Safe, self-describing checkpoint files: safetensors weights plus the resolved config as JSON metadata.

A semst checkpoint is one ``.safetensors`` file. Its tensors are named ``<group>.<name>`` (for example
``generator.stem.1.weight``, ``optimizer.generator.state.3.exp_avg``, ``rng.torch``); its header metadata
holds ``format`` (``"semst-checkpoint"``), ``format_version`` and ``meta``, a JSON document with the
resolved experiment config, the step, the optimizer hyper-parameters and everything else that is not a
tensor. Loading parses only this JSON and raw tensor bytes: nothing is ever unpickled, so a file from an
untrusted source cannot run code. Writes go to a temporary file that is renamed over the destination only
when it is complete, so a crash mid-write never damages the previous checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from semst.files import atomic_path

FORMAT = "semst-checkpoint"
FORMAT_VERSION = 2  # 2: networks named by the module tree (``translator.generator.*``); 1: semst 0.1
SUFFIX = ".safetensors"
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# Bytes per element of the safetensors dtypes PyTorch reads.
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


class CheckpointError(ValueError):
    """The file is missing, is not a semst checkpoint, is damaged, or does not fit the model."""


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Atomically write ``tensors`` and the JSON-serialisable ``meta`` to ``path``.

    The write goes through :func:`semst.files.atomic_path`, so the file gets the permissions of a plain
    ``open()`` (``0o666`` minus the umask) and an interrupted write leaves any previous file intact. Tensors
    are copied to contiguous CPU memory (shared storage is not allowed by safetensors).

    Raises:
        OSError: The file could not be written (a full disk, say); its file name is ``path``.
    """
    path = Path(path)
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "meta": json.dumps(meta)}
    with atomic_path(path) as temporary:
        try:
            save_file(cpu, str(temporary), metadata=header)
        except SafetensorError as exc:
            # safetensors reports a full disk as its own error, with the Rust I/O error's number in the text.
            number = re.search(r"(?:code: |os error )(\d+)", str(exc))
            if number is None:
                raise OSError(f"{path}: the checkpoint could not be written: {exc}") from exc
            code = int(number.group(1))
            raise OSError(code, os.strerror(code), str(path)) from exc
        _sort_header(temporary)
    return path


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header in place with its keys sorted.

    safetensors writes the header from hash maps, whose order changes from one process (and one call) to
    the next, so the same tensors and metadata gave files with other bytes and other SHA-256 digests. The
    sorted header has the same length (the same compact JSON, keys in another order) and the same offsets,
    so the tensor data are untouched; where the re-serialised header would have another length (other
    escapes), the file is left as is.
    """
    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        # safetensors pads the header with spaces to 8-byte alignment
        stripped = handle.read(length).rstrip(b" ")
        document = json.loads(stripped)
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(body) != len(stripped):
            return
        handle.seek(8)
        handle.write(body + b" " * (length - len(body)))


def _describe_foreign(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return (
            "it is a zip archive, as PyTorch's torch.save writes (.pt/.pth); semst never unpickles such files"
        )
    if head[:1] == b"\x80":
        return "it is a Python pickle (.pkl/.pth); semst never unpickles files, since a pickle can run code"
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file (Keras?)"
    return "it does not start with a safetensors header"


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Validate that ``path`` is a semst checkpoint and return its ``meta`` dict (no tensors are read)."""
    return read_header(path)[1]


def read_header(path: str | Path) -> tuple[int, dict[str, Any]]:
    """Validate that ``path`` is a semst checkpoint; return its format version and ``meta`` dict.

    Every part of the header is checked before it is used (the metadata strings, each tensor's dtype, shape
    and byte range), so a damaged or crafted file gives a `CheckpointError` naming it, whatever it holds.
    """
    path = Path(path)
    header = _read_safetensors_header(path)
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a semst checkpoint (no format={FORMAT!r} in its metadata)"
        )
    version = metadata.get("format_version", "")
    if not isinstance(version, str) or not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this semst reads versions <= {FORMAT_VERSION}"
        )
    raw_meta = metadata.get("meta")
    if not isinstance(raw_meta, str):
        raise CheckpointError(f"{path}: the checkpoint metadata is missing or damaged (no 'meta' text)")
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the checkpoint metadata is damaged (not JSON: {exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the checkpoint metadata is not a JSON object")
    return int(version), meta


def tensor_shapes(path: str | Path, prefixes: Iterable[str] | None = None) -> dict[str, tuple[int, ...]]:
    """The shapes of a checkpoint's tensors, read from its header alone (no tensor data is read).

    Args:
        path: A semst checkpoint (validated as `read_header` does).
        prefixes: Only names starting with one of these; None: all.
    """
    read_header(path)
    wanted = tuple(prefixes) if prefixes is not None else None
    return {
        name: tuple(entry["shape"])
        for name, entry in _read_safetensors_header(Path(path)).items()
        if name != "__metadata__" and (wanted is None or name.startswith(wanted))
    }


def _read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, each entry checked for its types and byte range."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
        # A safetensors file is an 8-byte little-endian header length, then the JSON header ("{").
        # Recognise that first: the length's low byte may be anything, 0x80 (a pickle's first byte) included.
        if head[8:9] != b"{":
            if len(head) < 9 and not head.startswith((b"PK\x03\x04", b"\x80")):
                raise CheckpointError(
                    f"{path} is not a semst checkpoint: the file is empty or truncated ({size} bytes)"
                )
            raise CheckpointError(f"{path} is not a semst checkpoint: {_describe_foreign(head)}")
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len == 0 or header_len > _MAX_HEADER_BYTES or header_len + 8 > size:
            raise CheckpointError(f"{path} is not a semst checkpoint: {_describe_foreign(head)}")
        handle.seek(8)
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a semst checkpoint: its header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a semst checkpoint: unexpected header")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path} is damaged: its header metadata is not a map of texts")
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        problem = _entry_problem(entry)
        if problem:
            raise CheckpointError(f"{path} is damaged: tensor {name!r} {problem}")
        data_end = max(data_end, entry["data_offsets"][1])
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{path} is truncated: the header describes {8 + header_len + data_end} bytes, the file has {size}"
        )
    return header


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry_problem(entry: object) -> str | None:
    """What is wrong with one tensor entry of a safetensors header, or None."""
    if not isinstance(entry, dict):
        return f"is described by {type(entry).__name__}, not by dtype, shape and data_offsets"
    dtype = entry.get("dtype")
    if dtype not in _DTYPE_BYTES:
        return f"has an unknown dtype {dtype!r}"
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        return f"has an invalid shape {shape!r}"
    offsets = entry.get("data_offsets")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(map(_is_count, offsets))
        and offsets[0] <= offsets[1]
    ):
        return f"has invalid data_offsets {offsets!r}"
    # The bytes must be what the shape says: then a header cannot announce tensors the file does not hold.
    if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
        return f"of shape {shape} and dtype {dtype} does not take the {offsets[1] - offsets[0]} bytes it is given"
    return None


def load_tensors(
    path: str | Path, prefixes: Iterable[str] | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read the tensors of a (validated) checkpoint; with ``prefixes``, only names starting with one."""
    path = Path(path)
    read_metadata(path)
    wanted = tuple(prefixes) if prefixes is not None else None
    tensors = {}
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                if wanted is None or name.startswith(wanted):
                    tensors[name] = handle.get_tensor(name)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path} could not be read: {exc}") from exc
    return tensors


def strip_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{"generator.a": t}`` with prefix ``"generator."`` -> ``{"a": t}`` (other names are dropped)."""
    return {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}


def check_shapes(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]], *, what: str, path: Path
) -> None:
    """Raise a `CheckpointError` naming ``path`` unless ``found`` has exactly the tensors and shapes of
    ``expected`` (name -> shape); the message says which tensors are missing, unexpected or of another shape.
    """
    problems = shape_problems(expected, found)
    if problems:
        raise CheckpointError(
            f"{path}: the {what} weights do not fit the {what} in its config: " + "; ".join(problems)
        )


def shape_problems(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]) -> list[str]:
    """What keeps ``found`` (name -> shape, from a file) from fitting ``expected`` (the model's): a phrase
    each for missing tensors, unexpected tensors and shape mismatches (at most three examples each); [] if
    it fits."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(found[k])} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(found))
        if tuple(expected[k]) != tuple(found[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched[:3]))
    return problems


def load_module_state(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, what: str, path: Path
) -> None:
    """``module.load_state_dict(state)`` with an error that says which weights do not fit and why, or which
    weight holds a NaN or an infinity (a network that would turn every image into noise)."""
    own = module.state_dict()
    check_shapes(
        {k: t.shape for k, t in own.items()}, {k: t.shape for k, t in state.items()}, what=what, path=path
    )
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: the {what} weight {name} holds NaN or infinite values")
    module.load_state_dict(state)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run directory (``RUN_DIR/checkpoints/*.safetensors``)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        candidates = sorted(folder.glob(f"step_*{SUFFIX}"))
        if not candidates:
            raise CheckpointError(
                f"{path} is a directory without checkpoints (expected {folder}/step_*{SUFFIX})"
            )
        return candidates[-1]
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def checkpoint_name(step: int) -> str:
    return f"step_{step:09d}{SUFFIX}"
