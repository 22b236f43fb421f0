"""Bad inputs to `semst evaluate segmentation` and `semst evaluate paired`: broken images and label maps, class
ids the segmenter does not have, outputs that would replace inputs, a full disk.

Each case: exit status 1, one error line naming the offending file, no traceback, no file changed.
"""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from semst.segmentation.loading import save_segmenter
from semst.segmentation.network import SegmentationUNet

from .bad_input import BROKEN_IMAGE_KINDS, Tree, assert_refused, png_bytes, run, write_broken_image

SIZE = (32, 16)  # W, H


@pytest.fixture
def data(tmp_path):
    """images/x_0..2.png, labels/x_0..2.png (train ids 0..18 and 255), segmenter.safetensors (19 classes)."""
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"x_{i}.png").write_bytes(png_bytes(SIZE, seed=i))
        label = rng.integers(0, 19, size=(SIZE[1], SIZE[0]), dtype=np.uint8)
        label[0, 0] = 255
        (tmp_path / "labels").mkdir(exist_ok=True)
        Image.fromarray(label, mode="L").save(tmp_path / "labels" / f"x_{i}.png")
    save_segmenter(SegmentationUNet(19, width=4, depth=1), tmp_path / "segmenter.safetensors")
    return tmp_path


def _segmentation(data, *extra):
    return [
        "evaluate",
        "segmentation",
        "--segmenter",
        data / "segmenter.safetensors",
        "--images",
        data / "images",
        "--labels",
        data / "labels",
        "--no-progress",
        *extra,
    ]


def test_the_good_case_works(data, capsys):
    tree = Tree(data)
    result = run(
        _segmentation(data, "--output", data / "scores.json", "--pictures", data / "pictures"), capsys
    )
    assert result.code == 0, result.err
    tree.assert_unchanged()
    assert (data / "scores.json").is_file() and len(list((data / "pictures").glob("*.png"))) == 3


@pytest.mark.parametrize("kind", BROKEN_IMAGE_KINDS)
def test_a_broken_image_is_named(kind, data, capsys):
    (data / "images" / "x_1.png").unlink()
    broken = write_broken_image(data / "images" / "x_1.png", kind, SIZE)
    tree = Tree(data)
    result = run(_segmentation(data, "--output", data / "scores.json"), capsys)
    assert_refused(result, "evaluate", broken)
    tree.assert_unchanged()
    assert not (data / "scores.json").exists()


@pytest.mark.parametrize("kind", ["zero-byte", "truncated-png", "garbage"])
def test_a_broken_label_map_is_named(kind, data, capsys):
    broken = write_broken_image(data / "labels" / "x_2.png", kind, SIZE)
    tree = Tree(data)
    assert_refused(run(_segmentation(data), capsys), "evaluate", broken)
    tree.assert_unchanged()


def test_class_ids_above_the_segmenters_classes_name_the_label_map(data, capsys):
    label = np.full((SIZE[1], SIZE[0]), 3, np.uint8)
    label[2, 2] = 33  # a Cityscapes label id, not a train id
    Image.fromarray(label, mode="L").save(data / "labels" / "x_1.png")
    tree = Tree(data)
    line = assert_refused(run(_segmentation(data), capsys), "evaluate", data / "labels" / "x_1.png")
    assert "33" in line and "19 classes" in line
    tree.assert_unchanged()


def test_a_label_map_of_another_size_is_named(data, capsys):
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(data / "labels" / "x_0.png")
    tree = Tree(data)
    assert_refused(run(_segmentation(data), capsys), "evaluate", data / "labels" / "x_0.png")
    tree.assert_unchanged()


def test_a_broken_source_image_for_the_pictures_is_named(data, capsys):
    shutil.copytree(data / "images", data / "sources")
    broken = write_broken_image(data / "sources" / "x_0.png", "truncated-png", SIZE)
    tree = Tree(data)
    result = run(_segmentation(data, "--pictures", data / "pictures", "--sources", data / "sources"), capsys)
    assert_refused(result, "evaluate", broken)
    tree.assert_unchanged()


OUTPUTS = {
    # name: (options, the input the message names)
    "--output is a label map": (["--output", "labels/x_0.png"], "labels/x_0.png"),
    "--output is a scored image": (["--output", "images/x_2.png"], "images/x_2.png"),
    "--output is the segmenter": (["--output", "segmenter.safetensors"], "segmenter.safetensors"),
    "--output is the images folder": (["--output", "images"], "images"),
    "--pictures is the images folder": (["--pictures", "images"], "images"),
    "--pictures is the labels folder": (["--pictures", "labels"], "labels"),
    "--pictures holds the images folder": (["--pictures", "."], "holds the input file"),
    "--pictures is the sources folder": (["--pictures", "sources", "--sources", "sources"], "sources"),
    "--pictures is a link to the images": (["--pictures", "link"], "images"),
}


@pytest.mark.parametrize("case", OUTPUTS, ids=list(OUTPUTS))
def test_outputs_never_replace_inputs(case, data, capsys, monkeypatch):
    options, named = OUTPUTS[case]
    shutil.copytree(data / "images", data / "sources")
    os.symlink(data / "images", data / "link")
    monkeypatch.chdir(data)
    tree = Tree(data)
    result = run(_segmentation(data, *options), capsys)
    line = assert_refused(result, "evaluate", named)
    assert "will not write" in line
    tree.assert_unchanged()


def test_a_full_disk_while_writing_the_scores_is_named(data, capsys, monkeypatch):
    import semst.files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(semst.files.os, "fsync", full)
    (data / "scores.json").write_text("{}")
    tree = Tree(data)
    result = run(_segmentation(data, "--output", data / "scores.json"), capsys)
    assert_refused(result, "evaluate", data / "scores.json", "No space left on device")
    tree.assert_unchanged()


def test_a_translator_checkpoint_is_not_a_segmenter(data, capsys):
    from .bad_input import save_tiny_translator

    translator = save_tiny_translator(data / "translator.safetensors")
    result = run(_segmentation(data)[:3] + [translator] + _segmentation(data)[4:], capsys)
    assert "not a segmenter checkpoint" in assert_refused(result, "evaluate", translator)


def test_a_segmenter_without_architecture_is_named(data, capsys):
    from .bad_input import craft_checkpoint

    crafted = craft_checkpoint(
        data / "segmenter.safetensors", data / "crafted.safetensors", lambda h, m: m.update(architecture=[1])
    )
    result = run(_segmentation(data)[:3] + [crafted] + _segmentation(data)[4:], capsys)
    assert "describes no architecture" in assert_refused(result, "evaluate", crafted)


# --- evaluate paired ---------------------------------------------------------------------------------------


def _paired(data, *extra):
    return ["evaluate", "paired", "--pred", data / "images", "--gt", data / "truth", "--no-progress", *extra]


@pytest.fixture
def paired(data):
    shutil.copytree(data / "images", data / "truth")
    return data


def test_paired_output_that_is_a_true_image_is_refused(paired, capsys):
    tree = Tree(paired)
    result = run(_paired(paired, "--output", paired / "truth" / "x_1.png"), capsys)
    assert_refused(result, "evaluate", paired / "truth" / "x_1.png")
    tree.assert_unchanged()


@pytest.mark.parametrize("kind", ["zero-byte", "truncated-png"])
def test_paired_broken_prediction_is_named(kind, paired, capsys):
    broken = write_broken_image(paired / "images" / "x_0.png", kind, SIZE)
    tree = Tree(paired)
    assert_refused(run(_paired(paired, "--output", paired / "s.json"), capsys), "evaluate", broken)
    tree.assert_unchanged()
