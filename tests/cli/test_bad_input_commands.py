"""Bad inputs to the other writing commands (`semst segmenter train/export`, `export`, `convert`, `prepare`,
`world`) and the command line's error rule (one line; the traceback only with -v; a bug says it is one).

Each case: exit status 1, one error line naming the offending path, no traceback, no file changed.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import save_file

from semst import checkpoint as ckpt
from semst.cli import main

from .bad_input import Tree, assert_refused, png_bytes, run, save_tiny_translator, write_broken_image

SIZE = (32, 32)


@pytest.fixture
def labelled(tmp_path):
    """images/x_0..1.png with labels/x_0..1.png (ids 0..2)."""
    rng = np.random.default_rng(0)
    for i in range(2):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"x_{i}.png").write_bytes(png_bytes(SIZE, seed=i))
        (tmp_path / "labels").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 3, size=SIZE, dtype=np.uint8), mode="L").save(
            tmp_path / "labels" / f"x_{i}.png"
        )
    return tmp_path


def _segmenter_train(root, out, *extra):
    return [
        "segmenter",
        "train",
        "--images",
        root / "images",
        "--labels",
        root / "labels",
        "--out",
        out,
        "--num-classes",
        "3",
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--crop-size",
        "16",
        "--width",
        "4",
        "--depth",
        "1",
        "--no-progress",
        *extra,
    ]


# --- semst segmenter ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["images/x_0.png", "labels/x_1.png"], ids=["an image", "a label map"])
def test_segmenter_out_that_is_an_input_is_refused(target, labelled, capsys):
    tree = Tree(labelled)
    result = run(_segmenter_train(labelled, labelled / target), capsys)
    assert_refused(result, "segmenter", labelled / target)
    tree.assert_unchanged()


@pytest.mark.parametrize("kind", ["zero-byte", "truncated-png", "garbage"])
def test_segmenter_train_names_a_broken_label_map_before_training(kind, labelled, capsys):
    broken = write_broken_image(labelled / "labels" / "x_1.png", kind, SIZE)
    tree = Tree(labelled)
    result = run(_segmenter_train(labelled, labelled / "seg.safetensors"), capsys)
    assert_refused(result, "segmenter", broken)
    assert "training a segmenter" not in result.err  # found before the first step
    tree.assert_unchanged()


def test_segmenter_train_names_a_label_id_above_its_classes(labelled, capsys):
    label = np.zeros(SIZE, np.uint8)
    label[0, 0] = 7
    Image.fromarray(label, mode="L").save(labelled / "labels" / "x_0.png")
    result = run(_segmenter_train(labelled, labelled / "seg.safetensors"), capsys)
    assert "[7]" in assert_refused(result, "segmenter", labelled / "labels" / "x_0.png")


def test_segmenter_train_names_a_broken_image(labelled, capsys):
    broken = write_broken_image(labelled / "images" / "x_0.png", "zero-byte")
    tree = Tree(labelled)
    assert_refused(run(_segmenter_train(labelled, labelled / "seg.safetensors"), capsys), "segmenter", broken)
    tree.assert_unchanged()


def test_segmenter_train_on_a_full_disk_names_the_checkpoint(labelled, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckpt, "save_file", full)
    tree = Tree(labelled)
    result = run(_segmenter_train(labelled, labelled / "seg.safetensors"), capsys)
    assert_refused(result, "segmenter", labelled / "seg.safetensors", "No space left on device")
    tree.assert_unchanged()


def test_segmenter_export_over_its_checkpoint_is_refused(tmp_path, capsys):
    from semst.segmentation.loading import save_segmenter
    from semst.segmentation.network import SegmentationUNet

    segmenter = save_segmenter(SegmentationUNet(3, width=4, depth=1), tmp_path / "seg.safetensors")
    tree = Tree(tmp_path)
    assert_refused(run(["segmenter", "export", segmenter, segmenter], capsys), "segmenter", segmenter)
    translator = save_tiny_translator(tmp_path / "translator.safetensors")
    tree = Tree(tmp_path)
    result = run(["segmenter", "export", translator, tmp_path / "x.pt"], capsys)
    assert "not a segmenter checkpoint" in assert_refused(result, "segmenter", translator)
    tree.assert_unchanged()


# --- semst export and semst convert ------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "step_000000001.safetensors"
    checkpoint.parent.mkdir(parents=True)
    save_tiny_translator(checkpoint)
    return tmp_path / "run"


@pytest.mark.parametrize("given", ["file", "run dir"])
def test_export_over_its_checkpoint_is_refused(given, run_dir, capsys):
    checkpoint = run_dir / "checkpoints" / "step_000000001.safetensors"
    tree = Tree(run_dir)
    source = checkpoint if given == "file" else run_dir
    result = run(["export", source, "--format", "torchscript", "--out", checkpoint], capsys)
    assert_refused(result, "export", checkpoint)
    tree.assert_unchanged()


def test_export_on_a_full_disk_names_the_file(run_dir, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", full)
    tree = Tree(run_dir)
    result = run(["export", run_dir, "--format", "torchscript", "--out", run_dir / "model.pt"], capsys)
    assert_refused(result, "export", run_dir / "model.pt", "No space left on device")
    tree.assert_unchanged()


def test_convert_of_a_safetensors_state_dict_never_replaces_it(tmp_path, capsys):
    """Without --out, convert writes FILE with the .safetensors suffix: for a .safetensors source, itself."""
    from ..interop.test_cut import make_cut_generator

    source = tmp_path / "latest_net_G.safetensors"
    save_file(make_cut_generator(ngf=4, n_blocks=1).state_dict(), str(source))
    tree = Tree(tmp_path)
    assert_refused(run(["convert", source], capsys), "convert", source)
    assert_refused(
        run(["convert", source, "--out", tmp_path / "." / source.name], capsys), "convert", source.name
    )
    tree.assert_unchanged()


def test_convert_of_a_damaged_file_is_named(tmp_path, capsys):
    source = tmp_path / "latest_net_G.pth"
    source.write_bytes(b"PK\x03\x04 half a zip")
    tree = Tree(tmp_path)
    assert_refused(run(["convert", source], capsys), "convert", source)
    tree.assert_unchanged()


# --- semst prepare and semst world --------------------------------------------------------------------------


@pytest.fixture
def maps(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "maps" / split).mkdir(parents=True)
        (tmp_path / "maps" / split / "1.jpg").write_bytes(png_bytes((32, 16)))
    return tmp_path


@pytest.mark.parametrize("out", ["maps", ".", "maps/train"], ids=["the data set", "above it", "inside it"])
def test_prepare_into_its_data_set_is_refused(out, maps, capsys, monkeypatch):
    monkeypatch.chdir(maps)
    tree = Tree(maps)
    result = run(["prepare", "maps:maps", "--out", out], capsys)
    assert_refused(result, "prepare", "1.jpg")
    tree.assert_unchanged()


@pytest.mark.parametrize("problem", ["truncated", "odd width"])
def test_prepare_names_a_bad_pair(problem, maps, capsys):
    bad = maps / "maps" / "train" / "1.jpg"
    if problem == "truncated":
        bad.write_bytes(png_bytes((32, 16))[:90])
    else:
        bad.write_bytes(png_bytes((33, 16)))
    tree = Tree(maps)
    assert_refused(run(["prepare", f"maps:{maps / 'maps'}", "--out", maps / "out"], capsys), "prepare", bad)
    tree.assert_unchanged()


@pytest.mark.parametrize("existing", ["a file", "a folder of other files"])
def test_world_never_writes_over_other_files(existing, tmp_path, capsys):
    out = tmp_path / "out"
    if existing == "a file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    tree = Tree(tmp_path)
    result = run(
        ["world", "--out", out, "--train", "1", "--test", "1", "--size", "32x16", "--no-aerial"], capsys
    )
    assert_refused(result, "world", out)
    tree.assert_unchanged()


# --- the rule itself ---------------------------------------------------------------------------------------


def test_info_on_a_folder_without_checkpoints(tmp_path, capsys):
    assert_refused(run(["info", tmp_path], capsys), "info", tmp_path)


def test_the_traceback_only_with_verbose(tmp_path, capsys):
    broken = write_broken_image(tmp_path / "labels" / "x.png", "zero-byte")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(png_bytes(SIZE))
    argv = ["segmenter", "train", "--images", tmp_path / "images", "--labels", tmp_path / "labels"]
    argv += ["--out", tmp_path / "s.safetensors", "--no-progress"]
    assert_refused(run(argv, capsys), "segmenter", broken)
    result = run([*argv, "-v"], capsys)
    assert (
        result.code == 1
        and "Traceback" in result.err
        and result.err.rstrip().splitlines()[-1].startswith("semst segmenter: error:")
    )


def test_a_bug_is_one_line_that_says_so(monkeypatch, capsys):
    from semst.cli import info

    def broken(args):
        return {}["config"]

    monkeypatch.setattr(info, "run", broken)
    code = main(["info", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "unexpected KeyError: 'config'" in err and "-v" in err
