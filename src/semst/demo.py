"""The built-in demo: a small unpaired data set from images that ship with scikit-image, a short SemST
training run on it, and full-resolution translations of held-out images.

Source domain (X): colour photographs (astronaut, cat, coffee cup, motorcycle, microscopy slide, ...).
Target domain (Y): *other* photographs rendered as cyanotypes (Prussian-blue prints on grainy paper).
The two folders share no image, so the pairing must be learned without supervision; the held-out
photo (the rocket launch) is translated at its full 640x427 size. The demo is a smoke-scale run
meant to show the whole pipeline in minutes on a CPU, not a benchmark.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from semst.data.images import save_image

log = logging.getLogger("semst.demo")

SOURCE_PHOTOS = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "hubble_deep_field", "stereo_left")
TARGET_PHOTOS = ("camera", "moon", "coins", "clock", "horse", "brick", "grass", "gravel", "page", "cat")
TEST_PHOTOS = ("rocket",)
LONG_SIDE = 320  # images are stored at this long side; training crops are cut from them


def _skimage_image(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the demo needs scikit-image: pip install 'semst[demo]'") from exc
    if name == "stereo_left":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def _as_rgb(array: np.ndarray) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(float(np.ptp(array)), 1e-8)).astype(np.uint8)
    return Image.fromarray(array[..., :3]).convert("RGB")


def _resized(image: Image.Image, long_side: int = LONG_SIDE) -> Image.Image:
    scale = long_side / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC
    )


def cyanotype(image: Image.Image, seed: int = 0) -> Image.Image:
    """Render a photo as a cyanotype: luminance mapped onto Prussian blue and paper white, plus grain."""
    rng = np.random.default_rng(seed)
    lum = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    lum = np.clip((lum - 0.08) / 0.84, 0, 1) ** 0.8
    dark = np.array([18, 38, 96], np.float32)
    light = np.array([236, 240, 226], np.float32)
    rgb = dark + lum[..., None] * (light - dark)
    grain = rng.normal(0, 9, size=lum.shape)[..., None]
    yy, xx = np.mgrid[0 : lum.shape[0], 0 : lum.shape[1]]
    cy, cx = (lum.shape[0] - 1) / 2, (lum.shape[1] - 1) / 2
    vignette = 1 - 0.25 * (((yy - cy) / max(cy, 1)) ** 2 + ((xx - cx) / max(cx, 1)) ** 2)
    rgb = np.clip((rgb + grain) * vignette[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(0.6))


def make_demo_data(root: str | Path) -> dict[str, Path]:
    """Write ``root/trainA`` (photos), ``root/trainB`` (cyanotypes of other photos) and ``root/testA``."""
    root = Path(root)
    folders = {"trainA": root / "trainA", "trainB": root / "trainB", "testA": root / "testA"}
    for name in SOURCE_PHOTOS:
        save_image(_resized(_as_rgb(_skimage_image(name))), folders["trainA"] / f"{name}.png")
    for i, name in enumerate(TARGET_PHOTOS):
        save_image(
            cyanotype(_resized(_as_rgb(_skimage_image(name))), seed=i), folders["trainB"] / f"{name}.png"
        )
    for name in TEST_PHOTOS:
        save_image(_as_rgb(_skimage_image(name)), folders["testA"] / f"{name}.png")
    return folders


@dataclass(frozen=True)
class DemoSettings:
    steps: int
    crop_size: int
    base_channels: int
    num_blocks: int
    num_patches: int
    taps: str


DEFAULT = DemoSettings(
    steps=1200,
    crop_size=96,
    base_channels=24,
    num_blocks=6,
    num_patches=128,
    taps="input,down1,down2,res1,res5",
)
QUICK = DemoSettings(
    steps=4, crop_size=32, base_channels=8, num_blocks=2, num_patches=32, taps="input,down1,down2,res1,res2"
)


def side_by_side(pairs: list[tuple[str, Image.Image]], height: int = 320) -> Image.Image:
    """Images scaled to one height and placed in a row, each with its caption."""
    tiles = [
        (caption, img.resize((max(1, round(img.width * height / img.height)), height)))
        for caption, img in pairs
    ]
    canvas = Image.new(
        "RGB", (sum(t.width for _, t in tiles) + 8 * (len(tiles) - 1), height + 18), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    x = 0
    for caption, tile in tiles:
        canvas.paste(tile, (x, 18))
        draw.text((x + 4, 3), caption, fill=(20, 20, 20))
        x += tile.width + 8
    return canvas


def run_demo(
    out: str | Path, *, quick: bool = False, steps: int | None = None, progress: bool = True
) -> dict[str, Path]:
    """Build the data, train the ``semst`` preset (single-scale) briefly, translate the held-out photos."""
    from semst.config import load_config
    from semst.inference import translate_files
    from semst.model import SemST
    from semst.training.loop import train

    out = Path(out)
    settings = QUICK if quick else DEFAULT
    folders = make_demo_data(out / "data")
    run_dir = out / "run"
    total = steps if steps is not None else settings.steps
    epochs = max(
        2, math.ceil(total / max(len(SOURCE_PHOTOS), len(TARGET_PHOTOS)))
    )  # batch 1: an image a step
    config = load_config(
        "semst",
        overrides={
            "data.source": str(folders["trainA"]),
            "data.target": str(folders["trainB"]),
            "data.preprocess": "crop",
            "data.crop_size": settings.crop_size,
            "data.num_workers": 0,
            # Single-scale: the demo's photos are 320 px, and for small images the paper trains SemST
            # single-scale too (section 4.2.4); multi-scale pays off on large frames (GTA5, Cityscapes).
            "multiscale.enabled": False,
            "generator.base_channels": settings.base_channels,
            "generator.num_blocks": settings.num_blocks,
            "discriminator.base_channels": settings.base_channels,
            "projection.num_patches": settings.num_patches,
            "projection.taps": settings.taps,
            # CUT's schedule, compressed: constant learning rate for the first half, linear decay after.
            "train.max_steps": total,
            "train.constant_epochs": epochs // 2,
            "train.decay_epochs": epochs - epochs // 2,
            "log.log_every": 50 if not quick else 1,
            "log.sample_every": 200 if not quick else 2,
            "log.checkpoint_every": 400 if not quick else 2,
        },
    )
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("*.safetensors"))
    if resume:
        log.info("resuming the demo run in %s", run_dir)
    checkpoint = train(config, run_dir, resume=resume, progress=progress)
    model = SemST.from_checkpoint(checkpoint, device=config.train.device)
    translated_dir = out / "translated"
    translate_files(model, [folders["testA"]], translated_dir, progress=progress)
    rows = []
    for path in sorted(folders["testA"].glob("*.png")):
        rows += [
            (f"input {path.name}", Image.open(path).convert("RGB")),
            ("SemST translation", Image.open(translated_dir / path.name).convert("RGB")),
        ]
    rows.append(
        ("a target-domain image", Image.open(sorted(folders["trainB"].glob("*.png"))[0]).convert("RGB"))
    )
    comparison = out / "comparison.png"
    save_image(side_by_side(rows), comparison)
    return {"run": run_dir, "checkpoint": checkpoint, "translated": translated_dir, "comparison": comparison}
