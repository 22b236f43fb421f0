"""FolderLock: one process per folder; a lock left by a killed process never blocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semst.locking import LOCK_NAME, FolderLock, FolderLockedError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _holder(folder: Path) -> subprocess.Popen:
    code = (
        "import time; from semst.locking import FolderLock; "
        f"FolderLock({str(folder)!r}, 'semst test').acquire(); print('locked', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_lock_names_its_owner_and_is_removed_on_release(tmp_path):
    folder = tmp_path / "new" / "folder"
    with FolderLock(folder, "semst train") as lock:
        assert lock.held and folder.is_dir()
        owner = json.loads((folder / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["command"] == "semst train"
        with pytest.raises(FolderLockedError, match=rf"semst train, PID {os.getpid()}"):
            FolderLock(folder, "semst train").acquire()  # a second open file: refused even in one process
    assert not lock.held and not (folder / LOCK_NAME).exists()
    FolderLock(folder, "again").acquire().release()


def test_another_process_holds_it_until_it_dies(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(FolderLockedError, match=rf"PID {holder.pid}") as error:
            FolderLock(tmp_path, "semst refine").acquire()
        assert str(tmp_path) in str(error.value)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays
        holder.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with FolderLock(tmp_path, "semst refine"):  # the kernel released the dead process's lock
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_lock_file_replaced_while_waiting_is_not_trusted(tmp_path, monkeypatch):
    """If the holder removes the file between our open and our lock, we retry on the new file."""
    import semst.locking as locking

    calls = {"n": 0}
    real = locking._try_lock

    def racing(fd):
        calls["n"] += 1
        if calls["n"] == 1:
            (tmp_path / LOCK_NAME).unlink()  # the previous owner released and removed it
        return real(fd)

    monkeypatch.setattr(locking, "_try_lock", racing)
    with FolderLock(tmp_path, "x"):
        assert calls["n"] == 2 and (tmp_path / LOCK_NAME).exists()
