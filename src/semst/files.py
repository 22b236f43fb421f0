"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every file semst writes (checkpoints, exported models, images, label maps, JSON reports, manifests) goes
through this module. A write goes to a temporary file in the destination's folder, is flushed to disk
(``fsync``) and is renamed over the destination (``os.replace``, atomic on POSIX and Windows). On any
failure, including ``KeyboardInterrupt``, the temporary file is removed and an existing destination is left
untouched.

Two context managers, for the two ways libraries write:

- :func:`atomic_write` yields an open file object::

      with atomic_write(path, "wb") as stream:
          image.save(stream, format="PNG")

- :func:`atomic_path` yields the temporary *path*, for libraries that write by file name
  (``safetensors.torch.save_file``, ``torch.jit.save``, ``onnx.save``, ``matplotlib``'s ``savefig``)::

      with atomic_path(path) as temporary:
          torch.jit.save(scripted, str(temporary))

and two shortcuts, :func:`write_text` and :func:`write_json`. :func:`file_sha256` reads a file's content hash,
which provenance records and caches store.

An ``OSError`` of the file system (a full disk, a read-only folder, a missing permission) is raised with the
*destination* as its file name, not the temporary file's, so that the message says where the write failed:
``out/a.png: No space left on device``.

Temporary files are named ``.NAME.<32 hex digits>.tmp`` next to ``NAME``: hidden, so image listings skip
them, and easy to find and delete after a hard crash (power loss, ``SIGKILL``) with the glob ``.*.tmp``;
:func:`remove_temporaries` deletes exactly those names (``semst train`` and ``semst refine`` call it on their
folders when they start, holding the folder's lock, `semst.locking`).
They are created with the permissions a plain ``open()`` gives (``0o666`` minus the umask, usually
``0o644``), not ``tempfile.mkstemp``'s ``0o600``, so a written file is as readable as any other;
:func:`atomic_path` restores them when the writer replaced the file with one of its own (safetensors does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMPORARY_NAME",
    "atomic_path",
    "atomic_write",
    "file_sha256",
    "remove_temporaries",
    "write_json",
    "write_text",
]

_MODES = ("w", "wt", "wb")

TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")
"""The names of this module's temporary files, ``.NAME.<32 hex digits>.tmp`` (matched with ``fullmatch``)."""


def _naming_destination(error: OSError, path: Path, temporary: Path | None) -> OSError:
    """``error`` with ``path`` as its file name when it names no file or the temporary one (else unchanged).

    ``OSError(errno, strerror, filename)`` builds the subclass of the error number (``FileNotFoundError``,
    ``PermissionError``, ...), as the original was.
    """
    if error.errno is None or error.filename not in (None, str(temporary), temporary):
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Creates an empty temporary file next to ``path``; returns its descriptor (open for writing) and path.

    ``os.open`` with mode ``0o666`` lets the umask decide the permissions, as ``open()`` does; ``O_EXCL``
    never reuses an existing file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(temporary, flags, 0o666), temporary
    except OSError as error:
        raise _naming_destination(error, path, temporary) from error


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Opens a temporary file for writing that replaces ``path`` when the block ends without an exception.

    Missing parent folders are created. If the block raises, the temporary file is removed, ``path`` keeps
    its old content (or stays absent) and the exception propagates.

    Args:
        path: The destination file.
        mode: ``"wb"`` (bytes) or ``"w"`` / ``"wt"`` (text).
        encoding: The text encoding; ``"utf-8"`` when not given. Not allowed in binary mode.

    Yields:
        The open file object; do not close it yourself.

    Raises:
        ValueError: ``mode`` is not ``"w"``, ``"wt"`` or ``"wb"``, or ``encoding`` is given with ``"wb"``.
        OSError: The file could not be written or renamed; its file name is ``path``.
    """
    if mode not in _MODES:
        raise ValueError(f"atomic_write writes with mode 'wb', 'w' or 'wt', got {mode!r} for {path}")
    binary = "b" in mode
    if binary and encoding is not None:
        raise ValueError(f"atomic_write: encoding={encoding!r} given with binary mode 'wb' for {path}")
    path = Path(path)
    fd, temporary = _create_temporary(path)
    # os.fdopen closes the descriptor itself if it fails (an unknown encoding, say).
    with (
        _replace_when_done(temporary, path),
        os.fdopen(fd, mode, encoding=None if binary else encoding or "utf-8") as stream,
    ):
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; the file written there replaces ``path`` when the block ends.

    For libraries that write by file name. The temporary file exists (empty, with umask permissions) when
    the block starts; after the block it gets those permissions back (in case the writer replaced it with a
    file of its own), is flushed to disk and is renamed over ``path``. If the block raises, it is removed and
    ``path`` is left as it was.

    Args:
        path: The destination file; missing parent folders are created.

    Yields:
        The temporary file's path, in the destination's folder.

    Raises:
        OSError: The file could not be written or renamed; its file name is ``path``.
    """
    path = Path(path)
    fd, temporary = _create_temporary(path)
    try:
        permissions = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    with _replace_when_done(temporary, path):
        yield temporary
        # Some writers replace the file instead of truncating it (safetensors 0.8 writes a temporary file of
        # its own, mode 0o600, and renames it over ours): give it the umask's permissions back.
        os.chmod(temporary, permissions)
        fd = os.open(temporary, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _replace_when_done(temporary: Path, path: Path) -> Iterator[None]:
    """Renames ``temporary`` over ``path`` when the block ends; removes it if the block (or the rename) fails.

    An ``OSError`` that names no file or the temporary one is raised again naming ``path``.
    """
    try:
        yield
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        named = _naming_destination(error, path, temporary)
        if named is error:
            raise
        raise named from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically (:func:`atomic_write`); returns ``path`` as a ``Path``."""
    with atomic_write(path, "w", encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> Path:
    """Writes ``data`` as JSON (``indent`` spaces, no trailing newline) to ``path`` atomically.

    The data is serialised before the file is created, so data that is not JSON-serialisable raises
    ``TypeError`` (``ValueError`` for a circular reference) and leaves no file behind.

    Returns:
        ``path`` as a ``Path``.
    """
    return write_text(path, json.dumps(data, indent=indent))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_temporaries(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Deletes the temporary files this module left in ``folder`` when a process was killed mid-write.

    Only names of the form ``.NAME.<32 hex digits>.tmp`` (:data:`TEMPORARY_NAME`) are removed, and only plain
    files (never symbolic links or folders). Call it only while no other process can be writing to
    ``folder`` (hold its `semst.locking.FolderLock`): a live writer's temporary file has the same form.

    Args:
        folder: The folder to clean; a missing folder is fine.
        recursive: Also clean its sub-folders (symbolic links to folders are not followed).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for directory, _, names in walk:
        for name in names:
            path = Path(directory) / name
            if TEMPORARY_NAME.fullmatch(name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return sorted(removed)
