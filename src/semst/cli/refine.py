"""``semst refine``: translate a whole labelled data set into the target look, in its own layout (for UDA)."""

from __future__ import annotations

import argparse
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_device, add_progress, add_tiling, add_verbosity, tiling_from_args

HELP = (
    "translate a whole labelled data set (GTA5, SYNTHIA, ...) into the target look, same layout, labels kept"
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "refine",
        help=HELP,
        description=HELP + ". Every image is translated at full resolution and written at the same relative "
        "path under --out, label maps copied unchanged, so a domain-adaptation code base (DAFormer, HRDA, "
        "SePiCo, ProDA, ...) trains on the result by changing only its data root. Resumable: run it again "
        "to finish an interrupted run; no half-written image is ever left. Writes --out/refine.json.",
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
    p.add_argument("--split", help="only this split (default: all of the data set's splits)")
    p.add_argument("--out", metavar="DIR", required=True, help="output root (outside the data set's folder)")
    p.add_argument("--link-labels", action="store_true", help="hard-link label maps instead of copying them")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images (to try settings)")
    add_tiling(p)
    add_device(p)
    add_progress(p)
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.data.datasets import open_dataset
    from semst.refine import check_output_folder, refine_dataset
    from semst.translators import Translator

    dataset = open_dataset(args.dataset)
    check_output_folder(Path(dataset.root), Path(args.out))  # before loading anything heavy
    samples = dataset.samples(args.split)
    if args.limit is not None:
        samples = samples[: max(0, args.limit)]
    translator = Translator.from_checkpoint(args.checkpoint, device=args.device)
    tiling = tiling_from_args(translator, args)
    report = refine_dataset(
        translator,
        samples,
        args.out,
        root=dataset.root,
        description={"name": dataset.name, "root": str(dataset.root), "split": args.split or "all"},
        link_labels=args.link_labels,
        progress=not args.no_progress,
        tiling=tiling,
    )
    print(
        f"refined {dataset.name} into {args.out}: {report.written} written, {report.skipped} already there, "
        f"{report.labels} label maps, {len(report.failed)} failed; manifest {Path(args.out) / 'refine.json'}"
    )
    for image, reason in report.failed[:10]:
        print(f"  failed: {image}: {reason}")
    if report.missing:
        print(f"  missing after the run: {len(report.missing)} file(s), e.g. {report.missing[:3]}")
    return 0 if report.ok else 1
