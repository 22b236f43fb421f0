"""``semst translate``: translate image files and folders with a checkpoint, at their full size."""

from __future__ import annotations

import argparse
import sys

from semst.cli.formatting import HelpFormatter

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
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--ext",
        metavar="EXT",
        default=None,
        help="write every output with this extension/format, e.g. png (default: keep the input's)",
    )
    add_tiling_options(p)
    p.add_argument(
        "--fusion-panels",
        metavar="DIR",
        help="multi-scale models: also write, per image, a picture of the global output, the local output, "
        "the scale attention M_s as a heat map and the fused result (needs matplotlib: semst[viz])",
    )
    p.add_argument("--no-overwrite", action="store_true", help="skip images whose output already exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_tiling_options(p: argparse.ArgumentParser) -> None:
    """--tile, --tile-overlap, --tile-batch, --global-window (semst.tiling.Tiling)."""
    group = p.add_argument_group("tiling (memory-bounded translation of large images)")
    group.add_argument(
        "--tile",
        type=int,
        metavar="PX",
        help="translate in overlapping PX x PX tiles so that memory does not grow with the image size "
        "(default: multi-scale models tile their local generator in max(512, multiscale.local_size) "
        "tiles; single-scale models translate the whole image at once, as tiles change instance-norm "
        "statistics slightly)",
    )
    group.add_argument(
        "--tile-overlap",
        type=int,
        metavar="PX",
        help="pixels shared by neighbouring tiles, blended with linear ramps (default: a quarter of the "
        "tile for multi-scale models, 64 otherwise)",
    )
    group.add_argument(
        "--tile-batch",
        type=int,
        metavar="N",
        help="tiles translated at once; raise it on a GPU (default: 1 for multi-scale, 4 for single-scale)",
    )
    group.add_argument(
        "--global-window",
        type=int,
        metavar="PX",
        help="multi-scale models: the global generator sees the whole downsampled image if it fits in "
        "PX x PX, else overlapping windows of that size (default: 2 x multiscale.global_size)",
    )


TILING_FLAGS = {
    "tile": "--tile",
    "overlap": "--tile-overlap",
    "batch": "--tile-batch",
    "global_window": "--global-window",
}


def tiling_from_args(translator, args: argparse.Namespace):
    """The translator's default tiling with the options given; impossible settings are refused, naming the
    option, before any image is read."""
    if args.global_window is not None and translator.kind != "multi-scale":
        raise ValueError(
            f"--global-window: {translator.checkpoint_path} is a single-scale model (one generator)"
        )
    try:
        return translator.tiling(
            tile=args.tile, overlap=args.tile_overlap, batch=args.tile_batch, global_window=args.global_window
        )
    except ValueError as exc:
        message = str(exc)
        for field, flag in TILING_FLAGS.items():
            if message.startswith(f"tiling: {field} "):
                raise ValueError(flag + message[len(f"tiling: {field}") :]) from None
        raise


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
