"""Pictures of semantic distortion: where a translation changed what the segmenter sees.

For each scored image, one row: the source image (if given), the image that was scored (the translation),
the segmenter's labels in the Cityscapes palette, the true labels, and a distortion map: the scored image
in grey with the pixels whose predicted class differs from the label painted in the colour of the class
the segmenter saw there (ignored pixels hatched dark). A person sees at a glance that sky became
vegetation, or that a pole vanished.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from semst.data.labels import IGNORE_INDEX, colorize
from semst.drawing import caption_font

LABEL_HEIGHT = 18


def distortion_map(image: np.ndarray, prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` in light grey, wrong pixels in the predicted class's colour, ignored
    pixels dark. ``prediction`` and ``label`` are (H, W) class ids (255 = ignore in ``label``)."""
    if image.shape[:2] != prediction.shape or prediction.shape != label.shape:
        raise ValueError(
            f"image {image.shape[:2]}, prediction {prediction.shape} and label {label.shape} differ in size"
        )
    grey = (
        image.astype(np.float32).mean(axis=2, keepdims=True) * 0.3 + 160
    )  # (H, W, 1), light: errors stand out
    out = np.repeat(grey, 3, axis=2)
    ignored = label == IGNORE_INDEX
    wrong = (prediction != label) & ~ignored
    out[wrong] = colorize(prediction)[wrong]
    out[ignored] = 25
    return np.clip(out, 0, 255).astype(np.uint8)


def distortion_panel(
    image: np.ndarray,
    prediction: np.ndarray,
    label: np.ndarray,
    *,
    source: np.ndarray | None = None,
    height: int = 192,
    title: str = "",
) -> Image.Image:
    """One row of captioned pictures (see the module docstring); arrays are (H, W, 3) uint8 / (H, W) ids."""
    wrong = (prediction != label) & (label != IGNORE_INDEX)
    valid = max(1, int((label != IGNORE_INDEX).sum()))
    columns = []
    if source is not None:
        columns.append(("source", source))
    columns += [
        ("scored image" if source is None else "translation", image),
        ("segmenter labels", colorize(prediction)),
        ("true labels", colorize(label)),
        (
            f"distortion: {100 * wrong.sum() / valid:.1f}% of pixels changed class",
            distortion_map(image, prediction, label),
        ),
    ]
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    gap = 4
    top = LABEL_HEIGHT * (2 if title else 1)
    canvas = Image.new("RGB", (len(columns) * (width + gap) - gap, top + height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((2, 2), title, fill=(0, 0, 0), font=caption_font())
    for i, (caption, array) in enumerate(columns):
        x = i * (width + gap)
        crisp = caption.endswith("labels") or caption.startswith("distortion")
        resample = Image.Resampling.NEAREST if crisp else Image.Resampling.BILINEAR
        canvas.paste(Image.fromarray(array).resize((width, height), resample), (x, top))
        draw.text((x + 2, top - LABEL_HEIGHT + 2), caption, fill=(30, 30, 30), font=caption_font())
    return canvas
