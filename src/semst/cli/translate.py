"""``semst translate``: translate image files and folders with a checkpoint, at their full size."""

from __future__ import annotations

import argparse
import sys

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_device, add_progress, add_tiling, add_verbosity, tiling_from_args

HELP = "translate images (files or folders, any size) with a trained checkpoint"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "translate",
        help=HELP,
        description=HELP + ". Outputs keep the inputs' sizes and relative names. Unreadable images are "
        "reported and skipped; the exit status is 1 if any image failed.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT_OR_RUN_DIR",
        help="a .safetensors checkpoint, or a run directory (its latest checkpoint is used)",
    )
    p.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="image files and/or folders (searched recursively)"
    )
    p.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="output folder")
    p.add_argument(
        "--ext",
        metavar="EXT",
        default=None,
        help="write every output with this extension/format, e.g. png (default: keep the input's)",
    )
    add_tiling(p)
    p.add_argument(
        "--fusion-panels",
        metavar="DIR",
        help="multi-scale models: also write, per image, a picture of the global output, the local output, "
        "the scale attention M_s as a heat map and the fused result (needs matplotlib: semst[viz])",
    )
    p.add_argument("--no-overwrite", action="store_true", help="skip images whose output already exists")
    add_device(p)
    add_progress(p)
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.inference import plan_outputs, translate_files
    from semst.translators import Translator

    plan_outputs(args.inputs, args.output, args.ext)  # fail on bad inputs before loading the model
    translator = Translator.from_checkpoint(args.checkpoint, device=args.device)
    if args.fusion_panels and translator.kind != "multi-scale":
        raise ValueError(
            f"--fusion-panels: {translator.checkpoint_path} is a single-scale model (one generator)"
        )
    tiling = tiling_from_args(translator, args)
    report = translate_files(
        translator,
        args.inputs,
        args.output,
        tiling=tiling,
        ext=args.ext,
        overwrite=not args.no_overwrite,
        progress=not args.no_progress,
        fusion_dir=args.fusion_panels,
    )
    print(
        f"translated {len(report.written)} image(s) into {args.output}"
        + (f", skipped {len(report.skipped)} existing" if report.skipped else "")
        + (f", {len(report.failed)} failed" if report.failed else "")
    )
    for src, reason in report.failed:
        print(f"  failed: {src}: {reason}", file=sys.stderr)
    return 0 if report.ok else 1
