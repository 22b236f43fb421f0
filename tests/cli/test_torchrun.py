"""`semst refine` and `semst translate` under torchrun: 2 gloo processes on the CPU share the files out, write
each file once, and give what one process gives, byte for byte; a killed process costs only its unfinished
files; a second job is refused. The processes run tests/cli/torchrun_helper.py (the semst command line with
hooks that log every file written and kill a process); in-process simulations of more cases are in
tests/test_refine_shards.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.cli import main
from semst.training.state import save_training_checkpoint

from ..conftest import TINY_MULTISCALE, tiny_config, training_setup, write_images

HELPER = Path(__file__).with_name("torchrun_helper.py")
SOURCE = Path(__file__).resolve().parents[2] / "src"
COUNT = 5  # images: process 0 refines 0, 2, 4 and process 1 refines 1, 3


def _torchrun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HELPER),
        *args,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SOURCE), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def _one_thread(args: list[str]) -> int:
    """``semst ARGS`` in this process with one torch thread, as each torchrun process runs (same arithmetic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(args)
    finally:
        torch.set_num_threads(threads)


def _writes(log: Path) -> Counter:
    """How often each file was written, from the helper's log (``RANK PATH`` lines)."""
    if not log.exists():
        return Counter()
    return Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines())


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A GTA5-layout data set, a multi-scale checkpoint, a segmenter for the quality gate, and the output of
    one process refining it (the reference)."""
    from semst.segmentation import SegmentationUNet, save_segmenter

    folder = tmp_path_factory.mktemp("torchrun")
    root = folder / "GTA5"
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    for i in range(COUNT):
        Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(
            root / "images" / f"{i:05d}.png"
        )
        labels = rng.choice([7, 8, 26, 0], size=(40, 70)).astype(np.uint8)
        Image.fromarray(labels, mode="L").save(root / "labels" / f"{i:05d}.png")
    config = tiny_config("semst", **TINY_MULTISCALE)
    networks, optimizers = training_setup(config)
    checkpoint = save_training_checkpoint(
        folder / "ck.safetensors", config=config, networks=networks, optimizers=optimizers, step=5
    )
    torch.manual_seed(0)
    segmenter = save_segmenter(SegmentationUNet(19, width=4, depth=2), folder / "seg.safetensors")

    def refine_args(out: Path) -> list[str]:
        gate = ["--check-with", str(segmenter), "--flag-below", "1.0"]
        return [
            "refine",
            str(checkpoint),
            "--dataset",
            f"gta5:{root}",
            "--out",
            str(out),
            "--no-progress",
            *gate,
        ]

    assert _one_thread(refine_args(folder / "reference")) == 0
    return folder, refine_args


def _manifest(out: Path) -> dict:
    """The manifest without what differs between runs: times, the number of processes, who wrote what."""
    manifest = json.loads((out / "refine.json").read_text())
    manifest = {k: v for k, v in manifest.items() if k not in ("started", "finished", "processes")}
    manifest["outputs"] = {
        name: {k: v for k, v in record.items() if k not in ("mtime_ns", "rank")}
        for name, record in manifest["outputs"].items()
    }
    return manifest


def test_refine_by_two_processes_equals_one_process(tmp_path, job):
    folder, refine_args = job
    out, log = tmp_path / "out", tmp_path / "writes.txt"
    result = _torchrun(*refine_args(out), env={"SEMST_TEST_WRITES": str(log)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("refined gta5") == 1  # process 0 reports for the job
    assert f"into {out} by 2 processes: {COUNT} written" in result.stdout
    reference = folder / "reference"
    mine, theirs = _files(out), _files(reference)
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        if name != "refine.json":
            assert mine[name] == theirs[name], name
    assert _manifest(out) == _manifest(reference)
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["processes"] == 2 and manifest["quality"]["scored"] == COUNT
    assert {manifest["outputs"][f"images/{i:05d}.png"]["rank"] for i in range(COUNT)} == {0, 1}
    # Every image and label map written once, by one of the two processes.
    written = _writes(log)
    outputs = {str((out / name).resolve()) for name in mine if name != "refine.json"}
    assert set(written) == outputs and set(written.values()) == {1}
    assert {line.split()[0] for line in log.read_text().splitlines()} == {"0", "1"}


def test_a_killed_process_costs_only_its_unfinished_images(tmp_path, job):
    folder, refine_args = job
    out, first, second = tmp_path / "out", tmp_path / "first.txt", tmp_path / "second.txt"
    # Process 1 is killed as it starts its second image (00003), once process 0 has finished its share
    # (three images and three labels in its journal).
    kill = {
        "SEMST_TEST_WRITES": str(first),
        "SEMST_TEST_KILL": "1:2",
        "SEMST_TEST_KILL_AFTER": f"{out / '.refine-journal.0.jsonl'}:6",
    }
    result = _torchrun(*refine_args(out), env=kill)
    assert result.returncode != 0
    assert json.loads((out / "refine.json").read_text())["status"] == "running"
    assert len((out / ".refine-journal.1.jsonl").read_text().splitlines()) == 2  # 00001: image and label
    done = {
        str((out / kind / f"{i:05d}.png").resolve()) for i in (0, 1, 2, 4) for kind in ("images", "labels")
    }
    assert set(_writes(first)) == done
    result = _torchrun(*refine_args(out), env={"SEMST_TEST_WRITES": str(second)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 written, 4 already there, 1 label maps" in result.stdout
    assert set(_writes(second)) == {
        str((out / kind / "00003.png").resolve()) for kind in ("images", "labels")
    }
    assert set((_writes(first) + _writes(second)).values()) == {1}  # no file written twice
    mine, theirs = _files(out), _files(folder / "reference")
    assert sorted(mine) == sorted(theirs)
    assert all(mine[name] == theirs[name] for name in mine if name != "refine.json")
    manifest, reference = _manifest(out), _manifest(folder / "reference")
    assert manifest["status"] == "complete" and manifest["outputs"] == reference["outputs"]
    assert manifest["quality"] == reference["quality"]  # kept frames are scored from their files
    assert not list(out.glob(".refine-journal*"))


@pytest.mark.slow  # the same logic runs in-process in tests/test_refine_shards.py
def test_a_second_job_is_refused_and_every_process_stops(tmp_path, job):
    from semst.locking import FolderLock

    _, refine_args = job
    out = tmp_path / "out"
    with FolderLock(out, "semst refine"):  # the first job's process 0
        result = _torchrun(*refine_args(out))
    assert result.returncode != 0
    # Both processes stop with the lock's message (process 1 learns it from process 0), none waits forever.
    assert result.stderr.count("is in use by another process") == 2
    assert not (out / "images").exists() and not (out / "refine.json").exists()


def test_translate_by_two_processes(tmp_path, make_config):
    inputs = tmp_path / "in"
    write_images(inputs, COUNT, (44, 36), seed=3)
    networks, optimizers = training_setup(make_config("semst"))
    checkpoint = save_training_checkpoint(
        tmp_path / "ck.safetensors",
        config=make_config("semst"),
        networks=networks,
        optimizers=optimizers,
        step=1,
    )
    assert (
        _one_thread(["translate", str(checkpoint), str(inputs), "-o", str(tmp_path / "one"), "--no-progress"])
        == 0
    )
    out, log = tmp_path / "two", tmp_path / "writes.txt"
    args = ["translate", str(checkpoint), str(inputs), "-o", str(out), "--no-progress"]
    result = _torchrun(*args, env={"SEMST_TEST_WRITES": str(log)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("translated") == 1 and f"translated {COUNT} image(s)" in result.stdout
    assert _files(out) == _files(tmp_path / "one")
    assert set(_writes(log).values()) == {1} and len(_writes(log)) == COUNT
    # A stopped run is finished with --no-overwrite: only the missing files, shared out again.
    for i in (1, 2):
        (out / f"img_{i:02d}.png").unlink()
    log.unlink()
    result = _torchrun(*args, "--no-overwrite", env={"SEMST_TEST_WRITES": str(log)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"translated 2 image(s) into {out} by 2 processes, skipped {COUNT - 2} existing" in result.stdout
    assert sorted(line.split()[0] for line in log.read_text().splitlines()) == ["0", "1"]
    assert _files(out) == _files(tmp_path / "one")
