"""Helpers of the bad-input suites: fingerprints of a folder tree, to show that no pre-existing file changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (a symbolic link -> ``"link:" + target``)."""
    hashes = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                hashes[relative] = "link:" + os.readlink(path)
            else:
                hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The files of ``before`` that were changed or removed in ``after`` (new files are not changes)."""
    return sorted(name for name, digest in before.items() if after.get(name) != digest)
