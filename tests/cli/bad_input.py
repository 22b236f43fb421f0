"""Helpers of the bad-input suite (tests/cli/test_bad_input_*.py): run a command on a bad case and check that

- the exit status is the expected one (1 for a refused command),
- the error is one line, ``semst COMMAND: error: ...``, naming the offending path, with no traceback,
- no file that existed before the command changed or vanished (`Tree` hashes the whole tree).

Broken files of the usual kinds are made by `write_broken_image`; crafted checkpoints by `craft_checkpoint`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semst.cli import main

BROKEN_IMAGE_KINDS = ("zero-byte", "truncated-png", "truncated-jpeg", "not-an-image", "garbage")


class Tree:
    """Every file below ``root`` (links not followed) with its SHA-256, to check that none changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.before = self.hashes()

    def hashes(self) -> dict[str, str]:
        found = {}
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                relative = path.relative_to(self.root).as_posix()
                if path.is_symlink():
                    found[relative] = "link -> " + os.readlink(path)
                else:
                    found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def changed(self) -> list[str]:
        """Files that existed before and now differ or are gone (new files are allowed)."""
        now = self.hashes()
        return sorted(name for name, digest in self.before.items() if now.get(name) != digest)

    def temporaries(self) -> list[str]:
        """Leftover temporary files of semst.files (``.NAME.<hex>.tmp``)."""
        return sorted(
            name for name in self.hashes() if Path(name).name.startswith(".") and name.endswith(".tmp")
        )

    def assert_unchanged(self) -> None:
        assert self.changed() == [], f"pre-existing files changed: {self.changed()}"
        assert self.temporaries() == [], f"temporary files left: {self.temporaries()}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def error_lines(self, command: str) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith(f"semst {command}: error:")]


def run(argv: Sequence[str], capsys) -> Result:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_refused(result: Result, command: str, *names: str | os.PathLike[str], code: int = 1) -> str:
    """The command failed with ``code``, printed its error as one line naming each of ``names``, and no
    traceback; returns the line."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err, result.err
    lines = result.error_lines(command)
    assert len(lines) == 1, result.err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert "unexpected" not in lines[0], lines[0]  # a user's error, not a bug of semst
    return lines[0]


# --- broken files -----------------------------------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (16, 12), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_broken_image(path: Path, kind: str, size: tuple[int, int] = (16, 12)) -> Path:
    """A file with an image name that does not hold a whole image; ``kind`` is one of BROKEN_IMAGE_KINDS.

    Truncated files keep a whole header announcing ``size`` (W, H), so that only decoding finds the damage.
    Returns the path written (a truncated JPEG gets the suffix .jpg).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated-png":
        path.write_bytes(png_bytes(size)[:100])
    elif kind == "truncated-jpeg":
        path = path.with_suffix(".jpg")
        path.write_bytes(jpeg_bytes(size)[:300])
    elif kind == "not-an-image":
        path.write_text("hello, I am a text file with an image's name\n")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    else:
        raise ValueError(kind)
    return path


def huge_png_header(path: Path, width: int = 12000, height: int = 12000) -> Path:
    """A PNG whose header announces ``width`` x ``height`` pixels (144 megapixels by default) and holds no
    pixel data: its size can be read, decoding it fails."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


# --- crafted checkpoints ----------------------------------------------------------------------------------


def read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def write_safetensors(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def craft_checkpoint(
    source: Path, path: Path, change: Callable[[dict, dict], dict | None], *, data: bool = True
) -> Path:
    """A copy of the checkpoint ``source`` whose header was edited by ``change(header, meta)``.

    ``change`` edits the safetensors header and the decoded ``meta`` dict in place (the meta is encoded back
    unless ``change`` replaced ``header["__metadata__"]["meta"]`` itself), or returns a whole new header.
    ``data=False`` drops the tensor bytes (a header-only file).
    """
    header, body = read_safetensors(source)
    header = copy.deepcopy(header)
    meta = json.loads(header["__metadata__"]["meta"])
    original = header["__metadata__"]["meta"]
    replaced = change(header, meta)
    if replaced is not None:
        header = replaced
    elif isinstance(header.get("__metadata__"), dict) and header["__metadata__"].get("meta") == original:
        header["__metadata__"]["meta"] = json.dumps(meta)
    return write_safetensors(path, header, body if data else b"")


def first_tensor(header: dict) -> str:
    return next(name for name in header if name != "__metadata__" and name.startswith("translator."))


def save_tiny_translator(path: Path, *, multiscale: bool = False, nan: bool = False) -> Path:
    """A training checkpoint of a tiny (8-channel, 2-block) translator, written without training."""
    from semst.training.networks import TrainingNetworks, make_optimizers
    from semst.training.state import save_training_checkpoint

    from ..conftest import TINY_MULTISCALE, tiny_config

    config = tiny_config("semst", **(TINY_MULTISCALE if multiscale else {}))
    torch.manual_seed(0)
    networks = TrainingNetworks.from_config(config)
    if nan:
        with torch.no_grad():
            next(networks.translator.parameters())[0] = float("nan")
    return save_training_checkpoint(
        path, config=config, networks=networks, optimizers=make_optimizers(networks, config.train), step=1
    )
