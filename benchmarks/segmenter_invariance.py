"""How much a segmenter's scores move under colour changes that keep every class: the instrument check of
semantic distortion.

Semantic distortion is scored by a target-domain segmenter on translated images; a change of colour that
leaves every object what it is should not read as distortion. This script applies fixed photometric
changes (`semst.segmentation.photometric.adjust`: brightness, contrast, saturation, hue) to labelled images
(real target images: the segmenter's own domain) and scores each segmenter on every changed set, so that
two segmenters (say, trained with and without colour augmentation) can be compared as instruments:

    python benchmarks/segmenter_invariance.py --images world/street/testB --labels world/street/testB_labels \\
        plain=study/segmenter.safetensors photometric=other/segmenter.safetensors

Prints a Markdown table of mean IoU and pixel accuracy (%) per change and segmenter. Labels are class-id
PNGs (255: ignore), as `semst world` writes them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHANGES: dict[str, dict[str, float]] = {
    "none": {},
    "brightness -24": {"brightness": -24.0},
    "brightness +24": {"brightness": 24.0},
    "contrast 0.75": {"contrast": 0.75},
    "contrast 1.25": {"contrast": 1.25},
    "saturation 0.5": {"saturation": 0.5},
    "saturation 1.5": {"saturation": 1.5},
    "hue -12 degrees": {"hue": -12.0},
    "hue +12 degrees": {"hue": 12.0},
    "grey (saturation 0)": {"saturation": 0.0},
}
"""The changes scored: each a keyword set of `adjust`, within mmsegmentation's training ranges (the grey
set excepted)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("segmenters", nargs="+", metavar="NAME=FILE", help="segmenters to compare")
    parser.add_argument("--images", type=Path, required=True, help="folder of labelled images")
    parser.add_argument("--labels", type=Path, required=True, help="their class-id label maps (same names)")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    from semst.evaluation.segmentation import evaluate_segmentation
    from semst.segmentation.loading import load_segmenter
    from semst.segmentation.photometric import adjust

    if args.threads:
        torch.set_num_threads(args.threads)
    segmenters = {}
    for item in args.segmenters:
        name, sep, file = item.partition("=")
        if not sep or not name or not Path(file).is_file():
            sys.exit(f"{item}: expected NAME=FILE naming an existing segmenter file")
        segmenters[name] = load_segmenter(file)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not images:
        sys.exit(f"{args.images}: no images")
    labels = []
    for image in images:
        label = args.labels / f"{image.stem}.png"
        if not label.is_file():
            sys.exit(f"{label}: the label map of {image.name} is missing")
        labels.append(label)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for change, settings in CHANGES.items():
            folder = Path(scratch) / str(len(rows))
            folder.mkdir()
            changed = []
            for image in images:
                pixels = np.asarray(Image.open(image).convert("RGB"))
                out = folder / f"{image.stem}.png"
                Image.fromarray(adjust(pixels, **settings)).save(out)  # "none": the identity
                changed.append(out)
            cells = []
            for segmenter in segmenters.values():
                scores = evaluate_segmentation(
                    segmenter,
                    list(zip(changed, labels, strict=True)),
                    num_classes=args.num_classes,
                    progress=False,
                )
                cells.append(f"{100 * scores['mean_iou']:.1f} / {100 * scores['pixel_accuracy']:.1f}")
            rows.append(f"| {change} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    names = " | ".join(segmenters)
    print(f"| change (mean IoU / pixel accuracy, %) | {names} |")
    print("|---|" + "---|" * len(segmenters))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
