"""``semst evaluate``: score translations with the paper's protocols (segmentation, paired)."""

from __future__ import annotations

import argparse
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_device, add_progress, add_verbosity
from semst.files import write_json

HELP = "score translated images: semantic distortion with a segmenter, or paired images (photo to map)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP + ".", formatter_class=HelpFormatter)
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)

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


def _run_segmentation(args: argparse.Namespace) -> int:
    import numpy as np

    from semst.data.images import load_rgb, save_image
    from semst.data.labels import NUM_TRAIN_IDS, TRAIN_ID_NAMES, load_label_map
    from semst.evaluation import evaluate_segmentation, match_pairs
    from semst.evaluation.pictures import distortion_panel
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
    images_root = Path(args.images)
    written = []

    def picture(image_path: Path, label_path: Path, prediction) -> None:
        if args.pictures is None or len(written) >= args.max_pictures:
            return
        relative = (
            image_path.relative_to(images_root) if image_path.is_relative_to(images_root) else image_path.name
        )
        source = None
        if args.sources:
            candidate = Path(args.sources) / relative
            if candidate.is_file():
                source = np.asarray(load_rgb(candidate))
        panel = distortion_panel(
            np.asarray(load_rgb(image_path)),
            prediction,
            load_label_map(label_path),
            source=source,
            title=str(relative),
        )
        save_image(panel, Path(args.pictures) / Path(relative).with_suffix(".png"))
        written.append(relative)

    scores = evaluate_segmentation(
        segmenter,
        pairs,
        num_classes=num_classes,
        batch_size=args.batch_size,
        device=device,
        progress=not args.no_progress,
        on_image=picture,
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
    if written:
        print(f"{len(written)} distortion picture(s) in {args.pictures}")
    return 0


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


def run(args: argparse.Namespace) -> int:
    if args.protocol == "segmentation":
        return _run_segmentation(args)
    return _run_paired(args)
