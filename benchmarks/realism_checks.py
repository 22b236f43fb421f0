"""Do the realism scores measure what they claim? The checks of docs/realism.md on semst's world.

    OMP_NUM_THREADS=1 python benchmarks/realism_checks.py --work /tmp/realism --out realism_checks.json

Steps (each reused from ``--work`` when it exists):

1. a world of ``--train`` scenes per domain and ``--test`` held-out scenes at ``--size`` (``semst world``);
2. a domain classifier on street/trainA (source) vs street/trainB (target), default settings;
3. a target segmenter on street/trainB (the demo's settings), for its encoder features;
4. "blend" sets: the layouts of the source test scenes rendered in BOTH looks (so the two renderings are
   pixel-aligned), mixed as (1 - t) * source look + t * target look for t = 0, 0.25, 0.5, 0.75, 1: a
   stand-in for translations that go a fraction t of the way; at t = 1 the look is the target's while the
   layouts (and so the class statistics) stay the source's;
5. the scores of every set against street/testB (real target test scenes) with their label maps:
   - ``target halves``: first half of testB scored against the second half (real vs real: near 0);
   - ``source``: street/testA, real source scenes: what an identity "translation" scores;
   - ``blend t``: the blends.

With ``--inception FILE`` (a local FID Inception weights file) Inception KID/FID are added.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from semst.data.images import save_image
from semst.data.labels import TRAIN_ID_NAMES
from semst.evaluation.domain_classifier import load_domain_classifier, train_domain_classifier
from semst.evaluation.features import SegmenterEncoderExtractor
from semst.evaluation.matching import match_pairs
from semst.evaluation.realism import extract_features, realism_scores
from semst.segmentation.train import train_segmenter
from semst.world.dataset import write_world
from semst.world.layout import DOMAIN_STATS, generate_scene, scene_seed
from semst.world.render import render_source, render_target

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)


def write_blends(folder: Path, *, seed: int, count: int, size: tuple[int, int]) -> None:
    """Source test layouts rendered in both looks and mixed, with their label maps, under ``folder``."""
    for index in range(count):
        scene = generate_scene(scene_seed(seed, "source", "test", index), DOMAIN_STATS["source"], *size)
        source = render_source(scene, np.random.default_rng([seed, 101, index])).astype(np.float32)
        target = render_target(scene, np.random.default_rng([seed, 102, index])).astype(np.float32)
        name = f"{index:05d}.png"
        save_image(Image.fromarray(scene.labels, mode="L"), folder / "labels" / name)
        for t in BLENDS:
            mixed = np.clip(np.rint((1 - t) * source + t * target), 0, 255).astype(np.uint8)
            save_image(Image.fromarray(mixed), folder / f"t{t:.2f}" / name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="folder for the world, networks and blends")
    parser.add_argument("--out", type=Path, help="write all scores as JSON here")
    parser.add_argument("--train", type=int, default=60, help="training scenes per domain")
    parser.add_argument("--test", type=int, default=40, help="test scenes per domain")
    parser.add_argument("--size", default="512x256", help="scene size WxH")
    parser.add_argument("--classifier-steps", type=int, default=300)
    parser.add_argument("--segmenter-steps", type=int, default=400)
    parser.add_argument("--inception", type=Path, help="local FID Inception weights file (optional)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(v) for v in args.size.split("x"))
    work = args.work
    world = work / "world"
    write_world(
        world, seed=args.seed, train=args.train, test=args.test, size=(width, height), aerial_size=None
    )
    street = world / "street"

    classifier_path = work / "classifier.safetensors"
    if not classifier_path.is_file():
        train_domain_classifier(
            street / "trainA",
            street / "trainB",
            out=classifier_path,
            steps=args.classifier_steps,
            seed=args.seed,
        )
    segmenter_path = work / "segmenter.safetensors"
    if not segmenter_path.is_file():
        train_segmenter(
            match_pairs(street / "trainB", street / "trainB_labels"),
            num_classes=len(TRAIN_ID_NAMES),
            out=segmenter_path,
            class_names=list(TRAIN_ID_NAMES),
            steps=args.segmenter_steps,
            crop_size=(128, 256),
            batch_size=4,
            lr=2e-3,
            seed=args.seed,
            width=16,
        )
    blends = work / "blends"
    if not (blends / f"t{BLENDS[-1]:.2f}").is_dir():
        write_blends(blends, seed=args.seed, count=args.test, size=(width, height))

    classifier = load_domain_classifier(classifier_path)
    extractors = [SegmenterEncoderExtractor.from_file(segmenter_path)]
    if args.inception:
        from semst.evaluation.inception import InceptionExtractor

        extractors.append(InceptionExtractor(args.inception))
    every = [classifier, *extractors]
    reference = extract_features(street / "testB", every, labels=street / "testB_labels", desc="reference")
    targets = sorted((street / "testB").glob("*.png"))
    half = len(targets) // 2
    target_labels = [street / "testB_labels" / p.name for p in targets]

    def score(images, labels, ref=reference, ref_labels=None):
        return realism_scores(
            images,
            ref,
            extractors=extractors,
            classifier=classifier,
            labels=labels,
            reference_labels=ref_labels,
            progress=False,
        )

    results = {
        "classifier_held_out": classifier.held_out,
        "target halves": score(targets[:half], target_labels[:half], targets[half:], target_labels[half:]),
        "source": score(street / "testA", street / "testA_labels"),
    }
    for t in BLENDS:
        results[f"blend {t:.2f}"] = score(blends / f"t{t:.2f}", blends / "labels")

    names = ["classifier", *(e.name for e in extractors)]
    print(f"classifier held-out accuracy: {classifier.held_out}")
    header = f"{'set':14s} {'share':>6s} {'prob':>6s}" + "".join(
        f" {n + ' KID':>15s} {n + ' cKID':>15s}" for n in names
    )
    print(header)
    for key, value in results.items():
        if key == "classifier_held_out":
            continue
        row = f"{key:14s} {value['classifier']['target_share']:6.3f} {value['classifier']['target_probability']:6.3f}"
        for n in names:
            matched = value[n].get("class_matched_kid", {}).get("kid")
            row += (
                f" {value[n]['kid']['mean']:15.5f} {matched if matched is not None else float('nan'):15.5f}"
            )
        print(row)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
