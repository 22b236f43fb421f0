"""semst.overlap.refuse_overlap: outputs that are inputs, or folders that hold inputs, are refused."""

from __future__ import annotations

import os

import pytest

from semst.overlap import OverlapError, refuse_overlap


@pytest.fixture
def tree(tmp_path):
    """nest/a.png, nest/sub/a.png, nest/empty/, other/b.png."""
    for name in ("nest/a.png", "nest/sub/a.png", "other/b.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "nest" / "empty").mkdir()
    return tmp_path


def test_separate_outputs_pass(tree):
    refuse_overlap(
        [tree / "nest"], files=[tree / "out.json"], folders=[tree / "out", tree / "nest" / "empty"]
    )
    refuse_overlap([tree / "nest" / "a.png"], folders=[tree / "nest" / "new" / "deeper"])
    refuse_overlap([None, tree / "missing.png"], files=[None], folders=[None, tree / "nest"])


def test_an_output_file_that_is_an_input_is_refused(tree):
    with pytest.raises(OverlapError, match="it is the input file") as caught:
        refuse_overlap([tree / "nest"], files=[tree / "nest" / "sub" / "a.png"])
    assert caught.value.input == tree / "nest" / "sub" / "a.png"
    with pytest.raises(OverlapError, match="a.png"):
        refuse_overlap([tree / "nest" / "a.png"], files=[tree / "nest" / "sub" / ".." / "a.png"])


def test_an_output_folder_holding_an_input_is_refused(tree):
    # The reported bug: translate nest -o nest/sub, where nest/sub/a.png is an input.
    with pytest.raises(OverlapError, match="holds the input file") as caught:
        refuse_overlap([tree / "nest"], folders=[tree / "nest" / "sub"])
    assert caught.value.output == tree / "nest" / "sub"
    for folder in (tree / "nest", tree):
        with pytest.raises(OverlapError):
            refuse_overlap([tree / "nest" / "sub" / "a.png"], folders=[folder])
    with pytest.raises(OverlapError, match="it is the input file"):
        refuse_overlap([tree / "other" / "b.png"], folders=[tree / "other" / "b.png"])


def test_an_output_file_that_is_an_input_folder_is_refused(tree):
    with pytest.raises(OverlapError, match="folder holding the input"):
        refuse_overlap([tree / "nest"], files=[tree / "nest" / "sub"])


def test_links_are_followed(tree):
    os.symlink(tree / "nest" / "sub", tree / "link")
    os.symlink(tree / "other" / "b.png", tree / "b_link.png")
    with pytest.raises(OverlapError):
        refuse_overlap([tree / "nest"], folders=[tree / "link"])
    with pytest.raises(OverlapError):
        refuse_overlap([tree / "link" / "a.png"], folders=[tree / "nest"])
    with pytest.raises(OverlapError):
        refuse_overlap([tree / "b_link.png"], files=[tree / "other" / "b.png"])
    with pytest.raises(OverlapError):
        refuse_overlap([tree / "other"], files=[tree / "b_link.png"])


def test_a_folder_link_loop_ends(tree):
    os.symlink(tree / "nest", tree / "nest" / "sub" / "loop")
    refuse_overlap([tree / "nest"], folders=[tree / "out"])
