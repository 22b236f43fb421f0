"""``semst refine``: translate a whole labelled data set into the target look, in its own layout (for UDA)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import (
    add_device,
    add_progress,
    add_tiling,
    add_verbosity,
    add_weights,
    tiling_from_args,
)

HELP = (
    "translate a whole labelled data set (GTA5, SYNTHIA, ...) into the target look, same layout, labels kept"
)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel accuracy between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a pixel accuracy between 0 and 1 (0.8 = 80%), got {text}")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "refine",
        help=HELP,
        description=HELP + ". Every image of every split (or of --split) is translated at full resolution "
        "and written at the same relative path under --out, label maps copied unchanged, so a "
        "domain-adaptation code base (DAFormer, HRDA, SePiCo, ProDA, ...) trains on the result by changing "
        "only its data root. Label maps are validated first (readable, the image's size, ids of the data "
        "set's table or 255). Resumable: run it again to finish an interrupted run; no half-written image is "
        "ever left. --out/refine.json names the checkpoint (SHA-256, step) that made every output; a run into "
        "a folder made by another checkpoint is refused, and the folder is locked while refine runs. Under "
        "torchrun (torchrun --nproc_per_node N [--nnodes M ...] -m semst refine ...) the images are shared out "
        "among the processes, one GPU each, and one manifest is merged at the end; the output folder must be "
        "on a file system all machines share.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT_OR_RUN_DIR", help="a translator checkpoint or run directory"
    )
    p.add_argument(
        "--dataset",
        metavar="NAME:ROOT",
        required=True,
        help="the data set as downloaded, e.g. gta5:/data/GTA5, synthia:/data/RAND_CITYSCAPES, "
        "cityscapes:/data/cityscapes, folder:/data/horse2zebra",
    )
    p.add_argument(
        "--split",
        metavar="SPLIT[,SPLIT...]",
        help="only these splits, e.g. val or trainA,valA (default: all of the data set's splits)",
    )
    p.add_argument("--out", metavar="DIR", required=True, help="output root (outside the data set's folder)")
    p.add_argument("--link-labels", action="store_true", help="hard-link label maps instead of copying them")
    p.add_argument(
        "--bad-labels",
        choices=("fail", "skip"),
        default="fail",
        help="a label map that cannot be decoded, differs in size from its image or holds ids outside the "
        "data set's label table: fail before any work, naming each, or skip its sample (neither "
        "image nor label written; listed in refine.json)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images (to try settings)")
    gate = p.add_argument_group("quality gate (score every refined frame with a target-domain segmenter)")
    gate.add_argument(
        "--check-with",
        metavar="SEGMENTER",
        help="a segmenter of the target domain (as for `semst evaluate segmentation`): every refined frame is "
        "segmented as it is written and scored against its own source labels (pixel accuracy, mean IoU, in "
        "refine.json), and the classes that turned into others are summarised",
    )
    gate.add_argument(
        "--check-normalize",
        choices=("none", "imagenet"),
        default="none",
        help="input normalisation the segmenter expects (semst segmenters: none)",
    )
    gate.add_argument(
        "--flag-below",
        type=_fraction,
        metavar="PA",
        help="flag (list) frames whose pixel accuracy is below PA, e.g. 0.8",
    )
    gate.add_argument(
        "--drop-below",
        type=_fraction,
        metavar="PA",
        help="leave out frames whose pixel accuracy is below PA: neither image nor label is written; listed "
        "in refine.json",
    )
    add_tiling(p)
    add_weights(p)
    add_device(p)
    add_progress(p)
    add_verbosity(p)


def _samples(dataset, split: str | None) -> tuple[list, list[str]]:
    """The samples of the chosen splits (all of the data set's splits by default), and the splits."""
    splits = [name.strip() for name in split.split(",") if name.strip()] if split else list(dataset.splits)
    samples = []
    for name in dict.fromkeys(splits):
        samples.extend(dataset.samples(name))
    return samples, splits


def _quality_gate(args: argparse.Namespace, dataset, device):
    from semst.files import file_sha256
    from semst.refine import QualityGate, RefineError
    from semst.segmentation.loading import load_segmenter

    if args.check_with is None:
        if args.flag_below is not None or args.drop_below is not None:
            raise RefineError("--flag-below and --drop-below need a segmenter: --check-with SEGMENTER")
        return None
    segmenter = load_segmenter(args.check_with, device=str(device), normalize=args.check_normalize)
    if segmenter.num_classes is not None and segmenter.num_classes != dataset.num_classes:
        raise RefineError(
            f"the segmenter {args.check_with} predicts {segmenter.num_classes} classes, but the labels of the "
            f"{dataset.name} data set are {dataset.num_classes} classes (Cityscapes train ids)"
        )
    return QualityGate(
        segmenter,
        num_classes=dataset.num_classes,
        flag_below=args.flag_below,
        drop_below=args.drop_below,
        device=device,
        identity={"segmenter": str(args.check_with), "segmenter_sha256": file_sha256(args.check_with)},
    )


def run(args: argparse.Namespace) -> int:
    from semst.data.datasets import open_dataset
    from semst.refine import (
        MANIFEST,
        RefineError,
        check_output_folder,
        check_outputs_against_inputs,
        format_quality,
        refine_dataset,
    )
    from semst.runtime import SHARD_TIMEOUT, init_distributed, resolve_device, shutdown_distributed
    from semst.translators import Translator

    dataset = open_dataset(args.dataset)
    out = Path(args.out)
    check_output_folder(Path(dataset.root), out)  # before loading anything heavy
    samples, splits = _samples(dataset, args.split)
    if args.limit is not None:
        samples = samples[: max(0, args.limit)]
    check_outputs_against_inputs(samples, out, int(os.environ.get("WORLD_SIZE", "1")))
    if args.check_with is not None and not any(sample.label is not None for sample in samples):
        raise RefineError(
            f"--check-with scores refined frames against their labels, but the {dataset.name} data set at "
            f"{dataset.root} has none in the splits {', '.join(splits)}"
        )
    device = resolve_device(args.device)
    quality = _quality_gate(args, dataset, device)
    translator = Translator.from_checkpoint(args.checkpoint, device=device, weights=args.weights)
    tiling = tiling_from_args(translator, args)
    shards = init_distributed(device, timeout=SHARD_TIMEOUT)  # one process unless under torchrun
    try:
        report = refine_dataset(
            translator,
            samples,
            out,
            root=dataset.root,
            description={
                "name": dataset.name,
                "root": str(dataset.root),
                "split": args.split or "all",
                "splits": splits,
            },
            link_labels=args.link_labels,
            progress=not args.no_progress,
            tiling=tiling,
            dataset=dataset,
            bad_labels=args.bad_labels,
            quality=quality,
            shards=shards,
        )
    finally:
        shutdown_distributed()
    if not shards.is_main:  # process 0 reports for the whole job
        return 0 if report.ok else 1
    processes = f" by {shards.world_size} processes" if shards.enabled else ""
    print(
        f"refined {dataset.name} ({', '.join(splits)}) into {out}{processes}: {report.written} written, "
        f"{report.skipped} already there, {report.labels} label maps, {len(report.failed)} failed; "
        f"manifest {out / MANIFEST}"
    )
    if report.rewritten:
        print(
            f"  refined again (unrecorded or changed): {len(report.rewritten)}, e.g. {report.rewritten[:3]}"
        )
    if report.bad_labels:
        print(f"  left out for bad label maps (--bad-labels skip): {len(report.bad_labels)}")
        for label, reason in report.bad_labels[:10]:
            print(f"    {label}: {reason}")
    for image, reason in report.failed[:10]:
        print(f"  failed: {image}: {reason}")
    if report.missing:
        print(f"  missing after the run: {len(report.missing)} file(s), e.g. {report.missing[:3]}")
    if report.quality is not None:
        for line in format_quality(report.quality):
            print(line)
    return 0 if report.ok else 1
