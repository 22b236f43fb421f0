"""Where a translator adds texture: each class's within-region gradient energy, and the images' border bands.

The study's report grids show two artefacts of short, small-scale runs that its scores cannot tell apart from a
change of class: blotches and stripes in regions that are flat in the input (sky, road) and light bands along
the image borders. This script measures both on a study's held-out translations, with the source labels:

- **texture** of class c: the mean Sobel gradient magnitude of the luminance (0-1 scale) over the class's
  pixels at least ``--inset`` pixels from any other class (so region borders, which a translation should keep,
  do not count), averaged over the held-out images that hold such pixels. The untranslated source and the real
  target images (with their own labels) are the two references: a translation whose sky is much rougher than
  both the source's and the target's sky has painted texture into it.
- **colour spread** of class c: the std of each colour channel over the same pixels, averaged over R, G, B
  and the images: low-frequency blotches raise it without raising the texture.
- **border band**: the mean absolute difference between the luminance of the outermost ``--band`` pixels of
  each image side and that of the next ``--band`` pixels inwards, averaged over sides and images (0 for an image
  without a frame of its own; the references say how much the scenes themselves have).

    python benchmarks/class_texture.py STUDY_DIR --variants SemST,CUT [--seeds 0,1,2] [--out texture.json]

Prints a Markdown table, one row per class (and one for the border band), with the source's and the real
target's values and each variant's mean ± std over its seeds. Reads images only (no network runs), so it can
run beside a training job with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from semst.cli.study import parse_seeds
from semst.data.labels import IGNORE_INDEX


def load(path: Path) -> np.ndarray:
    """(H, W, 3) float64 RGB in [0, 1] of an image file."""
    from semst.data.images import load_rgb

    return np.asarray(load_rgb(path), dtype=np.float64) / 255.0


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W) luminance of (H, W, 3) RGB (ITU-R BT.601 weights)."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """(H, W) Sobel gradient magnitude of a (H, W) image, edges replicated (each kernel divided by 8)."""
    p = np.pad(image, 1, mode="edge")  # (H + 2, W + 2)
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:] - p[:-2, :-2] - 2 * p[1:-1, :-2] - p[2:, :-2]) / 8
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:] - p[:-2, :-2] - 2 * p[:-2, 1:-1] - p[:-2, 2:]) / 8
    return np.hypot(gx, gy)


def interior(mask: np.ndarray, inset: int) -> np.ndarray:
    """``mask`` eroded by a (2 inset + 1)-pixel square: pixels at least ``inset`` pixels from its outside.
    The image border does not erode (a class touching the frame keeps its pixels there)."""
    out = mask.copy()
    height, width = mask.shape
    for _ in range(inset):
        p = np.pad(out, 1, mode="edge")  # (H + 2, W + 2)
        out = np.logical_and.reduce([p[i : i + height, j : j + width] for i in range(3) for j in range(3)])
    return out


def class_texture(rgb: np.ndarray, label: np.ndarray, num_classes: int, inset: int) -> np.ndarray:
    """(2, num_classes): each class's mean gradient magnitude (texture) and the std of its colour (spread,
    the mean over R, G, B of each channel's std) over its interior pixels; NaN where it has none."""
    if rgb.shape[:2] != label.shape:
        raise ValueError(f"image {rgb.shape[:2]} and label map {label.shape} differ in size")
    magnitude = sobel_magnitude(luminance(rgb))
    out = np.full((2, num_classes), np.nan)
    for c in np.unique(label):
        if c == IGNORE_INDEX or c >= num_classes:
            continue
        inner = interior(label == c, inset)
        if inner.any():
            out[0, c] = magnitude[inner].mean()
            out[1, c] = rgb[inner].std(axis=0).mean()
    return out


def border_band(image: np.ndarray, band: int) -> float:
    """Mean over the four sides of |mean of the outer ``band`` pixels - mean of the next ``band`` inwards|."""
    if min(image.shape) < 4 * band:
        raise ValueError(f"image {image.shape} too small for a {band}-pixel band")
    sides = [
        (image[:band], image[band : 2 * band]),
        (image[-band:], image[-2 * band : -band]),
        (image[:, :band], image[:, band : 2 * band]),
        (image[:, -band:], image[:, -2 * band : -band]),
    ]
    return float(np.mean([abs(outer.mean() - inner.mean()) for outer, inner in sides]))


def measure(
    images: list[Path], labels: list[np.ndarray], num_classes: int, inset: int, band: int
) -> dict[str, object]:
    """Per-class texture and colour spread (means over the images that hold the class) and the mean border
    band of a set of images."""
    rgbs = [load(p) for p in images]
    figures = np.stack(
        [class_texture(rgb, lab, num_classes, inset) for rgb, lab in zip(rgbs, labels, strict=True)]
    )  # (N, 2, C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class no image holds: NaN, said as n/a
        per_class = np.nanmean(figures, axis=0)  # (2, C)
    bands = [border_band(luminance(rgb), band) for rgb in rgbs]
    return {
        "texture": [None if np.isnan(v) else float(v) for v in per_class[0]],
        "spread": [None if np.isnan(v) else float(v) for v in per_class[1]],
        "border_band": float(np.mean(bands)),
    }


def _cell(values: list[float | None], scale: float, digits: int) -> str:
    kept = np.asarray([v for v in values if v is not None], dtype=float) * scale
    if kept.size == 0:
        return "n/a"
    std = kept.std(ddof=1) if kept.size > 1 else 0.0
    return f"{kept.mean():.{digits}f} ± {std:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (semst study run)")
    parser.add_argument("--variants", required=True, help="comma-separated variant names of the study")
    parser.add_argument(
        "--seeds", type=parse_seeds, default=None, help="as semst study run's (default: every scored seed)"
    )
    parser.add_argument("--inset", type=int, default=3, help="pixels kept from other classes (default 3)")
    parser.add_argument("--band", type=int, default=4, help="width of the border band in pixels (default 4)")
    parser.add_argument("--out", type=Path, help="write every figure (per seed) to this JSON file")
    args = parser.parse_args(argv)

    from semst.study.runner import Study

    study = Study.open(args.study)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = {v.name for v in study.spec.variants}
    unknown = [name for name in variants if name not in known]
    if unknown:
        print(
            f"error: {args.study}: no variant {unknown[0]!r} (the study has: {', '.join(sorted(known))})",
            file=sys.stderr,
        )
        return 2
    data = study.data
    names = list(data.class_names)
    num_classes = len(names)
    source_samples = data.source_test_samples
    source_labels = [data.source_label(s) for s in source_samples]
    figures: dict[str, dict] = {
        "source": measure(
            [s.image for s in source_samples], source_labels, num_classes, args.inset, args.band
        ),
        "target": measure(
            [s.image for s in data.target_test_samples],
            [data.target_label(s) for s in data.target_test_samples],
            num_classes,
            args.inset,
            args.band,
        ),
    }
    for name in variants:
        seeds = args.seeds or tuple(s for s in study.spec.seeds if study.scores_path(name, s).is_file())
        per_seed = {}
        for seed in seeds:
            folder = study.run_dir(name, seed) / "translated"
            # Named as the study writes them.
            images = [folder / s.relative.with_suffix(".png") for s in source_samples]
            missing = [p for p in images if not p.is_file()]
            if missing:
                print(
                    f"error: {missing[0]}: translation missing (is {name} seed {seed} finished?)",
                    file=sys.stderr,
                )
                return 2
            per_seed[seed] = measure(images, source_labels, num_classes, args.inset, args.band)
        figures[name] = {"seeds": per_seed}

    present = [c for c in range(num_classes) if figures["source"]["texture"][c] is not None]
    for measure_name, title in (("texture", "texture (x100)"), ("spread", "colour spread (x100)")):
        print(f"\n| {title} | source | real target | " + " | ".join(variants) + " |")
        print("|---|---|---|" + "---|" * len(variants))
        for c in present:
            cells = [
                "n/a" if figures[r][measure_name][c] is None else f"{100 * figures[r][measure_name][c]:.2f}"
                for r in ("source", "target")
            ]
            for name in variants:
                cells.append(_cell([f[measure_name][c] for f in figures[name]["seeds"].values()], 100, 2))
            print(f"| {names[c]} | " + " | ".join(cells) + " |")
    cells = [f"{100 * figures[r]['border_band']:.2f}" for r in ("source", "target")]
    for name in variants:
        cells.append(_cell([f["border_band"] for f in figures[name]["seeds"].values()], 100, 2))
    print(f"| border band ({args.band} px) | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
