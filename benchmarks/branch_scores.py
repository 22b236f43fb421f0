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
seeds), and each part's largest class flips (share of the true class's pixels the segmenter reads as
another class, mean over the seeds, ranked as the study's report ranks them); writes the per-seed figures,
per-class IoUs and confusion matrices as JSON. The branch
images are written under ``STUDY_DIR/branches/VARIANT/seedN/{local,global}`` (kept: a rerun scores what
is there). The branches alone are not translators anyone trained: G_l was trained to be fused with
G_g, so a branch that scores worse alone is not a branch that hurts inside the fusion. What the table can
say is where the fused output's classes come from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from semst.cli.study import parse_seeds

PARTS = ("fused", "local", "global")


def _mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` over seeds (sample std, as the study's tables; 0 for one seed)."""
    if not values:
        return "n/a"
    array = np.asarray(values, dtype=float)
    std = array.std(ddof=1) if len(array) > 1 else 0.0
    return f"{array.mean():.{digits}f} ± {std:.{digits}f}"


def _print_classes(figures: dict, class_names: list[str], study) -> None:
    """Each class's IoU per part (mean ± std over the seeds), and each part's largest flips."""
    from semst.study.summary import class_pixel_share, mean_flip_matrix, top_flips

    per_part = {part: np.asarray(figures[part]["per_class_iou"], dtype=float) for part in PARTS}  # (S, C)
    used = [c for c in range(len(class_names)) if not np.isnan(per_part["fused"][:, c]).all()]
    print("\n| class: IoU (%) | " + " | ".join(PARTS) + " |")
    print("|---|" + "---|" * len(PARTS))
    for c in used:
        cells = [_mean_std([100 * v for v in per_part[part][:, c] if not np.isnan(v)]) for part in PARTS]
        print(f"| {class_names[c]} | " + " | ".join(cells) + " |")
    source = json.loads((study.directory / "references" / "source.json").read_text())
    weights = class_pixel_share(source["distortion"]["confusion_matrix"])  # (C,) as the study's report ranks
    for part in PARTS:
        flips = top_flips(mean_flip_matrix(figures[part]["confusion_matrix"]), class_names, 6, weights)
        text = ", ".join(f"{f['true']} -> {f['predicted']} {100 * f['share']:.0f} %" for f in flips)
        print(f"\nlargest flips, {part}: {text}")


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
    figures: dict[str, dict[str, list]] = {
        part: {"pixel_accuracy": [], "mean_iou": [], "kid": [], "per_class_iou": [], "confusion_matrix": []}
        for part in PARTS
    }
    attention_means: list[float] = []
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
        paths = {part: [] for part in PARTS}
        means = []
        for sample in tqdm(samples, desc=f"seed {seed}", unit="img", leave=False):
            paths["fused"].append(translated / sample.relative.with_suffix(".png"))
            parts = translator.translate_parts(load_rgb(sample.image), tiling)
            means.append(float(parts["attention"].mean()))
            for part in ("local", "global"):
                out = folder / part / sample.relative.with_suffix(".png")
                if not out.is_file():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    parts[part].save(out)
                paths[part].append(out)
        attention_means.append(float(np.mean(means)))
        for part in PARTS:
            scores = study._score(paths[part], samples, data.source_label, progress=False)
            figures[part]["pixel_accuracy"].append(100 * scores["distortion"]["pixel_accuracy"])
            figures[part]["mean_iou"].append(100 * scores["distortion"]["mean_iou"])
            figures[part]["kid"].append(scores["realism"]["kid"])
            figures[part]["per_class_iou"].append(scores["distortion"]["per_class_iou"])
            figures[part]["confusion_matrix"].append(scores["distortion"]["confusion_matrix"])
        print(
            f"seed {seed}: study's fused mIoU {100 * stored['distortion']['mean_iou']:.1f}; here "
            + ", ".join(f"{p} {figures[p]['mean_iou'][-1]:.1f}" for p in PARTS),
            flush=True,
        )

    print(
        f"\n| {args.variant}, {len(seeds)} seeds | pixel accuracy (%) | mean IoU (%) | KID | mIoU per seed |"
    )
    print("|---|---|---|---|---|")
    for part in PARTS:
        f = figures[part]
        print(
            f"| {part} | {_mean_std(f['pixel_accuracy'])} | {_mean_std(f['mean_iou'])} | "
            f"{_mean_std(f['kid'], 3)} | " + " / ".join(f"{v:.1f}" for v in f["mean_iou"]) + " |"
        )
    print(f"\nmean M_s (1 = local) per seed: {' / '.join(f'{m:.2f}' for m in attention_means)}")
    _print_classes(figures, data.class_names, study)
    if args.out:
        args.out.write_text(
            json.dumps({"seeds": seeds, "attention_mean": attention_means, **figures}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
