"""``semst segmenter``: train the target-domain segmenter that scores semantic distortion, or export it."""

from __future__ import annotations

import argparse
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_device, add_progress, add_verbosity

HELP = "train the target-domain segmenter used by `semst evaluate segmentation`, or export it"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("segmenter", help=HELP, description=HELP + ".", formatter_class=HelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="train a segmenter on labelled images of one domain",
        description="Train semst's segmentation network (a compact U-Net, the stand-in for the paper's "
        "FCN-8s) on labelled images of the TARGET domain, and save it as a safe checkpoint. With held-out "
        "labelled images it reports its own pixel accuracy and mean IoU: the score of a translation means "
        "little if the segmenter is weak. Images and label maps are matched by file name (see --image-suffix).",
        formatter_class=HelpFormatter,
    )
    train.add_argument(
        "--images", metavar="DIR", required=True, help="training images (searched recursively)"
    )
    train.add_argument(
        "--labels", metavar="DIR", required=True, help="their label maps (class ids, 255 = ignore)"
    )
    train.add_argument(
        "--val-images", metavar="DIR", help="held-out images to report the segmenter's accuracy"
    )
    train.add_argument("--val-labels", metavar="DIR", help="label maps of --val-images")
    train.add_argument("--out", metavar="FILE", required=True, help="checkpoint to write (.safetensors)")
    train.add_argument("--num-classes", type=int, default=19, help="output classes (Cityscapes trainIds: 19)")
    train.add_argument("--steps", type=int, default=2000, help="optimisation steps")
    train.add_argument(
        "--crop-size",
        type=int,
        nargs="+",
        default=[256],
        metavar="PX",
        help="training crop: SIDE or HEIGHT WIDTH",
    )
    train.add_argument("--batch-size", type=int, default=4, help="crops per step")
    train.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (AdamW, warm-up, poly decay)"
    )
    train.add_argument(
        "--width", type=int, default=24, help="channels of the first stage (doubles per stage)"
    )
    train.add_argument("--depth", type=int, default=4, help="downsampling stages")
    train.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation, data order and augmentation"
    )
    train.add_argument(
        "--photometric",
        action="store_true",
        help="colour augmentation as in mmsegmentation's pipelines (brightness, contrast, saturation, hue): "
        "a segmenter that scores distortion by classes, not by the training images' exact palette (what "
        "`semst study run` trains by default)",
    )
    train.add_argument("--image-suffix", default="", help="stripped from image names before matching labels")
    train.add_argument("--label-suffix", default="", help="stripped from label names before matching images")
    add_device(train)
    add_progress(train)
    add_verbosity(train)

    export = actions.add_parser(
        "export",
        help="export a semst segmenter as TorchScript",
        description="Write a semst segmenter checkpoint as a TorchScript file (any input size; takes RGB in "
        "[0, 1], returns logits), for use outside semst.",
        formatter_class=HelpFormatter,
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint from `semst segmenter train`")
    export.add_argument("output", metavar="OUT", help="TorchScript file to write (.pt)")
    add_verbosity(export)


def run(args: argparse.Namespace) -> int:
    from semst.overlap import refuse_overlap
    from semst.segmentation.loading import export_segmenter_torchscript

    if args.action == "export":
        refuse_overlap([args.checkpoint], files=[args.output])
        print(f"wrote {export_segmenter_torchscript(args.checkpoint, args.output)}")
        return 0

    from semst import checkpoint as ckpt
    from semst.data.labels import NUM_TRAIN_IDS, TRAIN_ID_NAMES
    from semst.evaluation import match_pairs
    from semst.runtime import resolve_device
    from semst.segmentation.train import SegmenterTrainConfig, train_segmenter

    if (args.val_images is None) != (args.val_labels is None):
        raise ValueError("give both --val-images and --val-labels, or neither")
    if len(args.crop_size) not in (1, 2):
        raise ValueError(f"--crop-size takes SIDE or HEIGHT WIDTH, got {args.crop_size}")
    suffixes = {"image_suffix": args.image_suffix, "label_suffix": args.label_suffix}
    pairs = match_pairs(Path(args.images), Path(args.labels), **suffixes)
    val_pairs = (
        match_pairs(Path(args.val_images), Path(args.val_labels), **suffixes) if args.val_images else None
    )
    refuse_overlap([path for pair in [*pairs, *(val_pairs or [])] for path in pair], files=[args.out])
    config = SegmenterTrainConfig(
        num_classes=args.num_classes,
        steps=args.steps,
        crop_size=args.crop_size[0] if len(args.crop_size) == 1 else tuple(args.crop_size),
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        width=args.width,
        depth=args.depth,
        photometric=args.photometric,
    )
    path = train_segmenter(
        pairs,
        config,
        out=Path(args.out),
        val_pairs=val_pairs,
        class_names=list(TRAIN_ID_NAMES) if args.num_classes == NUM_TRAIN_IDS else None,
        device=str(resolve_device(args.device)),
        progress=not args.no_progress,
    )
    print(f"segmenter written to {path} ({len(pairs)} training images)")
    val = ckpt.read_metadata(path).get("val")
    if val:
        print(
            f"held-out accuracy on {val['pairs']} images: pixel accuracy {100 * val['pixel_accuracy']:.2f}%, "
            f"mean IoU {100 * val['mean_iou']:.2f}%"
        )
    return 0
