"""An exclusive lock on a folder, so that two semst processes never write the same run or output folder.

``semst train --out RUN`` and ``semst refine --out OUT`` hold :class:`FolderLock` on their folder for as long
as they write to it; a second process asking for the same folder gets :class:`FolderLockedError`, which names
the process holding it::

    with FolderLock(run_dir, "semst train"):
        ...  # only this process writes run_dir

How it works: the lock file ``FOLDER/.semst.lock`` holds the owner's PID, host and start time (for the
message); the lock itself is the operating system's advisory lock on that file (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows), which the kernel releases when the owner exits, however it exits. So a lock
file left behind by a process that was killed (``SIGKILL``, power loss) never blocks a later run: the next
process locks the file and writes its own PID into it. The file is removed on release. Locks work across
processes on one machine and, where the file system supports ``flock`` (local disks; NFS on Linux emulates it
with byte-range locks), across machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "FolderLock", "FolderLockedError"]

LOCK_NAME = ".semst.lock"

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _wait_for_lock(fd: int) -> bool:
        while not _try_lock(fd):
            time.sleep(0.5)
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait_for_lock(fd: int) -> bool:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True


class FolderLockedError(OSError):
    """Another process holds the folder's lock; the message names it (PID, host, command, start time)."""


class FolderLock:
    """An exclusive lock on a folder (see the module docstring), non-blocking unless ``wait``.

    Args:
        folder: The folder to lock; created (with its parents) if missing.
        purpose: What the lock is for, as messages name it (``"semst train"``).
        wait: wait until the holder releases the lock instead of raising (for work that processes of one
            job take turns at, such as the shared preparation of a study's shards).
    """

    def __init__(self, folder: str | os.PathLike[str], purpose: str, *, wait: bool = False) -> None:
        self.folder = Path(folder)
        self.purpose = purpose
        self.wait = wait
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Takes the lock, or raises `FolderLockedError` at once if another process holds it (waits for it
        with ``wait``)."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            if not (_wait_for_lock(fd) if self.wait else _try_lock(fd)):
                holder = _describe_holder(fd)
                os.close(fd)
                raise FolderLockedError(
                    f"{self.folder} is in use by another process ({holder}); two processes writing one folder "
                    f"would overwrite each other's files. Wait for it to finish, or choose another folder "
                    f"(lock file {self.path})"
                )
            # A process releasing the lock removes the file after we opened it: then we hold a lock on a
            # file that no longer has the name, and must try again on the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.purpose,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(owner).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Removes the lock file and releases the lock (a no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if sys.platform == "win32":  # pragma: no cover - an open file cannot be removed on Windows
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding the lock (see acquire)
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    """``"semst train, PID 123 on host, since ..."`` from a locked file's content (best effort)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 4096).decode() or "{}")
        return (
            f"{owner.get('command', 'semst')}, PID {owner.get('pid', '?')} on {owner.get('host', '?')}, "
            f"since {owner.get('started', '?')}"
        )
    except (OSError, ValueError):
        return "semst, PID unknown"
