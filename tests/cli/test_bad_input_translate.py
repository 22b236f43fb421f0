"""Bad inputs to `semst translate`: outputs that would replace inputs, broken and huge images, a full disk.

Each case checks the exit status, that the error is one line naming the offending path, and that no file that
existed before changed (tests/cli/bad_input.py).
"""

from __future__ import annotations

import errno
import os

import pytest
from PIL import Image

from .bad_input import (
    BROKEN_IMAGE_KINDS,
    Tree,
    assert_refused,
    huge_png_header,
    png_bytes,
    run,
    save_tiny_translator,
    write_broken_image,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "single": save_tiny_translator(folder / "single.safetensors"),
        "multi": save_tiny_translator(folder / "multi.safetensors", multiscale=True),
    }


@pytest.fixture
def nest(tmp_path):
    """nest/a.png, nest/sub/a.png (the issue's layout), other/b.png."""
    for i, name in enumerate(("nest/a.png", "nest/sub/a.png", "other/b.png")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(png_bytes(seed=i))
    return tmp_path


# --- outputs that would replace inputs ---------------------------------------------------------------------

OVERLAPS = {
    # name: (inputs, output folder, extra options, the input the message names)
    "output inside the input folder, holding an input (the issue's case)": (
        ["nest"],
        "nest/sub",
        [],
        "nest/sub/a.png",
    ),
    "output is the input folder": (["nest"], "nest", [], "a.png"),
    "output holds the input folder": (["nest"], ".", [], "a.png"),
    "output holds the second input": (["nest/a.png", "other/b.png"], "other", [], "other/b.png"),
    "output folder of an input file": (["nest/a.png"], "nest", [], "nest/a.png"),
    "output is a link to the input folder": (["nest"], "link", [], "a.png"),
}


@pytest.mark.parametrize("case", OVERLAPS, ids=list(OVERLAPS))
def test_an_output_folder_holding_an_input_is_refused(case, nest, checkpoints, capsys, monkeypatch):
    inputs, output, options, named = OVERLAPS[case]
    os.symlink(nest / "nest", nest / "link")
    monkeypatch.chdir(nest)
    tree = Tree(nest)
    result = run(
        ["translate", checkpoints["single"], *inputs, "-o", output, *options, "--no-progress"], capsys
    )
    line = assert_refused(result, "translate", named)
    assert "holds the input" in line or "is the input" in line
    tree.assert_unchanged()
    assert not (nest / "nest" / "sub" / "sub").exists()


def test_an_output_folder_holding_the_checkpoint_is_refused(nest, checkpoints, capsys, tmp_path):
    run_dir = nest / "run" / "checkpoints"
    run_dir.mkdir(parents=True)
    (run_dir / "step_000000001.safetensors").write_bytes(checkpoints["single"].read_bytes())
    tree = Tree(nest)
    result = run(["translate", nest / "run", nest / "nest", "-o", nest / "run", "--no-progress"], capsys)
    assert_refused(result, "translate", "step_000000001.safetensors")
    tree.assert_unchanged()


@pytest.mark.parametrize(
    "panels", ["nest", "nest/sub", "out"], ids=["input folder", "inside input", "output"]
)
def test_fusion_panels_never_replace_inputs_or_translations(panels, nest, checkpoints, capsys):
    tree = Tree(nest)
    result = run(
        [
            "translate",
            checkpoints["multi"],
            nest / "nest",
            "-o",
            nest / "out",
            "--fusion-panels",
            nest / panels,
            "--no-progress",
        ],
        capsys,
    )
    assert_refused(result, "translate", nest / panels)
    tree.assert_unchanged()


def test_separate_outputs_still_work(nest, checkpoints, capsys):
    tree = Tree(nest)
    result = run(["translate", checkpoints["single"], nest / "nest", "-o", nest / "nest" / "new"], capsys)
    assert result.code == 0, result.err
    tree.assert_unchanged()
    assert sorted(
        p.relative_to(nest / "nest" / "new").as_posix() for p in (nest / "nest" / "new").rglob("*.png")
    ) == [
        "a.png",
        "sub/a.png",
    ]
    # A second run would read its own outputs as inputs and write over them: refused.
    assert_refused(
        run(["translate", checkpoints["single"], nest / "nest", "-o", nest / "nest" / "new"], capsys),
        "translate",
        "new",
    )


# --- images that cannot be translated ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", BROKEN_IMAGE_KINDS)
def test_broken_images_are_reported_by_name_and_the_rest_translated(kind, nest, checkpoints, capsys):
    broken = write_broken_image(nest / "nest" / "broken.png", kind)
    tree = Tree(nest)
    result = run(
        ["translate", checkpoints["single"], nest / "nest", "-o", nest / "out", "--no-progress"], capsys
    )
    assert result.code == 1 and "Traceback" not in result.err
    assert f"failed: {broken}" in result.err
    assert "translated 2 image(s)" in result.out and "1 failed" in result.out
    tree.assert_unchanged()


def test_an_image_above_max_pixels_is_skipped_by_name(nest, checkpoints, capsys):
    tree = Tree(nest)
    result = run(
        [
            "translate",
            checkpoints["single"],
            nest / "nest",
            "-o",
            nest / "out",
            "--max-pixels",
            100,
            "--no-progress",
        ],
        capsys,
    )
    assert result.code == 1 and "Traceback" not in result.err
    assert (
        "16x12 = 192 pixels is above --max-pixels 100" in result.err
        and str(nest / "nest" / "a.png") in result.err
    )
    assert not (nest / "out").exists()
    tree.assert_unchanged()


def test_a_144_megapixel_png_is_refused_by_name_before_decoding(nest, checkpoints, capsys):
    """Pillow's limit (89 M pixels) is the default --max-pixels: the header is read, no pixel is decoded."""
    huge = huge_png_header(nest / "nest" / "huge.png")
    tree = Tree(nest)
    result = run(
        ["translate", checkpoints["single"], nest / "nest", "-o", nest / "out", "--no-progress"], capsys
    )
    assert result.code == 1 and "Traceback" not in result.err
    assert (
        f"failed: {huge}: 12000x12000 = 144000000 pixels is above --max-pixels {Image.MAX_IMAGE_PIXELS}"
        in result.err
    )
    assert "translated 2 image(s)" in result.out
    tree.assert_unchanged()


def test_a_bad_max_pixels_is_refused(nest, checkpoints, capsys):
    result = run(
        ["translate", checkpoints["single"], nest / "nest", "-o", nest / "out", "--max-pixels", 0], capsys
    )
    assert_refused(result, "translate", "--max-pixels")


def test_a_full_disk_stops_with_the_file_named(nest, checkpoints, capsys, monkeypatch):
    (nest / "out").mkdir()
    (nest / "out" / "a.png").write_bytes(b"an older translation")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    tree = Tree(nest)
    result = run(
        ["translate", checkpoints["single"], nest / "nest", "-o", nest / "out", "--no-progress"], capsys
    )
    line = assert_refused(result, "translate", nest / "out" / "a.png", "No space left on device")
    assert "stopped after writing 0 image(s)" in line
    tree.assert_unchanged()  # the older translation is intact, no temporary file is left


def test_missing_input_and_checkpoint_are_named(nest, checkpoints, capsys):
    assert_refused(
        run(["translate", checkpoints["single"], nest / "nowhere", "-o", nest / "out"], capsys),
        "translate",
        "nowhere",
    )
    assert_refused(
        run(["translate", nest / "no.safetensors", nest / "nest", "-o", nest / "out"], capsys),
        "translate",
        "no.safetensors",
    )


def test_an_output_folder_that_is_a_file_is_refused(nest, checkpoints, capsys):
    (nest / "out.png").write_bytes(b"mine")
    tree = Tree(nest)
    for options in (["-o", nest / "out.png"], ["-o", nest / "out", "--fusion-panels", nest / "out.png"]):
        result = run(["translate", checkpoints["multi"], nest / "nest", *options, "--no-progress"], capsys)
        assert "is a file" in assert_refused(result, "translate", nest / "out.png")
    tree.assert_unchanged()
