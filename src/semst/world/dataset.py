"""Write the procedural labelled world to disk, in the layouts semst's loaders read.

``write_world(out, seed=0, train=200, test=50)`` creates::

    out/manifest.json            what was written: settings, file counts, class pixel fractions per domain
    out/class_histograms.png     the class statistics of both domains side by side (needs matplotlib)
    out/street/trainA/*.png      source domain (game-like) street scenes     (semst train --data out/street)
    out/street/trainA_labels/    their label maps (Cityscapes trainIds, 255 = ignore), same file names
    out/street/trainB/ ...       target domain (photo-like) scenes, other layouts, other class statistics
    out/street/testA/ testB/ (+ _labels)   held-out scenes of each domain
    out/street/parsing/train/ test/        the target scenes' label maps in the Cityscapes palette
                                           (parsing to image: parsing/train -> trainB; labels trainB_labels)
    out/aerial/trainA/ testA/    aerial photos; out/aerial/trainB/ testB/ the matching maps (paired by name)

Every file is a pure function of (seed, domain, split, index). Writing is atomic per file and resumable:
running the same command again skips files that exist, and a folder written with other settings is
refused instead of being mixed with new files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from semst.data.images import save_image
from semst.files import atomic_path, write_json
from semst.world.aerial import generate_aerial, render_aerial, render_map
from semst.world.layout import (
    SCENES,
    WORLD_CLASSES,
    Scene,
    SceneStats,
    class_histogram,
    generate_scene,
    scene_seed,
)
from semst.world.render import RENDERERS, render_parsing

log = logging.getLogger("semst.world")

MANIFEST = "manifest.json"
FORMAT = "semst-world"
FORMAT_VERSION = 1


def _settings(
    seed: int, train: int, test: int, size: tuple[int, int], aerial_size: int | None, scenes: str
) -> dict:
    settings = {"seed": seed, "train": train, "test": test, "size": list(size), "aerial_size": aerial_size}
    if scenes != "city":  # worlds written before there was a choice are city worlds
        settings["scenes"] = scenes
    return settings


def _check_existing(out: Path, settings: dict) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder; choose another --out")
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{manifest} is not valid JSON ({exc}); remove it or choose another --out"
            ) from exc
        if saved.get("format") != FORMAT:
            raise ValueError(f"{manifest} is not a semst world manifest; choose another --out")
        if saved.get("settings") != settings:
            raise ValueError(
                f"{out} holds a world written with other settings ({saved.get('settings')}); nothing was "
                f"changed. Choose another --out, or repeat the original settings to complete it."
            )
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty (and holds no {MANIFEST}); choose another --out")


def write_world(
    out: str | Path,
    *,
    seed: int = 0,
    train: int = 200,
    test: int = 50,
    size: tuple[int, int] = (512, 256),
    aerial_size: int | None = 256,
    scenes: str = "city",
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and write the world (see the module docstring); returns the manifest.

    Args:
        out: the output folder (created).
        seed: the seed of every layout and rendering.
        train, test: scenes per domain and split (the aerial set has as many pairs).
        size: street scene size (width, height); 2:1 like Cityscapes by default.
        aerial_size: side of the square aerial pairs; None skips the aerial set.
        scenes: the scene statistics of both domains, a name of `semst.world.layout.SCENES` (``city``: much sky
            and road against dense buildings; ``green``: trees and houses against open roads and sky; ``town``:
            trees and houses against a town that holds every class).
    """
    out = Path(out)
    width, height = size
    if train < 1 or test < 0:
        raise ValueError(
            f"need at least one training scene and no negative counts (train={train}, test={test})"
        )
    if scenes not in SCENES:
        raise ValueError(f"unknown scenes {scenes!r}; choose one of {', '.join(SCENES)}")
    settings = _settings(seed, train, test, (width, height), aerial_size, scenes)
    _check_existing(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    # Write the manifest's settings first, so an interrupted run is recognised and completed next time.
    write_json(out / MANIFEST, {"format": FORMAT, "settings": settings})

    splits = (("train", train), ("test", test))
    pixels = _write_street(out / "street", seed, splits, (width, height), SCENES[scenes], progress)
    counts = {"street": _file_counts(splits)}
    if aerial_size is not None:
        _write_aerial(out / "aerial", seed, splits, aerial_size, progress)
        counts["aerial"] = _file_counts(splits)
    fractions = {
        domain: {
            WORLD_CLASSES[c]: float(pixels[domain][c] / max(1, pixels[domain].sum())) for c in WORLD_CLASSES
        }
        for domain in pixels
    }
    manifest = _manifest(settings, counts, fractions)
    write_json(out / MANIFEST, manifest)
    try:
        plot_class_histograms(fractions, out / "class_histograms.png")
    except RuntimeError as exc:  # matplotlib is optional
        log.warning("%s", exc)
    return manifest


def _write_street(
    street: Path,
    seed: int,
    splits: tuple[tuple[str, int], ...],
    size: tuple[int, int],
    stats: dict[str, SceneStats],
    progress: bool,
) -> dict[str, np.ndarray]:
    """Writes the street scenes of both domains (files that exist are kept); returns the pixel count per
    trainId of each domain's training scenes."""
    jobs = [
        (domain, split, i) for split, count in splits for domain in ("source", "target") for i in range(count)
    ]
    pixels = {domain: np.zeros(19, np.int64) for domain in ("source", "target")}
    for domain, split, index in tqdm(jobs, desc="street scenes", unit="img", disable=not progress):
        rng = scene_seed(seed, domain, split, index)
        scene = generate_scene(rng, stats[domain], *size)
        if split == "train":
            pixels[domain] += class_histogram(scene.labels)
        _write_scene(street, f"{split}_{index:05d}.png", domain, split, scene, rng)
    return pixels


def _write_scene(
    street: Path, name: str, domain: str, split: str, scene: Scene, rng: np.random.Generator
) -> None:
    """Writes one scene's rendering, label map and (target domain) parsing rendering, unless all exist.

    `rng` is the scene's generator after its layout was drawn; the rendering draws from it next.
    """
    letter = "A" if domain == "source" else "B"
    image_path = street / f"{split}{letter}" / name
    label_path = street / f"{split}{letter}_labels" / name
    parsing_path = street / "parsing" / split / name
    wanted = [image_path, label_path] + ([parsing_path] if domain == "target" else [])
    if all(p.is_file() for p in wanted):
        return
    save_image(Image.fromarray(RENDERERS[domain](scene, rng)), image_path)
    save_image(Image.fromarray(scene.labels, mode="L"), label_path)
    if domain == "target":
        save_image(Image.fromarray(render_parsing(scene)), parsing_path)


def _write_aerial(
    aerial: Path, seed: int, splits: tuple[tuple[str, int], ...], aerial_size: int, progress: bool
) -> None:
    """Writes the aerial photo (`<split>A`) and map (`<split>B`) pairs; pairs that exist are kept."""
    pairs = [(split, i) for split, count in splits for i in range(count)]
    for split, index in tqdm(pairs, desc="aerial pairs", unit="pair", disable=not progress):
        name = f"{split}_{index:05d}.png"
        photo_path, map_path = aerial / f"{split}A" / name, aerial / f"{split}B" / name
        if photo_path.is_file() and map_path.is_file():
            continue
        rng = scene_seed(seed, "aerial", split, index)
        layout = generate_aerial(rng, aerial_size)
        save_image(Image.fromarray(render_aerial(layout, rng)), photo_path)
        save_image(Image.fromarray(render_map(layout)), map_path)


def _file_counts(splits: tuple[tuple[str, int], ...]) -> dict[str, int]:
    """Files per folder, e.g. {"trainA": 200, "trainB": 200, "testA": 50, "testB": 50}."""
    return {f"{split}{letter}": n for split, n in splits for letter in "AB"}


def _manifest(settings: dict, counts: dict, fractions: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "settings": settings,
        "classes": {str(c): name for c, name in WORLD_CLASSES.items()},
        "label_convention": "Cityscapes trainIds (0-18), 255 = ignore; label maps are 8-bit PNGs",
        "counts": counts,
        "train_class_pixel_fractions": fractions,
        "tasks": {
            "street": "source street/trainA -> target street/trainB (GTA5 -> Cityscapes stand-in); "
            "score translations of street/testA against street/testA_labels",
            "parsing": "street/parsing/train -> street/trainB (Cityscapes parsing -> image stand-in); "
            "score translations of street/parsing/test against street/testB_labels",
            "aerial": "aerial/trainA (photos) -> aerial/trainB (maps), paired by name; "
            "score translations of aerial/testA against aerial/testB",
        },
    }


def plot_class_histograms(fractions: dict[str, dict[str, float]], path: str | Path) -> Path:
    """Bar chart of the class pixel fractions of each domain (like the paper's Figure 1)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("class histograms need matplotlib: pip install 'semst[viz]'") from exc
    names = list(next(iter(fractions.values())))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 3.4), dpi=110)
    colors = {"source": "#d95f02", "target": "#1b9e77"}
    for k, (domain, values) in enumerate(fractions.items()):
        ax.bar(
            x + (k - 0.5) * 0.4,
            [100 * values[n] for n in names],
            width=0.4,
            label=domain,
            color=colors.get(domain),
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("% of training pixels")
    ax.set_title("Class statistics of the two domains (training scenes)")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
