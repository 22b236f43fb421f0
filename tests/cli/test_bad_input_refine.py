"""`semst refine` against bad inputs and conditions (issue 13): every case exits with a clear message that
names the offending path, and no file that existed before the run changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semst.cli import main
from semst.locking import LOCK_NAME
from semst.training.state import save_training_checkpoint

from ..conftest import training_setup
from .tree import changed, tree_hashes

SIZE = (44, 32)  # (W, H) of the fixture images


def _image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _label(path: Path, values, size: tuple[int, int] = SIZE, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if np.isscalar(values) or len(np.shape(values)) == 1:
        rng = np.random.default_rng(len(str(path)))
        values = rng.choice(np.atleast_1d(values), size=(size[1], size[0]))
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode=mode).save(path)
    return path


def _folder_dataset(root: Path) -> Path:
    """CUT folders with 2 images in each of trainA, trainB, valA, valB; trainA and valA have train-id labels."""
    for k, split in enumerate(("trainA", "trainB", "valA", "valB")):
        for i in range(2):
            _image(root / split / f"{i}.png", seed=10 * k + i)
            if split.endswith("A"):
                _label(root / f"{split}_labels" / f"{i}.png", [0, 1, 10, 255])
    return root


def _gta5(root: Path, count: int = 2) -> Path:
    for i in range(count):
        _image(root / "images" / f"{i:05d}.png", seed=i)
        _label(root / "labels" / f"{i:05d}.png", [7, 8, 26, 0])
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny translator checkpoints with different weights (steps 5 and 7)."""
    from ..conftest import tiny_config

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for seed, step in ((0, 5), (1, 7)):
        config = tiny_config("semst")
        networks, optimizers = training_setup(config, seed=seed)
        paths.append(
            save_training_checkpoint(
                folder / f"ck{seed}.safetensors",
                config=config,
                networks=networks,
                optimizers=optimizers,
                step=step,
            )
        )
    return paths


def _refine(checkpoint, dataset: str, out: Path, *extra: str) -> int:
    return main(["refine", str(checkpoint), "--dataset", dataset, "--out", str(out), "--no-progress", *extra])


def _expect_refused(capsys, tmp_path, run, *names: str, code: int = 1) -> str:
    """Runs ``run()``; asserts the exit code, that the message names ``names`` and that no file changed."""
    before = tree_hashes(tmp_path)
    assert run() == code
    captured = capsys.readouterr()
    message = captured.err + captured.out
    for name in names:
        assert str(name) in message, f"{name} not named in: {message}"
    assert "Traceback" not in message
    assert changed(before, tree_hashes(tmp_path)) == []
    return message


# --- "all" means all ------------------------------------------------------------------------------------


def test_without_split_every_split_is_refined(tmp_path, checkpoints, capsys):
    root = _folder_dataset(tmp_path / "data")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"folder:{root}", out) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len([name for name in written if "_labels" not in name]) == 8  # 4 splits x 2 images (was 2)
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["dataset"]["splits"] == ["trainA", "trainB", "valA", "valB"]
    assert manifest["samples"] == 8 and manifest["status"] == "complete"
    assert "trainA, trainB, valA, valB" in capsys.readouterr().out


def test_split_list(tmp_path, checkpoints):
    root = _folder_dataset(tmp_path / "data")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"folder:{root}", out, "--split", "trainA,valA") == 0
    assert sorted(p.parent.name for p in out.rglob("*.png") if "_labels" not in p.parent.name) == [
        "trainA",
        "trainA",
        "valA",
        "valA",
    ]


def test_unknown_split_is_named(tmp_path, checkpoints, capsys):
    root = _folder_dataset(tmp_path / "data")
    _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(checkpoints[0], f"folder:{root}", tmp_path / "out", "--split", "testA"),
        "testA",
    )
    assert not (tmp_path / "out").exists()


# --- who made the outputs -----------------------------------------------------------------------------


def test_every_output_records_its_checkpoint(tmp_path, checkpoints):
    from semst.refine import file_sha256

    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    manifest = json.loads((out / "refine.json").read_text())
    digest = file_sha256(checkpoints[0])
    assert (
        manifest["producer"]["checkpoint_sha256"] == digest and manifest["producer"]["checkpoint_step"] == 5
    )
    image = manifest["outputs"]["images/00000.png"]
    assert image["checkpoint_sha256"] == digest and image["checkpoint_step"] == 5
    assert image["sha256"] == file_sha256(out / "images" / "00000.png")
    assert manifest["outputs"]["labels/00000.png"]["sha256"] == file_sha256(root / "labels" / "00000.png")
    assert not (out / ".refine-journal.jsonl").exists() and not (out / LOCK_NAME).exists()


def test_rerun_with_another_checkpoint_is_refused(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    capsys.readouterr()
    message = _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[1], f"gta5:{root}", out), checkpoints[0], "step 5"
    )
    assert "would mix" in message


def test_an_interrupted_run_cannot_be_finished_by_another_checkpoint(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5", count=3)
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out, "--limit", "1") == 0
    capsys.readouterr()
    _expect_refused(capsys, tmp_path, lambda: _refine(checkpoints[1], f"gta5:{root}", out), checkpoints[0])
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0  # the same checkpoint finishes it
    assert "2 written, 1 already there" in capsys.readouterr().out


def test_a_killed_run_resumes_from_its_journal(tmp_path, checkpoints, capsys, monkeypatch):
    from semst.translators import Translator

    root = _gta5(tmp_path / "GTA5", count=3)
    out = tmp_path / "out"
    original, calls = Translator.translate, {"n": 0}

    def killed(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate", killed)
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 130
    monkeypatch.undo()
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["status"] == "running" and manifest["producer"]["checkpoint_step"] == 5
    assert (out / ".refine-journal.jsonl").read_text().count("images/00000.png") == 1
    capsys.readouterr()
    _expect_refused(capsys, tmp_path, lambda: _refine(checkpoints[1], f"gta5:{root}", out), checkpoints[0])
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    assert "2 written, 1 already there" in capsys.readouterr().out


def test_source_folder_linked_to_the_output_is_refused(tmp_path, checkpoints, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    for i in range(2):
        _image(out / "trainA" / f"{i}.png", seed=i)
    data.mkdir()
    os.symlink(out / "trainA", data / "trainA")  # the data set's trainA is OUT/trainA
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"folder:{data}", out), data / "trainA" / "0.png"
    )


def test_output_folder_linked_into_the_data_set_is_refused(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(root / "images", out / "images")  # OUT/images is the data set's images folder
    _expect_refused(capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), root / "images")


def test_output_inside_the_data_set_is_refused(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", root / "refined"), root / "refined"
    )


def test_foreign_files_in_the_output_folder_are_not_taken_for_refined_images(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    _image(out / "images" / "00000.png", seed=99)  # not written by refine, no manifest
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), out / "images" / "00000.png"
    )


def test_unreadable_manifest_is_refused(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    out.mkdir()
    (out / "refine.json").write_text("{ not json")
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), out / "refine.json"
    )


def test_manifest_without_producer_is_refused(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    _image(out / "images" / "00000.png", seed=99)
    (out / "refine.json").write_text(json.dumps({"format": "semst-refined", "checkpoint": "old.safetensors"}))
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), out / "refine.json"
    )


def test_changed_output_is_refined_again(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    first = (out / "images" / "00001.png").read_bytes()
    _image(out / "images" / "00001.png", seed=123)  # replaced behind refine's back
    capsys.readouterr()
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    assert "1 written, 1 already there" in capsys.readouterr().out
    assert (out / "images" / "00001.png").read_bytes() == first
    assert json.loads((out / "refine.json").read_text())["rewritten"] == ["images/00001.png"]


# --- locking and leftovers ----------------------------------------------------------------------------


def _hold_lock(folder: Path):
    """A separate process holding ``folder``'s lock until it is terminated."""
    code = (
        "import sys, time; from semst.locking import FolderLock; "
        f"FolderLock({str(folder)!r}, 'semst refine').acquire(); print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_refine_into_a_locked_folder_stops(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    holder = _hold_lock(out)
    try:
        message = _expect_refused(
            capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), out, f"PID {holder.pid}"
        )
        assert "in use by another process" in message
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "images").exists()


def test_a_dead_process_lock_does_not_block(tmp_path, checkpoints):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    holder = _hold_lock(out)
    holder.kill()  # SIGKILL: the lock file stays behind, the kernel drops the lock
    holder.wait()
    assert (out / LOCK_NAME).exists()
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    assert not (out / LOCK_NAME).exists()


def test_leftover_temporaries_are_removed_and_other_files_kept(tmp_path, checkpoints):
    root = _gta5(tmp_path / "GTA5")
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    leftover = out / "images" / f".00001.png.{'ab' * 16}.tmp"
    leftover.write_bytes(b"half an image")
    mine = out / "images" / "notes.tmp"
    mine.write_text("the user's")
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 0
    assert not leftover.exists() and mine.read_text() == "the user's"


# --- label maps -----------------------------------------------------------------------------------------


def _bad_label(kind: str, path: Path) -> None:
    path.unlink()
    if kind == "wrong size":
        _label(path, [7, 8], size=(SIZE[0] - 4, SIZE[1]))
    elif kind == "id outside the table":
        _label(path, [7, 40])
    elif kind == "truncated":
        _label(path, [7, 8])
        path.write_bytes(path.read_bytes()[:60])
    elif kind == "zero bytes":
        path.write_bytes(b"")
    elif kind == "not an image":
        path.write_text("label")
    elif kind == "colour image":
        _image(path, seed=3)
    elif kind == "dangling link":
        os.symlink(path.parent / "gone.png", path)


LABEL_CASES = [
    "wrong size",
    "id outside the table",
    "truncated",
    "zero bytes",
    "not an image",
    "colour image",
    "dangling link",
]


@pytest.mark.parametrize("kind", LABEL_CASES)
def test_bad_label_fails_before_any_work(tmp_path, checkpoints, capsys, kind):
    root = _gta5(tmp_path / "GTA5", count=3)
    bad = root / "labels" / "00001.png"
    _bad_label(kind, bad)
    out = tmp_path / "out"
    message = _expect_refused(capsys, tmp_path, lambda: _refine(checkpoints[0], f"gta5:{root}", out), bad)
    assert "--bad-labels skip" in message
    assert not out.exists()  # nothing was written, not even the folder


def test_every_bad_label_is_named(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5", count=3)
    _bad_label("wrong size", root / "labels" / "00000.png")
    _bad_label("id outside the table", root / "labels" / "00002.png")
    message = _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(checkpoints[0], f"gta5:{root}", tmp_path / "out"),
        root / "labels" / "00000.png",
        root / "labels" / "00002.png",
    )
    assert "2 label maps" in message and "40" in message


def test_bad_labels_can_be_skipped_and_are_listed(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5", count=3)
    bad = root / "labels" / "00001.png"
    _bad_label("id outside the table", bad)
    out = tmp_path / "out"
    assert _refine(checkpoints[0], f"gta5:{root}", out, "--bad-labels", "skip") == 0
    assert str(bad) in capsys.readouterr().out
    assert not (out / "images" / "00001.png").exists() and not (out / "labels" / "00001.png").exists()
    assert (out / "images" / "00002.png").exists()
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["bad_labels"]["mode"] == "skip"
    assert [entry["label"] for entry in manifest["bad_labels"]["skipped"]] == [str(bad)]


def test_train_id_labels_above_18_are_refused(tmp_path, checkpoints, capsys):
    root = _folder_dataset(tmp_path / "data")
    bad = root / "valA_labels" / "1.png"
    _label(bad, [3, 19])  # 19 is no train id
    _expect_refused(
        capsys, tmp_path, lambda: _refine(checkpoints[0], f"folder:{root}", tmp_path / "out"), bad
    )


def test_dangling_image_link_is_reported(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5", count=2)
    (root / "labels" / "00001.png").unlink()
    (root / "images" / "00001.png").unlink()
    os.symlink(tmp_path / "elsewhere.png", root / "images" / "00001.png")
    out = tmp_path / "out"
    before = tree_hashes(tmp_path)
    # The dangling link is listed with the data set (it was silently left out): its missing label is named.
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 1
    assert "00001.png" in capsys.readouterr().err
    assert changed(before, tree_hashes(tmp_path)) == []
    _label(root / "labels" / "00001.png", [7, 8])
    assert _refine(checkpoints[0], f"gta5:{root}", out) == 1
    captured = capsys.readouterr()
    assert "symbolic link" in captured.out + captured.err and "elsewhere.png" in captured.out + captured.err
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["failed"][0]["image"] == str(root / "images" / "00001.png")
    assert "symbolic link" in manifest["failed"][0]["reason"]


# --- quality gate options -------------------------------------------------------------------------------


def test_thresholds_need_a_segmenter(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(checkpoints[0], f"gta5:{root}", tmp_path / "out", "--flag-below", "0.5"),
        "--check-with",
    )


def test_threshold_out_of_range_is_a_usage_error(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    with pytest.raises(SystemExit) as exit_info:
        _refine(checkpoints[0], f"gta5:{root}", tmp_path / "out", "--drop-below", "80")
    assert exit_info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_quality_gate_needs_labels(tmp_path, checkpoints, capsys):
    root = tmp_path / "data"
    _image(root / "trainA" / "0.png", seed=0)
    _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(
            checkpoints[0], f"folder:{root}", tmp_path / "out", "--check-with", str(tmp_path / "seg.onnx")
        ),
        str(root),
    )


def test_missing_segmenter_is_named(tmp_path, checkpoints, capsys):
    root = _gta5(tmp_path / "GTA5")
    missing = tmp_path / "no-such-segmenter.safetensors"
    _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(checkpoints[0], f"gta5:{root}", tmp_path / "out", "--check-with", str(missing)),
        missing,
    )
    assert not (tmp_path / "out").exists()


def test_segmenter_with_other_classes_is_refused(tmp_path, checkpoints, capsys):
    import torch

    from semst.segmentation import SegmentationUNet, save_segmenter

    torch.manual_seed(0)
    segmenter = save_segmenter(SegmentationUNet(4, width=4, depth=2), tmp_path / "seg4.safetensors")
    root = _gta5(tmp_path / "GTA5")
    _expect_refused(
        capsys,
        tmp_path,
        lambda: _refine(checkpoints[0], f"gta5:{root}", tmp_path / "out", "--check-with", str(segmenter)),
        segmenter,
        "4 classes",
    )
    assert not (tmp_path / "out").exists()


def test_quality_gate_end_to_end(tmp_path, checkpoints, capsys):
    import torch

    from semst.segmentation import SegmentationUNet, save_segmenter

    torch.manual_seed(0)
    segmenter = save_segmenter(SegmentationUNet(19, width=4, depth=2), tmp_path / "seg.safetensors")
    root = _gta5(tmp_path / "GTA5", count=3)
    out = tmp_path / "out"
    args = ("--check-with", str(segmenter), "--flag-below", "1.0")
    assert _refine(checkpoints[0], f"gta5:{root}", out, *args) == 0
    printed = capsys.readouterr().out
    assert "quality gate" in printed and "3 frame(s) scored" in printed and "3 flagged" in printed
    quality = json.loads((out / "refine.json").read_text())["quality"]
    assert quality["scored"] == 3 and set(quality["frames"]) == {f"images/{i:05d}.png" for i in range(3)}
    assert quality["flagged"] == sorted(quality["frames"])  # nothing is perfect at 1.0
    # A resumed run scores the frames it keeps from their files.
    assert _refine(checkpoints[0], f"gta5:{root}", out, *args) == 0
    again = json.loads((out / "refine.json").read_text())["quality"]
    assert again["frames"] == quality["frames"] and again["flips"] == quality["flips"]
