"""Bad checkpoints given to `semst translate`, `semst info` and `semst export`: crafted and damaged headers,
missing or invalid configs, networks too large to build, NaN weights; and checkpoint files follow the umask.

Each case: exit status 1, one error line naming the file, no traceback, no file changed.
"""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
import torch
from safetensors import SafetensorError

from semst import checkpoint as ckpt
from semst.translators import SingleScaleTranslator, Translator

from .bad_input import (
    Tree,
    assert_refused,
    craft_checkpoint,
    first_tensor,
    png_bytes,
    run,
    save_tiny_translator,
    write_safetensors,
)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return save_tiny_translator(tmp_path_factory.mktemp("good") / "good.safetensors")


def _set(section: str, key: str, value):
    def change(header, meta):
        meta["config"][section][key] = value

    return change


def _section_is(section: str, value):
    def change(header, meta):
        meta["config"][section] = value

    return change


def _header_only_with(**generator):
    def change(header, meta):
        meta["config"]["generator"].update(generator)
        return {"__metadata__": {**header["__metadata__"], "meta": json.dumps(meta)}}

    return change


def _metadata(value):
    def change(header, meta):
        header["__metadata__"] = value

    return change


def _meta_field(key, value):
    def change(header, meta):
        header["__metadata__"][key] = value

    return change


def _tensor_entry(transform):
    def change(header, meta):
        name = first_tensor(header)
        header[name] = transform(header[name])

    return change


def _drop_config(header, meta):
    del meta["config"]


def _config_is(value):
    def change(header, meta):
        meta["config"] = value

    return change


def _step_is(value):
    def change(header, meta):
        meta["step"] = value

    return change


# name: (change, keep the tensor data, what the message says)
CRAFTED = {
    "metadata is a list": (_metadata(["x"]), True, "header metadata is not a map of texts"),
    "format_version is a number": (_meta_field("format_version", 2), True, "not a map of texts"),
    "format_version from the future": (_meta_field("format_version", "99"), True, "format version '99'"),
    "meta is not text": (_meta_field("meta", {"a": 1}), True, "not a map of texts"),
    "meta is not JSON": (_meta_field("meta", "{oops"), True, "metadata is damaged"),
    "tensor entry is a number": (_tensor_entry(lambda e: 5), True, "is described by int"),
    "tensor entry without data_offsets": (
        _tensor_entry(lambda e: {k: v for k, v in e.items() if k != "data_offsets"}),
        True,
        "invalid data_offsets",
    ),
    "data_offsets are text": (
        _tensor_entry(lambda e: {**e, "data_offsets": "ab"}),
        True,
        "invalid data_offsets",
    ),
    "data_offsets reversed": (
        _tensor_entry(lambda e: {**e, "data_offsets": e["data_offsets"][::-1]}),
        True,
        "invalid data_offsets",
    ),
    "unknown dtype": (_tensor_entry(lambda e: {**e, "dtype": "Q99"}), True, "unknown dtype 'Q99'"),
    "negative shape": (_tensor_entry(lambda e: {**e, "shape": [-1, 3]}), True, "invalid shape"),
    "shape larger than its bytes": (
        _tensor_entry(lambda e: {**e, "shape": [1024, 1024, 3, 3]}),
        True,
        "does not take the",
    ),
    "tensor data cut off": (lambda h, m: None, False, "truncated"),
    "no config": (_drop_config, True, "holds no config"),
    "config is a number": (_config_is(5), True, "not a mapping of sections"),
    "generator section is a list": (_section_is("generator", [1]), True, "generator must be a mapping"),
    "unknown config key": (_set("generator", "wings", 2), True, "unknown key 'generator.wings'"),
    "config value of a wrong type": (
        _set("generator", "num_blocks", "many"),
        True,
        "generator.num_blocks must be an integer",
    ),
    "invalid multi-scale settings": (
        lambda h, m: m["config"]["multiscale"].update(enabled=True, local_size=999),
        True,
        "multiscale.local_size",
    ),
    "step is text": (_step_is("abc"), True, "step 'abc'"),
    # The 1.8 KB file: a header asking for 1024 channels and 1000 blocks, and no tensors.
    "header-only, 1024 channels and 1000 blocks": (
        _header_only_with(base_channels=1024, num_blocks=1000),
        False,
        "generator.base_channels must be <= 256 (got 1024); generator.num_blocks must be <= 32 (got 1000)",
    ),
    # Within the bounds (2.5 GB of weights), still no tensors: refused by the shape check before building.
    "header-only, largest allowed generator": (
        _header_only_with(base_channels=256, num_blocks=32),
        False,
        "missing",
    ),
    "weights of another architecture": (_set("generator", "base_channels", 16), True, "shape mismatches"),
}


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_translate_refuses_a_crafted_checkpoint_by_name(case, good, tmp_path, capsys, monkeypatch):
    change, data, says = CRAFTED[case]
    crafted = craft_checkpoint(good, tmp_path / "crafted.safetensors", change, data=data)
    (tmp_path / "in.png").write_bytes(png_bytes())
    built = []
    original = SingleScaleTranslator.build.__func__

    def build(cls, config):
        built.append(torch.empty(0).device.type)  # "meta" inside `with torch.device("meta")`
        return original(cls, config)

    monkeypatch.setattr(SingleScaleTranslator, "build", classmethod(build))
    tree = Tree(tmp_path)
    result = run(["translate", crafted, tmp_path / "in.png", "-o", tmp_path / "out", "--no-progress"], capsys)
    line = assert_refused(result, "translate", crafted)
    assert says in line, line
    # Networks are built for real only once the header is known to fit.
    assert built in ([], ["meta"]), built
    tree.assert_unchanged()
    assert not (tmp_path / "out").exists()


INFO_CASES = [
    "metadata is a list",
    "format_version is a number",
    "tensor entry is a number",
    "data_offsets are text",
    "no config",
    "config is a number",
    "generator section is a list",
    "header-only, 1024 channels and 1000 blocks",
]


@pytest.mark.parametrize("case", INFO_CASES)
def test_info_refuses_a_crafted_checkpoint_by_name(case, good, tmp_path, capsys):
    change, data, says = CRAFTED[case]
    crafted = craft_checkpoint(good, tmp_path / "crafted.safetensors", change, data=data)
    tree = Tree(tmp_path)
    line = assert_refused(run(["info", crafted], capsys), "info", crafted)
    assert says in line and "None" not in line
    tree.assert_unchanged()


@pytest.mark.parametrize("case", ["no config", "header-only, 1024 channels and 1000 blocks", "unknown dtype"])
def test_export_refuses_a_crafted_checkpoint_by_name(case, good, tmp_path, capsys):
    change, data, says = CRAFTED[case]
    crafted = craft_checkpoint(good, tmp_path / "crafted.safetensors", change, data=data)
    tree = Tree(tmp_path)
    result = run(["export", crafted, "--format", "torchscript", "--out", tmp_path / "model.pt"], capsys)
    assert says in assert_refused(result, "export", crafted)
    tree.assert_unchanged()
    assert not (tmp_path / "model.pt").exists()


def test_nan_weights_are_refused(tmp_path, capsys):
    bad = save_tiny_translator(tmp_path / "nan.safetensors", nan=True)
    (tmp_path / "in.png").write_bytes(png_bytes())
    result = run(["translate", bad, tmp_path / "in.png", "-o", tmp_path / "out"], capsys)
    assert "NaN or infinite" in assert_refused(result, "translate", bad)


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "empty or truncated"),
        (b"\x80\x04K\x01.", "never unpickles"),
        (b"PK\x03\x04" + bytes(40), "zip archive"),
        (b"just some text, not a checkpoint", "not a semst checkpoint"),
    ],
    ids=["empty", "pickle", "zip", "text"],
)
def test_files_that_are_no_checkpoint_are_named(content, says, tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    (tmp_path / "in.png").write_bytes(png_bytes())
    for argv, command in (
        (["translate", path, tmp_path / "in.png", "-o", tmp_path / "out"], "translate"),
        (["info", path], "info"),
    ):
        assert says in assert_refused(run(argv, capsys), command, path)


def test_a_segmenter_checkpoint_is_not_a_translator(tmp_path, capsys):
    from semst.segmentation.loading import save_segmenter
    from semst.segmentation.network import SegmentationUNet

    segmenter = save_segmenter(SegmentationUNet(3, width=4, depth=1), tmp_path / "seg.safetensors")
    (tmp_path / "in.png").write_bytes(png_bytes())
    result = run(["translate", segmenter, tmp_path / "in.png", "-o", tmp_path / "out"], capsys)
    assert "segmenter checkpoint" in assert_refused(result, "translate", segmenter)
    result = run(["info", segmenter], capsys)
    assert result.code == 0 and "segmenter   unet: 3 classes" in result.out and "None" not in result.out


def test_a_safetensors_file_without_semst_metadata(tmp_path, capsys):
    plain = write_safetensors(
        tmp_path / "plain.safetensors",
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
        bytes(4),
    )
    assert "not a semst checkpoint" in assert_refused(run(["info", plain], capsys), "info", plain)


def test_a_full_disk_while_writing_a_checkpoint_is_named(tmp_path, monkeypatch):
    """safetensors reports ENOSPC as its own error; save_checkpoint turns it into an OSError naming the file."""
    path = ckpt.save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(2)}, {"step": 1})

    def full(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(ckpt, "save_file", full)
    tree = Tree(tmp_path)
    with pytest.raises(OSError) as caught:
        ckpt.save_checkpoint(path, {"w": torch.zeros(2)}, {"step": 2})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    tree.assert_unchanged()
    assert ckpt.read_metadata(path)["step"] == 1


def test_checkpoint_files_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        path = ckpt.save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(2)}, {"step": 1})
        trained = save_tiny_translator(tmp_path / "t.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(trained.stat().st_mode) == 0o640
    assert Translator.from_checkpoint(trained, device="cpu").step == 1
