"""`semst train` against bad inputs and conditions (issue 13): every case exits with a clear message that
names the offending path (or trains on, warning by name), and no file that existed before changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semst import checkpoint as ckpt
from semst.cli import main
from semst.locking import LOCK_NAME
from semst.training.loop import train

from ..conftest import TINY_OVERRIDES, write_images
from .tree import changed, tree_hashes

SETS = [f"{key}={value}" for key, value in TINY_OVERRIDES.items()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """ROOT/trainA (4 images) and ROOT/trainB (3 images)."""
    root = tmp_path / "data"
    write_images(root / "trainA", 4, (40, 48), seed=1)
    write_images(root / "trainB", 3, (48, 40), seed=2)
    return root


def _train(data: Path, out: Path, *extra: str, steps: int = 1) -> int:
    args = ["train", "--data", str(data), "--out", str(out), "--max-steps", str(steps), "--no-progress"]
    return main([*args, *extra, "--set", *SETS])


def _expect_refused(capsys, tmp_path, run, *names, code: int = 1) -> str:
    """Runs ``run()``; asserts the exit code, that the message names ``names``, no traceback, no file changed."""
    before = tree_hashes(tmp_path)
    assert run() == code
    captured = capsys.readouterr()
    message = captured.err + captured.out
    for name in names:
        assert str(name) in message, f"{name} not named in: {message}"
    assert "Traceback" not in message
    assert changed(before, tree_hashes(tmp_path)) == []
    return message


def _truncate(path: Path) -> None:
    """Cut the file in half: the header stays (Image.open works), decoding the pixels fails."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- the run folder may not lie in the data ---------------------------------------------------------


@pytest.mark.parametrize("where", ["trainA/run", "trainB/deeper/run", "trainA"])
def test_run_folder_inside_the_data_is_refused(tmp_path, data, capsys, where):
    out = data / where
    domain_folder = data / where.split("/")[0]
    _expect_refused(capsys, tmp_path, lambda: _train(data, out), domain_folder)
    assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()


def test_run_folder_inside_the_data_through_a_link_is_refused(tmp_path, data, capsys):
    os.symlink(data / "trainB", tmp_path / "runs")  # runs/x is trainB/x
    _expect_refused(capsys, tmp_path, lambda: _train(data, tmp_path / "runs" / "x"), data / "trainB")
    assert not (data / "trainB" / "x").exists()


def test_data_inside_the_run_samples_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    write_images(run / "samples" / "A", 2, (40, 48), seed=1)
    write_images(tmp_path / "B", 2, (40, 48), seed=2)
    args = ["train", "--source", str(run / "samples" / "A"), "--target", str(tmp_path / "B")]
    _expect_refused(
        capsys,
        tmp_path,
        lambda: main([*args, "--out", str(run), "--max-steps", "1", "--no-progress", "--set", *SETS]),
        run / "samples",
    )


def test_named_data_set_root_contains_the_run(tmp_path, capsys):
    from ..cli.test_refine_cli import _gta5

    root = _gta5(tmp_path / "GTA5")
    write_images(tmp_path / "B", 2, (48, 40), seed=2)
    args = ["train", "--data", f"gta5:{root}", "--target", str(tmp_path / "B"), "--out", str(root / "run")]
    _expect_refused(
        capsys, tmp_path, lambda: main([*args, "--max-steps", "1", "--no-progress", "--set", *SETS]), root
    )


# --- unreadable images --------------------------------------------------------------------------------


def test_zero_byte_image_is_named_before_the_first_step(tmp_path, data, capsys):
    bad = data / "trainA" / "img_02.png"
    bad.write_bytes(b"")
    out = tmp_path / "run"
    message = _expect_refused(capsys, tmp_path, lambda: _train(data, out), bad)
    assert "nothing was trained" in message
    assert not out.exists()  # not even an empty run folder is left


def test_every_unreadable_image_is_listed_in_one_error(tmp_path, data, capsys):
    zero = data / "trainA" / "img_00.png"
    zero.write_bytes(b"")
    text = data / "trainB" / "notes.png"
    text.write_text("not an image")
    dangling = data / "trainB" / "moved.jpg"
    os.symlink(tmp_path / "gone.jpg", dangling)
    message = _expect_refused(capsys, tmp_path, lambda: _train(data, tmp_path / "run"), zero, text, dangling)
    assert "3 of the 9 training images cannot be read" in message


def test_resume_after_an_image_broke_is_a_clear_error(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert _train(data, out) == 0
    bad = data / "trainA" / "img_01.png"
    bad.write_bytes(b"")
    capsys.readouterr()
    _expect_refused(capsys, tmp_path, lambda: _train(data, out, "--resume", steps=2), bad)


def test_image_that_fails_to_decode_is_replaced_and_logged(tmp_path, data, capsys):
    bad = data / "trainA" / "img_00.png"
    _truncate(bad)
    out = tmp_path / "run"
    assert _train(data, out, steps=4) == 0  # every source image is drawn once in 4 steps
    log = (out / "train.log").read_text()
    assert f"cannot decode {bad}" in log and "1 image(s) could not be decoded" in log
    scalars = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    assert scalars[-1]["data/unreadable_images"] == 1


def test_every_image_of_a_domain_failing_to_decode_is_a_clear_error(tmp_path, data, capsys):
    for path in (data / "trainB").iterdir():
        _truncate(path)
    message = _expect_refused(capsys, tmp_path, lambda: _train(data, tmp_path / "run"), data / "trainB")
    assert "could be decoded" in message


def test_resume_with_a_broken_image_equals_the_straight_run(tmp_path, image_folders, make_config):
    source, target = image_folders
    # Every source image is drawn once in the 4 steps; the last one is replaced by the first (wrapping around).
    _truncate(sorted(source.iterdir())[1])
    _truncate(sorted(source.iterdir())[3])

    def config(steps):
        return make_config("semst", source, target, **{"train.max_steps": steps})

    straight = train(config(4), tmp_path / "straight", progress=False)
    train(config(2), tmp_path / "split", progress=False)
    resumed = train(config(4), tmp_path / "split", resume=True, progress=False)
    assert (tmp_path / "straight" / "train.log").read_text().count("cannot decode") == 2
    a, b = ckpt.load_tensors(straight), ckpt.load_tensors(resumed)
    assert a.keys() == b.keys()
    for name in a:
        if not name.startswith("rng."):
            assert torch.equal(a[name], b[name]), name


# --- one run per folder, and what a killed run leaves -----------------------------------------------


def _hold_lock(folder: Path):
    code = (
        "import time; from semst.locking import FolderLock; "
        f"FolderLock({str(folder)!r}, 'semst train').acquire(); print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_second_train_on_a_locked_run_folder_stops(tmp_path, data, capsys, resume):
    out = tmp_path / "run"
    if resume:
        assert _train(data, out) == 0
        capsys.readouterr()
    holder = _hold_lock(out)
    try:
        extra = ("--resume",) if resume else ()
        message = _expect_refused(
            capsys, tmp_path, lambda: _train(data, out, *extra, steps=2), out, f"PID {holder.pid}"
        )
        assert "semst train" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_run_lock_does_not_block(tmp_path, data):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    holder.kill()
    holder.wait()
    assert (out / LOCK_NAME).exists()
    assert _train(data, out) == 0
    assert not (out / LOCK_NAME).exists()


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, data, capsys, monkeypatch
):
    from safetensors import SafetensorError

    out = tmp_path / "run"
    assert _train(data, out) == 0
    capsys.readouterr()
    good = out / "checkpoints" / ckpt.checkpoint_name(1)

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 10)
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(ckpt, "save_file", full)
    good_bytes = good.read_bytes()
    assert _train(data, out, "--resume", steps=2) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("semst train: error")]
    assert "Traceback" not in err and len(errors) == 1
    assert str(out / "checkpoints" / ckpt.checkpoint_name(2)) in errors[0] and str(good) in errors[0]
    assert "No space left on device" in errors[0] and "--resume" in errors[0]
    assert good.read_bytes() == good_bytes
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [good.name]  # no temporary left


def test_leftover_temporaries_are_removed_on_the_next_start(tmp_path, data):
    out = tmp_path / "run"
    assert _train(data, out) == 0
    hexdigits = "0123456789abcdef" * 2
    leftovers = [
        out / "checkpoints" / f".step_000000002.safetensors.{hexdigits}.tmp",
        out / "samples" / f".samples_step_000000002.png.{hexdigits}.tmp",
        out / f".config.yaml.{hexdigits}.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"partial")
    kept = [out / "notes.tmp", out / "checkpoints" / ".step.safetensors.xyz.tmp"]  # not semst's names
    for path in kept:
        path.write_text("the user's")
    assert _train(data, out, "--resume", steps=2) == 0
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_text() == "the user's" for path in kept)
    assert "removed 3 temporary file(s)" in (out / "train.log").read_text()


def test_resume_drops_the_scalars_logged_after_the_checkpoint(tmp_path, data):
    out = tmp_path / "run"
    assert _train(data, out, steps=2) == 0
    scalars = out / "scalars.jsonl"
    with open(scalars, "a", encoding="utf-8") as handle:  # what a run killed at step 4 had logged
        handle.write(json.dumps({"step": 3, "D/loss": 1.0}) + "\n")
        handle.write(json.dumps({"step": 4, "D/loss": 1.0}) + "\n")
        handle.write('{"step": 5, "D/lo')  # cut short by the kill
    assert _train(data, out, "--resume", steps=4) == 0
    steps = [json.loads(line)["step"] for line in scalars.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert "dropped 3 record(s) after step 2" in (out / "train.log").read_text()


def test_a_failed_start_leaves_no_run_folder(tmp_path, data, capsys):
    out = tmp_path / "new-run"
    _expect_refused(capsys, tmp_path, lambda: _train(data, out, "--resume"), out)
    assert not out.exists()
