from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch

from semst import checkpoint as ckpt

from .cli.bad_input import read_safetensors


def _write(tmp_path, name="c.safetensors", tensors=None, meta=None):
    tensors = (
        tensors
        if tensors is not None
        else {"generator.w": torch.arange(6.0).reshape(2, 3), "rng.torch": torch.ones(4, dtype=torch.uint8)}
    )
    return ckpt.save_checkpoint(
        tmp_path / name, tensors, meta if meta is not None else {"step": 3, "config": {"a": [1, 2]}}
    )


def test_round_trip_and_prefix_selection(tmp_path):
    path = _write(tmp_path)
    assert ckpt.read_metadata(path) == {"step": 3, "config": {"a": [1, 2]}}
    tensors = ckpt.load_tensors(path)
    assert torch.equal(tensors["generator.w"], torch.arange(6.0).reshape(2, 3))
    assert set(ckpt.load_tensors(path, prefixes=["generator."])) == {"generator.w"}
    assert set(ckpt.strip_prefix(tensors, "generator.")) == {"w"}


def test_the_same_content_gives_the_same_bytes(tmp_path):
    # safetensors orders its header by hash maps, so without sorting the same checkpoint came out with other
    # bytes from one write to the next (a study's check "same realism classifier file" failed on them)
    tensors = {f"net.layer{i}.weight": torch.full((2, i + 1), float(i)) for i in range(12)}
    tensors["rng.torch"] = torch.arange(5, dtype=torch.uint8)
    paths = [_write(tmp_path, f"c{i}.safetensors", tensors=tensors) for i in range(6)]
    first = paths[0].read_bytes()
    assert all(p.read_bytes() == first for p in paths[1:])
    header, _ = read_safetensors(paths[0])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(header["__metadata__"])
    loaded = ckpt.load_tensors(paths[0])
    assert set(loaded) == set(tensors) and all(torch.equal(loaded[k], v) for k, v in tensors.items())
    assert ckpt.read_metadata(paths[0]) == {"step": 3, "config": {"a": [1, 2]}}


def test_views_and_shared_storage_are_saved(tmp_path):
    base = torch.arange(10.0)
    path = _write(tmp_path, tensors={"a": base[2:5], "b": base, "c": base.view(2, 5).t()})
    loaded = ckpt.load_tensors(path)
    assert torch.equal(loaded["a"], base[2:5]) and torch.equal(loaded["c"], base.view(2, 5).t())


class _Boom:
    """Unpickling this would create a marker file: proof that no code in a checkpoint runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.read_metadata(raw)
    zipped = tmp_path / "evil.pth"
    torch.save({"x": _Boom(str(marker))}, zipped)
    with pytest.raises(ckpt.CheckpointError, match="torch.save"):
        ckpt.load_tensors(zipped)
    assert not marker.exists()


def test_any_header_length_is_read_even_one_that_starts_like_a_pickle(tmp_path):
    """The header length's first byte can be 0x80, a pickle's first byte; such files are still checkpoints."""
    lows = set()
    for filler in range(300):
        path = _write(tmp_path, meta={"step": 1, "filler": "x" * filler})
        lows.add(path.read_bytes()[0])
        if path.read_bytes()[0] == 0x80:
            assert ckpt.read_metadata(path)["filler"] == "x" * filler
            break
    else:
        pytest.fail(f"no filler length gave a header length with low byte 0x80 (saw {sorted(lows)})")


def test_damaged_and_foreign_files(tmp_path):
    path = _write(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[:-10])
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        ckpt.read_metadata(truncated)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\x01\x02")
    with pytest.raises(ckpt.CheckpointError, match="empty or truncated"):
        ckpt.read_metadata(tiny)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(64))
    with pytest.raises(ckpt.CheckpointError, match="not a semst checkpoint"):
        ckpt.read_metadata(noise)
    header = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    with pytest.raises(ckpt.CheckpointError, match="safetensors file but not a semst checkpoint"):
        ckpt.read_metadata(plain)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.read_metadata(tmp_path / "missing.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="without checkpoints"):
        ckpt.resolve_checkpoint(tmp_path)


def test_newer_format_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)
    path = _write(tmp_path)
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 1)
    with pytest.raises(ckpt.CheckpointError, match="format version '99'"):
        ckpt.read_metadata(path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = _write(tmp_path)
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path, meta={"step": 4})
    assert path.read_bytes() == before
    assert ckpt.read_metadata(path)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_checkpoint_permissions_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = _write(tmp_path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644  # as any file the user writes, not mkstemp's 0o600


def test_latest_checkpoint_of_a_run_directory(tmp_path):
    for step in (5, 40, 7):
        _write(tmp_path / "checkpoints", ckpt.checkpoint_name(step), meta={"step": step})
    assert ckpt.resolve_checkpoint(tmp_path).name == ckpt.checkpoint_name(40)


def test_module_state_mismatch_is_explained(tmp_path):
    module = torch.nn.Linear(3, 2)
    with pytest.raises(
        ckpt.CheckpointError, match=r"shape mismatches: weight: checkpoint \(4, 3\) vs model \(2, 3\)"
    ):
        ckpt.load_module_state(
            module,
            {"weight": torch.zeros(4, 3), "bias": torch.zeros(2)},
            what="generator",
            path=tmp_path / "x",
        )
    with pytest.raises(ckpt.CheckpointError, match="missing 1 tensors"):
        ckpt.load_module_state(module, {"weight": torch.zeros(2, 3)}, what="generator", path=tmp_path / "x")
