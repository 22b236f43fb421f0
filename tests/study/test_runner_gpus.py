"""How `Study.run` spreads worker processes over GPUs, when it warns that runs share one without MPS, and
that its workers stop with it."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from semst.study import runner


@pytest.mark.parametrize(
    ("jobs", "count", "visible", "expected"),
    [
        (4, 0, None, []),  # no GPU: nothing to deal out
        (4, 1, None, []),  # one GPU: every run takes it ("auto")
        (4, 2, None, ["0", "1", "0", "1"]),
        (3, 8, None, ["0", "1", "2"]),
        (5, 2, "3,6", ["3", "6", "3", "6", "3"]),  # the user's own choice of GPUs is kept
        (2, 2, "GPU-a1, GPU-b2", ["GPU-a1", "GPU-b2"]),  # UUIDs too
    ],
)
def test_workers_are_dealt_the_visible_gpus_in_turn(jobs, count, visible, expected):
    assert runner.worker_gpus(jobs, count, visible) == expected


def test_a_worker_sees_the_gpu_it_takes(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    queue = multiprocessing.get_context("spawn").Queue()
    queue.put("1")
    runner._take_gpu(queue)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.parametrize(
    ("jobs", "gpus", "mps", "warns"),
    [
        (1, 1, False, False),
        (4, 1, False, True),
        (4, 1, True, False),
        (4, 4, False, False),
        (8, 4, False, True),
    ],
)
def test_runs_sharing_a_gpu_without_mps_are_warned_about(monkeypatch, tmp_path, jobs, gpus, mps, warns):
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    if mps:
        (tmp_path / "control").touch()
    note = runner.gpu_sharing_note(jobs, gpus)
    assert (note is not None) == warns
    if warns:
        assert f"{jobs} runs will share {gpus} GPU(s) without NVIDIA's MPS" in note
        assert "nvidia-cuda-mps-control -d" in note


def test_no_warning_without_cuda():
    assert runner.gpu_sharing_note(8, 0) is None


_ORPHAN_SCRIPT = """
import concurrent.futures, multiprocessing, os, time
from semst.study import runner

if __name__ == "__main__":
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=runner._init_worker,
        initargs=(os.getpid(), None, 0.2),
    )
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_a_worker_stops_when_the_study_process_is_killed(tmp_path):
    # SIGKILL runs no handler in the study's process: only the worker's own watch can end it.
    script = tmp_path / "study.py"
    script.write_text(_ORPHAN_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        time.sleep(0.5)
        assert _alive(worker)  # the watch leaves a worker alone while its study lives
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
