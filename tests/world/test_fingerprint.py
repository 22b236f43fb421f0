"""The world is a pure function of its settings: a small world's pixels are pinned by their digests.

A change in the order of random draws, in a renderer or in a layout changes these digests; a refactoring of
`semst.world` must leave them as they are. The digests are taken over the decoded pixels (not the PNG bytes,
which depend on the zlib build) and over the manifest. If a deliberate change of the world's look, or a new
numpy or Pillow whose random streams or drawing differ, changes them, print the new values with
`python -m tests.world.test_fingerprint` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from semst.world.dataset import write_world

SETTINGS = {"seed": 5, "train": 2, "test": 1, "size": (96, 48), "aerial_size": 96, "progress": False}

EXPECTED = {
    "aerial/testA": "563b825ba027d58a",
    "aerial/testB": "0c12820239e67d5d",
    "aerial/trainA": "fd52a58f06ded791",
    "aerial/trainB": "530fec2c6aeee4ab",
    "street/parsing/test": "7704f91bf7e13cc6",
    "street/parsing/train": "4118095160dedce5",
    "street/testA": "d38f8dc0d2a3a427",
    "street/testA_labels": "604bf0121ee72104",
    "street/testB": "74ef36d2e1543021",
    "street/testB_labels": "94aaa5bb02e1da77",
    "street/trainA": "243cd023dff2d836",
    "street/trainA_labels": "29fee11048821137",
    "street/trainB": "9b09b30f4b8cd69c",
    "street/trainB_labels": "4da6aa2f69b4f28c",
    "manifest.json": "392fd380455af4e2",
}


def fingerprint(out: Path) -> dict[str, str]:
    """Digest of each folder's decoded images (names, shapes and pixels), and of the manifest."""
    digests: dict[str, str] = {}
    for folder in sorted({path.parent for path in out.rglob("*.png") if path.parent != out}):
        digest = hashlib.sha256()
        for path in sorted(folder.glob("*.png")):
            pixels = np.asarray(Image.open(path))
            digest.update(f"{path.name} {pixels.shape} {pixels.dtype}".encode())
            digest.update(np.ascontiguousarray(pixels).tobytes())
        digests[folder.relative_to(out).as_posix()] = digest.hexdigest()[:16]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    digests["manifest.json"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    return digests


def test_a_small_world_has_the_pinned_pixels(tmp_path):
    write_world(tmp_path / "world", **SETTINGS)
    assert fingerprint(tmp_path / "world") == EXPECTED


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        write_world(Path(folder) / "world", **SETTINGS)
        print(json.dumps(fingerprint(Path(folder) / "world"), indent=4))
