"""``semst evaluate``: score translations: semantic distortion (segmentation), paired images (paired), realism
against real target images (realism, with a domain classifier from train-classifier)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_device, add_progress, add_verbosity
from semst.files import write_json

HELP = (
    "score translated images: semantic distortion with a segmenter, paired images (photo to map), or realism "
    "against real target images"
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP + ".", formatter_class=HelpFormatter)
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    _add_segmentation_parser(protocols)
    _add_paired_parser(protocols)
    _add_realism_parser(protocols)
    _add_train_classifier_parser(protocols)


def _add_segmentation_parser(protocols) -> None:
    seg = protocols.add_parser(
        "segmentation",
        help="segment images with a target-domain segmenter and score against label maps",
        description="Segment images (e.g. translated source images) with a segmenter of the target domain and "
        "score its labels against the label maps of the source images: pixel accuracy, class accuracy (mean "
        "per-class recall over classes present in the labels) and mean IoU (over classes with a non-empty "
        "union), from one confusion matrix over the whole set (paper section 4.2).",
        formatter_class=HelpFormatter,
    )
    seg.add_argument(
        "--segmenter",
        metavar="FILE",
        required=True,
        help="a semst segmenter (.safetensors from `semst segmenter train`), a TorchScript file or an ONNX "
        "model taking float32 (B, 3, H, W) RGB in [0, 1] and returning logits (B, C, h, w) or {'out': ...}",
    )
    seg.add_argument("--images", metavar="DIR", required=True, help="images to score (searched recursively)")
    seg.add_argument(
        "--labels", metavar="DIR", required=True, help="label maps: PNGs of class ids, 255 = ignore"
    )
    seg.add_argument("--output", metavar="JSON", help="write the scores (and the confusion matrix) here")
    seg.add_argument(
        "--num-classes",
        type=int,
        help="classes of the segmenter's output (default: from a semst segmenter, else 19 as Cityscapes)",
    )
    seg.add_argument(
        "--image-suffix", default="", help="stripped from image names before matching, e.g. _leftImg8bit"
    )
    seg.add_argument(
        "--label-suffix",
        default="",
        help="stripped from label names before matching, e.g. _gtFine_labelTrainIds",
    )
    seg.add_argument(
        "--normalize",
        choices=("none", "imagenet"),
        default="none",
        help="input normalisation the segmenter expects (imagenet: mean 0.485,0.456,0.406, std 0.229,0.224,0.225)",
    )
    seg.add_argument(
        "--mean",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="explicit input mean (RGB in [0, 1] units), with --std; replaces --normalize",
    )
    seg.add_argument(
        "--std", type=float, nargs=3, metavar=("R", "G", "B"), help="explicit input std, with --mean"
    )
    seg.add_argument(
        "--pictures",
        metavar="DIR",
        help="also write, per image, the image, the segmenter's labels, the true labels and a distortion map",
    )
    seg.add_argument(
        "--sources",
        metavar="DIR",
        help="the untranslated source images (same relative names), shown first in the pictures",
    )
    seg.add_argument("--max-pictures", type=int, default=20, metavar="N", help="pictures written at most")
    seg.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per segmenter call")
    add_device(seg)
    add_progress(seg)
    add_verbosity(seg)


def _add_paired_parser(protocols) -> None:
    paired = protocols.add_parser(
        "paired",
        help="score translated images against true images of the same names (photo to map)",
        description="Score translated images against the true ones (e.g. maps translated from aerial photos "
        "against the true maps): rmse over all pixels and channels on the 0-255 scale, and accuracy_delta_5 "
        "/ accuracy_delta_10, the fraction of pixels whose largest channel difference is below delta "
        "(paper section 4.2, after GcGAN).",
        formatter_class=HelpFormatter,
    )
    paired.add_argument("--pred", metavar="DIR", required=True, help="translated images")
    paired.add_argument("--gt", metavar="DIR", required=True, help="true images with the same relative names")
    paired.add_argument("--pred-suffix", default="", help="stripped from prediction names before matching")
    paired.add_argument("--gt-suffix", default="", help="stripped from true image names before matching")
    paired.add_argument("--output", metavar="JSON", help="write the scores here")
    add_progress(paired)
    add_verbosity(paired)


def _add_realism_parser(protocols) -> None:
    realism = protocols.add_parser(
        "realism",
        help="how much translated images look like real target images (target share, KID, FID)",
        description="Score how much images (e.g. translated source images) look like real images of the "
        "target domain, offline. With --classifier (from `semst evaluate train-classifier`): the target "
        "share, the fraction of the images' crops the source-vs-target classifier calls target, and KID/FID "
        "on its features. With --segmenter: KID/FID on the target segmenter's encoder features. With "
        "--inception: classic KID/FID on the FID Inception network's pool3 features, from a weights file "
        "you already have (nothing is downloaded). With --labels and --reference-labels: class-matched KID "
        "(crops compared class by class). See docs/realism.md.",
        formatter_class=HelpFormatter,
    )
    # The order of these calls is the order of the options in --help.
    _add_realism_images(realism)
    _add_realism_judges(realism)
    _add_realism_labels(realism)
    _add_realism_scoring(realism)
    add_device(realism)
    add_progress(realism)
    add_verbosity(realism)


def _add_realism_images(realism: argparse.ArgumentParser) -> None:
    realism.add_argument(
        "--images", metavar="DIR", required=True, help="images to score (searched recursively)"
    )
    realism.add_argument(
        "--reference",
        metavar="DIR",
        help="real target images (e.g. held-out target images); or --reference-cache",
    )
    realism.add_argument(
        "--reference-cache",
        metavar="FILE",
        help="features of the reference images: read from FILE if it exists, else computed from --reference "
        "and written to FILE (score many runs against one reference without recomputing it)",
    )


def _add_realism_judges(realism: argparse.ArgumentParser) -> None:
    realism.add_argument(
        "--classifier", metavar="FILE", help="domain classifier (semst evaluate train-classifier)"
    )
    realism.add_argument(
        "--segmenter", metavar="FILE", help="semst target segmenter: KID on its encoder features"
    )
    realism.add_argument(
        "--inception",
        metavar="FILE",
        help="local FID Inception weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth or "
        "torch-fidelity's weights-inception-2015-12-05-6726825d.pth): classic KID/FID",
    )
    realism.add_argument(
        "--inception-preprocessing",
        choices=("torch-fidelity", "pytorch-fid"),
        default="torch-fidelity",
        help="resizing to 299 px and scaling as torch-fidelity (= the original TF FID code) or pytorch-fid",
    )


def _add_realism_labels(realism: argparse.ArgumentParser) -> None:
    realism.add_argument("--labels", metavar="DIR", help="label maps of --images, for class-matched KID")
    realism.add_argument("--reference-labels", metavar="DIR", help="label maps of --reference")
    realism.add_argument(
        "--image-suffix", default="", help="stripped from --images names before matching labels"
    )
    realism.add_argument("--label-suffix", default="", help="stripped from --labels names before matching")
    realism.add_argument(
        "--reference-image-suffix", default="", help="stripped from --reference names, e.g. _leftImg8bit"
    )
    realism.add_argument(
        "--reference-label-suffix",
        default="",
        help="stripped from --reference-labels names, e.g. _gtFine_labelTrainIds",
    )


def _add_realism_scoring(realism: argparse.ArgumentParser) -> None:
    realism.add_argument(
        "--short-side",
        type=int,
        metavar="PX",
        help="crop view without a classifier: images resized to this short side (default 256)",
    )
    realism.add_argument(
        "--crop-size", type=int, metavar="PX", help="crop view without a classifier: crop side (default 64)"
    )
    realism.add_argument("--kid-subsets", type=int, default=100, metavar="N", help="KID subsets")
    realism.add_argument(
        "--kid-subset-size",
        type=int,
        default=1000,
        metavar="N",
        help="KID subset size (clamped to the set sizes)",
    )
    realism.add_argument(
        "--min-class-crops",
        type=int,
        default=20,
        metavar="N",
        help="class-matched KID: crops per class and side",
    )
    realism.add_argument("--seed", type=int, default=2020, help="seed of the KID subsets")
    realism.add_argument("--output", metavar="JSON", help="write the scores here")
    realism.add_argument(
        "--batch-size", type=int, default=128, metavar="N", help="crops or images per network call"
    )


def _add_train_classifier_parser(protocols) -> None:
    train = protocols.add_parser(
        "train-classifier",
        help="train the source-vs-target domain classifier that `evaluate realism` uses",
        description="Train a small CNN to tell crops of real source images from crops of real target images, "
        "and save it as a safe checkpoint with its accuracy on held-out images. `semst evaluate realism "
        "--classifier FILE` then reports the share of a translation's crops it calls target, and KID on its "
        "features. Train it once per data set and reuse it for every translation. Crops (default 64 px of "
        "images resized to a 256 px short side) make it judge colour, texture and noise, not scene layout.",
        formatter_class=HelpFormatter,
    )
    train.add_argument("--source", metavar="DIR", required=True, help="real source images (e.g. trainA)")
    train.add_argument("--target", metavar="DIR", required=True, help="real target images (e.g. trainB)")
    train.add_argument("--out", metavar="FILE", required=True, help="checkpoint to write (.safetensors)")
    train.add_argument("--val-source", metavar="DIR", help="held-out source images (default: a split)")
    train.add_argument("--val-target", metavar="DIR", help="held-out target images, with --val-source")
    train.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of the images held out when no --val-* is given",
    )
    train.add_argument("--steps", type=int, default=300, help="optimisation steps")
    train.add_argument("--batch-size", type=int, default=32, help="crops per step, half from each domain")
    train.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (AdamW, warm-up, cosine decay)"
    )
    train.add_argument(
        "--short-side", type=int, default=256, metavar="PX", help="images resized to this short side"
    )
    train.add_argument("--crop-size", type=int, default=64, metavar="PX", help="crop side after resizing")
    train.add_argument("--width", type=int, default=16, help="channels of the first layer")
    train.add_argument("--depth", type=int, default=4, help="stride-2 stages")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation, split, crops and batches")
    add_device(train)
    add_progress(train)
    add_verbosity(train)


def _run_segmentation(args: argparse.Namespace) -> int:
    from semst.data.labels import NUM_TRAIN_IDS, TRAIN_ID_NAMES
    from semst.evaluation import evaluate_segmentation, match_pairs
    from semst.overlap import refuse_overlap
    from semst.runtime import resolve_device
    from semst.segmentation.loading import load_segmenter

    pairs = match_pairs(
        Path(args.images), Path(args.labels), image_suffix=args.image_suffix, label_suffix=args.label_suffix
    )
    # Nothing written may replace a scored image, a label map, a source image or the segmenter.
    refuse_overlap(
        [args.segmenter, args.sources, *(path for pair in pairs for path in pair)],
        files=[args.output],
        folders=[args.pictures],
    )
    device = resolve_device(args.device)
    if (args.mean is None) != (args.std is None):
        raise ValueError("give both --mean and --std, or neither")
    segmenter = load_segmenter(
        args.segmenter, device=device, normalize=args.normalize, mean=args.mean, std=args.std
    )
    num_classes = args.num_classes or segmenter.num_classes or NUM_TRAIN_IDS
    names = list(segmenter.class_names or (TRAIN_ID_NAMES if num_classes == NUM_TRAIN_IDS else []))
    names += [f"class {i}" for i in range(len(names), num_classes)]
    pictures = _DistortionPictures(args)
    scores = evaluate_segmentation(
        segmenter,
        pairs,
        num_classes=num_classes,
        batch_size=args.batch_size,
        device=device,
        progress=not args.no_progress,
        on_image=pictures,
    )
    scores["class_names"] = names
    scores["segmenter"] = str(args.segmenter)
    scores["images"] = str(args.images)
    scores["labels"] = str(args.labels)

    def pct(value) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}"

    print(
        f"{scores['num_images']} images: pixel accuracy {pct(scores['pixel_accuracy'])}%, class accuracy "
        f"{pct(scores['class_accuracy'])}%, mean IoU {pct(scores['mean_iou'])}%"
    )
    for name, iou in zip(names, scores["per_class_iou"]):
        if iou is not None:
            print(f"  {name:15s} IoU {100 * iou:6.2f}%")
    if args.output:
        print(f"scores written to {write_json(args.output, scores)}")
    if pictures.written:
        print(f"{len(pictures.written)} distortion picture(s) in {args.pictures}")
    return 0


class _DistortionPictures:
    """`evaluate_segmentation`'s `on_image`: writes the distortion panel of the first `--max-pictures` images
    under `--pictures` (nothing without it), with the untranslated image from `--sources` where it exists."""

    def __init__(self, args: argparse.Namespace):
        self.folder = Path(args.pictures) if args.pictures is not None else None
        self.max_pictures = args.max_pictures
        self.images_root = Path(args.images)
        self.sources = Path(args.sources) if args.sources else None
        self.written: list[Path | str] = []

    def __call__(self, image_path: Path, label_path: Path, prediction) -> None:
        import numpy as np

        from semst.data.images import load_rgb, save_image
        from semst.data.labels import load_label_map
        from semst.evaluation.pictures import distortion_panel

        if self.folder is None or len(self.written) >= self.max_pictures:
            return
        root = self.images_root
        relative = image_path.relative_to(root) if image_path.is_relative_to(root) else image_path.name
        source = None
        if self.sources is not None:
            candidate = self.sources / relative
            if candidate.is_file():
                source = np.asarray(load_rgb(candidate))
        panel = distortion_panel(
            np.asarray(load_rgb(image_path)),
            prediction,
            load_label_map(label_path),
            source=source,
            title=str(relative),
        )
        save_image(panel, self.folder / Path(relative).with_suffix(".png"))
        self.written.append(relative)


def _run_paired(args: argparse.Namespace) -> int:
    from semst.evaluation import evaluate_paired, match_prediction_pairs
    from semst.overlap import refuse_overlap

    pairs = match_prediction_pairs(
        Path(args.pred), Path(args.gt), pred_suffix=args.pred_suffix, target_suffix=args.gt_suffix
    )
    refuse_overlap([path for pair in pairs for path in pair], files=[args.output])
    scores = evaluate_paired(pairs, progress=not args.no_progress)
    scores.update(pred=str(args.pred), gt=str(args.gt))
    print(
        f"{scores['num_images']} image pairs: RMSE {scores['rmse']:.3f}, accuracy within delta 5 "
        f"{100 * scores['accuracy_delta_5']:.2f}%, within delta 10 {100 * scores['accuracy_delta_10']:.2f}%"
    )
    if args.output:
        print(f"scores written to {write_json(args.output, scores)}")
    return 0


def _matched(images: str, labels: str | None, image_suffix: str, label_suffix: str):
    """Image files and their label maps (or None), matched by name with the suffixes stripped."""
    from semst.data.images import find_images
    from semst.evaluation import match_pairs

    if labels is None:
        return find_images(images), None
    pairs = match_pairs(Path(images), Path(labels), image_suffix=image_suffix, label_suffix=label_suffix)
    return [image for image, _ in pairs], [label for _, label in pairs]


def _run_realism(args: argparse.Namespace) -> int:
    from semst.data.images import ImageLoadError
    from semst.evaluation.realism import realism_scores
    from semst.runtime import resolve_device

    if not (args.classifier or args.segmenter or args.inception):
        raise ValueError(
            "give at least one judge: --classifier FILE (train one with `semst evaluate train-classifier`), "
            "--segmenter FILE or --inception FILE"
        )
    if args.reference is None and args.reference_cache is None:
        raise ValueError("give --reference DIR (real target images) or --reference-cache FILE")
    cache = Path(args.reference_cache) if args.reference_cache else None
    if args.reference is None and not cache.is_file():
        raise FileNotFoundError(f"reference cache {cache} does not exist; give --reference DIR to compute it")
    classifier, extractors = _realism_judges(args, resolve_device(args.device))
    view = _crop_view(args)
    every = extractors + ([classifier] if classifier else [])
    try:
        reference = _reference_features(args, cache, every, view)
        files, labels = _matched(args.images, args.labels, args.image_suffix, args.label_suffix)
        scores = realism_scores(
            files,
            reference,
            extractors=extractors,
            classifier=classifier,
            labels=labels,
            view=view,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            seed=args.seed,
            min_class_crops=args.min_class_crops,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except ImageLoadError as exc:  # one line naming the file, like every other data error
        raise ValueError(str(exc)) from exc
    scores["images"] = str(args.images)
    _print_realism(scores, [extractor.name for extractor in every])
    if args.output:
        print(f"scores written to {write_json(args.output, scores)}")
    return 0


def _realism_judges(args: argparse.Namespace, device) -> tuple[Any, list[Any]]:
    """The domain classifier (or None) and the other feature extractors that the options name."""
    from semst.evaluation.domain_classifier import load_domain_classifier
    from semst.evaluation.features import SegmenterEncoderExtractor
    from semst.evaluation.inception import InceptionExtractor

    classifier = load_domain_classifier(args.classifier, device=device) if args.classifier else None
    extractors = []
    if args.segmenter:
        extractors.append(SegmenterEncoderExtractor.from_file(args.segmenter, device=device))
    if args.inception:
        extractors.append(
            InceptionExtractor(args.inception, preprocessing=args.inception_preprocessing, device=device)
        )
    return classifier, extractors


def _crop_view(args: argparse.Namespace):
    """The crop view of --short-side/--crop-size (defaults for the one not given), or None for neither."""
    from semst.evaluation.crops import CropView

    if args.short_side is None and args.crop_size is None:
        return None
    defaults = CropView()
    return CropView(
        short_side=args.short_side or defaults.short_side, crop_size=args.crop_size or defaults.crop_size
    )


def _reference_features(args: argparse.Namespace, cache: Path | None, extractors: list, view):
    """The reference's features: read from the cache file if it exists, else computed (and cached)."""
    from semst.evaluation.realism import FeatureSet, extract_features

    if cache is not None and cache.is_file():
        reference = FeatureSet.load(cache)
        print(f"reference features read from {cache} ({reference.num_images} images of {reference.source})")
        return reference
    files, labels = _matched(
        args.reference, args.reference_labels, args.reference_image_suffix, args.reference_label_suffix
    )
    reference = extract_features(
        files,
        extractors,
        view=view,
        labels=labels,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        desc="reference",
    )
    reference.source = str(args.reference)
    if cache is not None:
        print(f"reference features written to {reference.save(cache)}")
    return reference


def _print_realism(scores: dict[str, Any], names: list[str]) -> None:
    """The summary of `realism_scores`: sizes, then each judge's target share, KID and FID."""
    crops = f" ({scores['num_crops']} crops)" if scores["num_crops"] else ""
    reference_crops = f" ({scores['reference_crops']} crops)" if scores["reference_crops"] else ""
    print(
        f"{scores['num_images']} images{crops} against {scores['reference_images']} reference images"
        f"{reference_crops}; crops of {scores['view']['crop_size']} px at short side {scores['view']['short_side']}"
    )
    for name in names:
        entry = scores[name]
        if "target_share" in entry:
            held = entry["held_out"]
            held_text = f"held-out accuracy {100 * held['accuracy']:.1f}%" if held else "no held-out accuracy"
            print(
                f"{name}: target share {100 * entry['target_share']:.1f}% (mean probability "
                f"{entry['target_probability']:.3f}; real reference {100 * entry['reference_target_share']:.1f}%, "
                f"{held_text})"
            )
        kid = entry["kid"]
        line = (
            f"  {name} KID {kid['mean']:.5f} +- {kid['std']:.5f} ({kid['subsets']} subsets of "
            f"{kid['subset_size']}), FID {entry['fid']:.3f}"
        )
        matched = entry.get("class_matched_kid")
        if matched and matched["kid"] is not None:
            line += (
                f", class-matched KID {matched['kid']:.5f} over {100 * matched['coverage']:.0f}% of the crops"
            )
        print(line)


def _run_train_classifier(args: argparse.Namespace) -> int:
    from semst.checkpoint import read_metadata
    from semst.data.images import ImageLoadError
    from semst.evaluation.crops import CropView
    from semst.evaluation.domain_classifier import train_domain_classifier
    from semst.runtime import resolve_device

    if (args.val_source is None) != (args.val_target is None):
        raise ValueError("give both --val-source and --val-target, or neither")
    try:
        path = train_domain_classifier(
            args.source,
            args.target,
            out=args.out,
            view=CropView(short_side=args.short_side, crop_size=args.crop_size),
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            width=args.width,
            depth=args.depth,
            val_fraction=args.val_fraction,
            val_source=args.val_source,
            val_target=args.val_target,
            device=str(resolve_device(args.device)),
            progress=not args.no_progress,
        )
    except ImageLoadError as exc:
        raise ValueError(str(exc)) from exc
    held = read_metadata(path).get("held_out")
    if held:
        print(
            f"held-out accuracy {100 * held['accuracy']:.1f}% (source {100 * held['source_accuracy']:.1f}% of "
            f"{held['source_crops']} crops, target {100 * held['target_accuracy']:.1f}% of {held['target_crops']})"
        )
    print(f"domain classifier written to {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.protocol == "segmentation":
        return _run_segmentation(args)
    if args.protocol == "realism":
        return _run_realism(args)
    if args.protocol == "train-classifier":
        return _run_train_classifier(args)
    return _run_paired(args)
