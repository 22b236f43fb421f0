"""A picture of what the fusion does: input, global output, local output, M_s as a heat map, fused result.

``semst translate --fusion-panels DIR`` writes one such panel per image. The heat map uses matplotlib's
perceptually uniform ``viridis`` colour map (matplotlib is the optional ``viz`` extra); the colour bar
under it says which end means "trust the local generator".
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from semst.drawing import caption_font

PANEL_ORDER = (
    ("input", "input"),
    ("global", "global G_g (upsampled)"),
    ("local", "local G_l (tiles)"),
    ("attention", "scale attention M_s"),
    ("fused", "fused  M_s*local + (1-M_s)*global"),
)
LABEL_HEIGHT = 18
COLORBAR_HEIGHT = 26


def _colormap(name: str = "viridis"):
    try:
        from matplotlib import colormaps
    except ImportError as exc:
        raise RuntimeError(
            "fusion panels colour M_s with matplotlib, which is not installed: pip install 'semst[viz]'"
        ) from exc
    return colormaps[name]


def heat_map(weights: np.ndarray, cmap: str = "viridis") -> Image.Image:
    """An (H, W) array in [0, 1] as an RGB heat map (0 = dark blue, 1 = yellow for viridis)."""
    if weights.ndim != 2:
        raise ValueError(f"heat_map expects an (H, W) array, got shape {weights.shape}")
    rgba = _colormap(cmap)(np.clip(weights, 0.0, 1.0), bytes=True)  # (H, W, 4) uint8
    return Image.fromarray(rgba[..., :3], mode="RGB")


def _colorbar(width: int, cmap: str) -> Image.Image:
    bar = Image.new("RGB", (width, COLORBAR_HEIGHT), (255, 255, 255))
    ramp = heat_map(np.tile(np.linspace(0.0, 1.0, max(width - 8, 2)), (8, 1)), cmap)
    bar.paste(ramp, (4, 2))
    draw = ImageDraw.Draw(bar)
    draw.text((4, 12), "0: global", fill=(20, 20, 20), font=caption_font())
    draw.text((max(4, width - 54), 12), "1: local", fill=(20, 20, 20), font=caption_font())
    return bar


def fusion_panel(image: Image.Image, parts: dict, *, height: int = 320, cmap: str = "viridis") -> Image.Image:
    """One row: input, global output, local output, M_s heat map (with a colour bar), fused output.

    Args:
        image: the input (PIL).
        parts: from ``MultiScaleTranslator.translate_parts``: ``global``, ``local``, ``fused`` PIL images and
            ``attention``, M_s as an (H, W) float array in [0, 1].
        height: the height each image is scaled to (aspect kept).
        cmap: a matplotlib colour map name for M_s.
    """
    missing = [key for key, _ in PANEL_ORDER if key != "input" and key not in parts]
    if missing:
        raise ValueError(f"fusion_panel needs the parts {missing} (see MultiScaleTranslator.translate_parts)")
    attention = np.asarray(parts["attention"], dtype=np.float32)
    images = {"input": image.convert("RGB"), **parts, "attention": heat_map(attention, cmap)}
    width = max(1, round(image.width * height / image.height))
    tiles = [
        (label, images[key].resize((width, height), Image.Resampling.BILINEAR)) for key, label in PANEL_ORDER
    ]
    gap = 6
    canvas = Image.new(
        "RGB",
        (len(tiles) * width + gap * (len(tiles) - 1), LABEL_HEIGHT + height + COLORBAR_HEIGHT),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    for i, (label, tile) in enumerate(tiles):
        x = i * (width + gap)
        canvas.paste(tile, (x, LABEL_HEIGHT))
        draw.text((x + 2, 3), label, fill=(20, 20, 20), font=caption_font())
    attention_x = [key for key, _ in PANEL_ORDER].index("attention") * (width + gap)
    canvas.paste(_colorbar(width, cmap), (attention_x, LABEL_HEIGHT + height))
    draw.text(
        (2, LABEL_HEIGHT + height + 8),
        f"mean M_s = {float(attention.mean()):.2f}",
        fill=(20, 20, 20),
        font=caption_font(),
    )
    return canvas
