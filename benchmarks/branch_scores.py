"""Which branch of a multi-scale translator distorts: a study's multi-scale runs scored per branch.

A multi-scale SemST translation is ``Y = M_s * Y_l + (1 - M_s) * Y_g`` (Eq. 6). This script takes the finished
runs of one multi-scale variant of a study, translates the study's held-out source images again with
`MultiScaleTranslator.translate_parts` (with the variant's tiling, as the study translated them), and
scores, with the study's own segmenter and realism scorer, three images per input: the fused output Y
(the study's own translations, so its scores are the study's), G_l's output alone (``local``: M_s = 1) and
G_g's output alone, upsampled (``global``: M_s = 0):

    python benchmarks/branch_scores.py STUDY_DIR --variant SemST-bf16 --out branches.json

Prints a Markdown table (mean ± std over the seeds, and the values per seed) of pixel accuracy, mean IoU,
KID and the mean of M_s over the held-out images, a table of each class's IoU per part (mean ± std over the
seeds) beside the mean of M_s over the class's pixels, and each part's largest class flips (share of the
true class's pixels the segmenter reads as another class, mean over the seeds, ranked as the study's report
ranks them); writes the per-seed figures, per-class IoUs, confusion matrices and per-class M_s as JSON. The
branch images are written under ``STUDY_DIR/branches/VARIANT/seedN/{local,global}`` (kept: a rerun scores what
is there). The branches alone are not translators anyone trained: G_l was trained to be fused with
G_g, so a branch that scores worse alone is not a branch that hurts inside the fusion. What the table can
say is where the fused output's classes come from.

With ``--fusions`` it also scores the two branches fused by other scale maps, to estimate what a different
scale attention could gain before training one (images under ``.../seedN/FUSION``):

- ``recomposed``: the model's own M_s applied to the saved 8-bit branch images (a check: it should score as
  ``fused`` does, up to the rounding of the branches);
- ``half``: M_s = 0.5 everywhere;
- ``class-oracle``: M_s = 1 on the pixels of the classes whose IoU is at least as high with G_l alone as
  with G_g alone, 0 elsewhere, classes and pixels taken from the held-out labels themselves. It uses the
  answers: what an attention that picks a branch per class could do, not a translator. Nor is it a strict
  upper bound: the segmenter reads each pixel in its context, so a class taken from its better branch can
  score lower beside classes taken from the other;
- ``smooth-oracle``: the class oracle's map made as coarse as the model's own (M_s is predicted from G_g's
  bottleneck, at a quarter of the global crop's resolution: an eighth of the full resolution at the default
  ``multiscale.scale`` 2): averaged over blocks of that many pixels a side and upsampled bilinearly, so that
  a class border is a blend, not a seam.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from semst.cli.study import parse_seeds
from semst.data.labels import IGNORE_INDEX

PARTS = ("fused", "local", "global")
FUSIONS = ("recomposed", "half", "class-oracle", "smooth-oracle")


def _mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` over seeds (sample std, as the study's tables; 0 for one seed)."""
    if not values:
        return "n/a"
    array = np.asarray(values, dtype=float)
    std = array.std(ddof=1) if len(array) > 1 else 0.0
    return f"{array.mean():.{digits}f} ± {std:.{digits}f}"


def _print_classes(figures: dict, parts: tuple[str, ...], class_names: list[str], study) -> None:
    """Each class's IoU per part (mean ± std over the seeds), the mean M_s over each class's pixels, and
    each part's largest flips."""
    from semst.study.summary import class_pixel_share, mean_flip_matrix, top_flips

    per_part = {part: np.asarray(figures[part]["per_class_iou"], dtype=float) for part in parts}  # (S, C)
    attention = np.asarray(figures["attention_by_class"], dtype=float)  # (S, C), NaN: class absent
    used = [c for c in range(len(class_names)) if not np.isnan(per_part["fused"][:, c]).all()]
    print("\n| class: IoU (%) | " + " | ".join(parts) + " | mean M_s |")
    print("|---|" + "---|" * (len(parts) + 1))
    for c in used:
        cells = [_mean_std([100 * v for v in per_part[part][:, c] if not np.isnan(v)]) for part in parts]
        cells.append(_mean_std([v for v in attention[:, c] if not np.isnan(v)], 2))
        print(f"| {class_names[c]} | " + " | ".join(cells) + " |")
    source = json.loads((study.directory / "references" / "source.json").read_text())
    weights = class_pixel_share(source["distortion"]["confusion_matrix"])  # (C,) as the study's report ranks
    for part in parts:
        flips = top_flips(mean_flip_matrix(figures[part]["confusion_matrix"]), class_names, 6, weights)
        text = ", ".join(f"{f['true']} -> {f['predicted']} {100 * f['share']:.0f} %" for f in flips)
        print(f"\nlargest flips, {part}: {text}")


def _compose(local: np.ndarray, global_image: np.ndarray, weights: np.ndarray):
    """Eq. 6 (`semst.multiscale.fusion.fuse`) on 8-bit branch images (H, W, 3) with a scale map (H, W) in
    [0, 1], as an 8-bit PIL image."""
    from PIL import Image

    from semst.multiscale.fusion import fuse

    fused = fuse(local.astype(np.float32), global_image.astype(np.float32), weights[..., None])  # (H, W, 3)
    return Image.fromarray(np.clip(np.rint(fused), 0, 255).astype(np.uint8))


def _smooth(weights: np.ndarray, block: int) -> np.ndarray:
    """A scale map (H, W) averaged over ``block`` x ``block`` blocks, then upsampled bilinearly to (H, W)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(weights)[None, None]  # (1, 1, H, W)
    coarse = F.avg_pool2d(x, block, ceil_mode=True)  # (1, 1, ceil(H / block), ceil(W / block))
    return F.interpolate(coarse, size=weights.shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def _oracle_classes(local_iou: list, global_iou: list) -> np.ndarray:
    """Train ids of the classes G_l alone keeps at least as well as G_g alone (IoU); absent classes: none."""
    return np.asarray(
        [
            c
            for c, (lo, gl) in enumerate(zip(local_iou, global_iou))
            if lo is not None and (gl is None or lo >= gl)
        ],
        dtype=np.int64,
    )


def _score_part(study, figures: dict[str, list], images: list[Path]) -> None:
    """Score one seed's images of one part with the study's segmenter and realism scorer, into figures."""
    data = study.data
    scores = study._score(images, data.source_test_samples, data.source_label, progress=False)
    figures["pixel_accuracy"].append(100 * scores["distortion"]["pixel_accuracy"])
    figures["mean_iou"].append(100 * scores["distortion"]["mean_iou"])
    figures["kid"].append(scores["realism"]["kid"])
    figures["per_class_iou"].append(scores["distortion"]["per_class_iou"])
    figures["confusion_matrix"].append(scores["distortion"]["confusion_matrix"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (semst study run)")
    parser.add_argument("--variant", required=True, help="a multi-scale variant of the study")
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="as semst study run's: a count (3 = seeds 0, 1, 2) or a list (0,1,5) (default: every scored seed)",
    )
    parser.add_argument("--out", type=Path, help="write the per-seed figures to this JSON file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--fusions",
        action="store_true",
        help="also score the branches fused by other scale maps: the model's own (recomposed), 0.5, and "
        "a per-class choice of branch made with the held-out labels (see the module docstring)",
    )
    args = parser.parse_args(argv)

    import torch
    from tqdm.auto import tqdm

    from semst.data.images import load_rgb
    from semst.study.runner import Study
    from semst.translators import Translator
    from semst.translators.multi_scale import MultiScaleTranslator

    if args.threads:
        torch.set_num_threads(args.threads)
    study = Study.open(args.study)
    data = study.data
    samples = data.source_test_samples
    variant = next((v for v in study.spec.variants if v.name == args.variant), None)
    if variant is None:
        names = ", ".join(v.name for v in study.spec.variants)
        print(f"error: {args.study}: no variant {args.variant!r} (the study has: {names})", file=sys.stderr)
        return 2
    parts = PARTS + (FUSIONS if args.fusions else ())
    figures: dict[str, dict[str, list]] = {
        part: {"pixel_accuracy": [], "mean_iou": [], "kid": [], "per_class_iou": [], "confusion_matrix": []}
        for part in parts
    }
    attention_means: list[float] = []
    attention_by_class: list[list[float | None]] = []  # per seed: mean M_s over each true class's pixels
    classes = len(data.class_names)
    seeds = args.seeds
    if seeds is None:
        seeds = tuple(s for s in study.spec.seeds if study.scores_path(args.variant, s).is_file())
        if not seeds:
            print(
                f"error: {args.study}: no scored run of {args.variant}: run the study first", file=sys.stderr
            )
            return 2
    for seed in seeds:
        scores_file = study.scores_path(args.variant, seed)
        if not scores_file.is_file():
            print(f"error: {scores_file}: no scores: run the study first", file=sys.stderr)
            return 2
        stored = json.loads(scores_file.read_text())
        translator = Translator.from_checkpoint(
            study.directory / stored["checkpoint"], weights=stored["weights"]
        )
        if not isinstance(translator, MultiScaleTranslator):
            print(f"error: {stored['checkpoint']}: not a multi-scale translator", file=sys.stderr)
            return 2
        tiling = translator.tiling(**variant.tiling)
        folder = args.study / "branches" / args.variant / f"seed{seed}"
        translated = study.run_dir(args.variant, seed) / "translated"
        paths = {part: [] for part in parts}
        means, maps = [], []
        sums, counts = np.zeros(classes), np.zeros(classes)
        for sample in tqdm(samples, desc=f"seed {seed}", unit="img", leave=False):
            paths["fused"].append(translated / sample.relative.with_suffix(".png"))
            translation = translator.translate_parts(load_rgb(sample.image), tiling)
            attention = translation["attention"]  # (H, W)
            means.append(float(attention.mean()))
            label = data.source_label(sample)  # (H, W) train ids
            known = label != IGNORE_INDEX
            sums += np.bincount(label[known], weights=attention[known], minlength=classes)[:classes]
            counts += np.bincount(label[known], minlength=classes)[:classes]
            maps.append((attention, label))
            for part in ("local", "global"):
                out = folder / part / sample.relative.with_suffix(".png")
                if not out.is_file():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    translation[part].save(out)
                paths[part].append(out)
        attention_means.append(float(np.mean(means)))
        attention_by_class.append([float(s / n) if n else None for s, n in zip(sums, counts)])
        for part in PARTS:
            _score_part(study, figures[part], paths[part])
        if args.fusions:  # the oracle's classes come from the branches' scores above
            oracle = _oracle_classes(*(figures[p]["per_class_iou"][-1] for p in ("local", "global")))
            for sample, (attention, label), local, global_path in zip(
                samples, maps, paths["local"], paths["global"]
            ):
                branches = [np.asarray(load_rgb(path)) for path in (local, global_path)]  # (H, W, 3)
                for name, weights in (
                    ("recomposed", attention),
                    ("half", np.full_like(attention, 0.5)),
                    ("class-oracle", hard := np.isin(label, oracle).astype(np.float32)),
                    ("smooth-oracle", _smooth(hard, 4 * translator.scale)),  # M_s: G_g's bottleneck
                ):
                    out = folder / name / sample.relative.with_suffix(".png")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    _compose(*branches, weights).save(out)
                    paths[name].append(out)
            for part in FUSIONS:
                _score_part(study, figures[part], paths[part])
        print(
            f"seed {seed}: study's fused mIoU {100 * stored['distortion']['mean_iou']:.1f}; here "
            + ", ".join(f"{p} {figures[p]['mean_iou'][-1]:.1f}" for p in parts),
            flush=True,
        )

    print(
        f"\n| {args.variant}, {len(seeds)} seeds | pixel accuracy (%) | mean IoU (%) | KID | mIoU per seed |"
    )
    print("|---|---|---|---|---|")
    for part in parts:
        f = figures[part]
        print(
            f"| {part} | {_mean_std(f['pixel_accuracy'])} | {_mean_std(f['mean_iou'])} | "
            f"{_mean_std(f['kid'], 3)} | " + " / ".join(f"{v:.1f}" for v in f["mean_iou"]) + " |"
        )
    print(f"\nmean M_s (1 = local) per seed: {' / '.join(f'{m:.2f}' for m in attention_means)}")
    _print_classes({**figures, "attention_by_class": attention_by_class}, parts, data.class_names, study)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "seeds": seeds,
                    "attention_mean": attention_means,
                    "attention_by_class": attention_by_class,
                    **figures,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
