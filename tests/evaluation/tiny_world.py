"""A tiny two-domain world for the realism tests, rendered directly (no ``write_world`` manifest or aerial).

Folders under the root: ``source_train``, ``target_train`` (for the domain classifier), ``source_test``,
``target_test`` (+ ``_labels``), and ``blend_<t>`` for t in BLENDS with ``blend_labels``: the layouts of the
source test scenes rendered in BOTH looks (pixel-aligned) and mixed as (1 - t) * source + t * target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from semst.world.layout import DOMAIN_STATS, generate_scene, scene_seed
from semst.world.render import render_source, render_target

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
RENDER = {"source": render_source, "target": render_target}


def _save(array: np.ndarray, path: Path, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def write_tiny_world(root: Path, *, train: int, test: int, size: tuple[int, int], seed: int = 0) -> Path:
    """Writes the world (see the module docstring) for ``size`` = (width, height); returns ``root``."""
    for split, count in (("train", train), ("test", test)):
        for domain in ("source", "target"):
            for index in range(count):
                rng = scene_seed(seed, domain, split, index)
                scene = generate_scene(rng, DOMAIN_STATS[domain], *size)
                name = f"{index:03d}.png"
                _save(RENDER[domain](scene, rng), root / f"{domain}_{split}" / name)
                _save(scene.labels, root / f"{domain}_{split}_labels" / name, mode="L")
    for index in range(test):
        scene = generate_scene(scene_seed(seed, "source", "test", index), DOMAIN_STATS["source"], *size)
        source = render_source(scene, np.random.default_rng([seed, 101, index])).astype(np.float32)
        target = render_target(scene, np.random.default_rng([seed, 102, index])).astype(np.float32)
        name = f"{index:03d}.png"
        _save(scene.labels, root / "blend_labels" / name, mode="L")
        for t in BLENDS:
            mixed = np.clip(np.rint((1 - t) * source + t * target), 0, 255).astype(np.uint8)
            _save(mixed, root / f"blend_{t:.2f}" / name)
    return root
