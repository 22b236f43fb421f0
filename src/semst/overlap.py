"""Refuse to write over inputs: what a command writes must never be one of the files it reads.

Every command that writes files calls :func:`refuse_overlap` before any work, with the files and folders it
reads and the files and folders it will write::

    refuse_overlap([checkpoint, *image_files], folders=[output_dir, fusion_dir])
    refuse_overlap([segmenter, *label_files], files=[scores_json], folders=[pictures_dir])

It raises :class:`OverlapError` (a ``ValueError``, so the command line prints it as one line) when

- a planned output file *is* an input file, or
- a planned output folder holds an input file anywhere below it (an output folder inside an input folder is
  fine as long as no input file lies under it; the output folder equal to an input folder is not).

Paths are compared as files, not as strings: symbolic links are followed and two paths are the same when they
name the same file (device and inode), so a link, a ``..`` detour, a bind mount or another letter case on a
case-insensitive file system all count as the same file. An input folder stands for every file below it
(links followed); pass the input files themselves where a command reads only some of a folder's files (only
its images, say), so that other files there do not count. ``None`` entries are skipped, for options that were
not given, and so are inputs that do not exist (the command reports those itself).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["OverlapError", "refuse_overlap"]

PathArg = str | os.PathLike[str] | None


class OverlapError(ValueError):
    """A planned output is an input file, or an output folder holds one.

    Attributes:
        output: The output file or folder, as the caller gave it.
        input: The input file it collides with.
    """

    def __init__(self, message: str, *, output: Path, input: Path) -> None:
        super().__init__(message)
        self.output = output
        self.input = input


def refuse_overlap(
    inputs: Iterable[PathArg], *, files: Iterable[PathArg] = (), folders: Iterable[PathArg] = ()
) -> None:
    """Raises :class:`OverlapError` if writing ``files`` or into ``folders`` could replace an input.

    Args:
        inputs: The files the command reads, and folders it reads from (a folder stands for every file below
            it). Missing paths and ``None`` are skipped.
        files: Output files the command will write (existing or not).
        folders: Output folders the command will write into (existing or not).

    Raises:
        OverlapError: An output file is an input file (or an input folder), or an output folder is an input
            file or holds an input file. The message names both paths.
        OSError: A path could not be examined (a folder that cannot be listed, say).
    """
    known = _Inputs()
    for item in inputs:
        if item is not None:
            known.add(Path(item))
    for kind, outputs in (("file", files), ("folder", folders)):
        for item in outputs:
            if item is None:
                continue
            output = Path(item)
            identity = _identity(output)
            for collides_with, known_paths in (("file", known.files), ("folder", known.folders)):
                if identity in known_paths:
                    message = _COLLISIONS[kind, collides_with].format(
                        output=output, input=known_paths[identity]
                    )
                    raise OverlapError(message, output=output, input=known_paths[identity])


# (output kind, what its identity matches among the inputs) -> the message.
_COLLISIONS = {
    ("file", "file"): "will not write {output}: it is the input file {input}; choose another output",
    ("file", "folder"): "will not write {output}: it is a folder holding the input file {input}",
    ("folder", "file"): "will not write into {output}: it is the input file {input}",
    ("folder", "folder"): (
        "will not write into {output}: it holds the input file {input}; choose an output folder that holds no input"
    ),
}


_Identity = tuple[int, int]


def _identity(path: Path) -> _Identity | None:
    """(device, inode) of what ``path`` names, links followed; None if nothing is there."""
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return status.st_dev, status.st_ino


class _Inputs:
    """The input files by identity, and every folder above one of them (with one input file below it)."""

    def __init__(self) -> None:
        self.files: dict[_Identity, Path] = {}
        self.folders: dict[_Identity, Path] = {}
        self._seen_folders: set[str] = set()  # real paths whose ancestors are already in ``folders``

    def add(self, path: Path) -> None:
        if path.is_dir():
            self._add_folder(path)
        elif path.exists():
            self._add_file(path)

    def _add_file(self, path: Path) -> None:
        identity = _identity(path)
        if identity is None or identity in self.files:
            return
        self.files[identity] = path
        # Every folder above the file's real location holds it: an output folder that is one of them would
        # hold an input. Walk up until a folder already known (each folder is examined once).
        folder = os.path.dirname(os.path.realpath(path))
        while folder not in self._seen_folders:
            self._seen_folders.add(folder)
            status = os.stat(folder)
            self.folders.setdefault((status.st_dev, status.st_ino), path)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent

    def _add_folder(self, root: Path) -> None:
        visited: set[_Identity] = set()
        for folder, subfolders, names in os.walk(root, followlinks=True, onerror=_raise):
            status = os.stat(folder)
            if (status.st_dev, status.st_ino) in visited:  # a link back up: do not loop
                subfolders[:] = []
                continue
            visited.add((status.st_dev, status.st_ino))
            for name in names:
                file = Path(folder) / name
                if file.is_file():
                    self._add_file(file)


def _raise(error: OSError) -> None:
    raise error
