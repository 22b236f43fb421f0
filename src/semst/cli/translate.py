"""``semst translate``: translate image files and folders with a checkpoint, at their full size."""

from __future__ import annotations

import argparse
import sys

from semst.cli.formatting import HelpFormatter
from semst.cli.options import (
    add_device,
    add_progress,
    add_tiling,
    add_verbosity,
    add_weights,
    tiling_from_args,
)

HELP = "translate images (files or folders, any size) with a trained checkpoint"
# semst.translators.single_scale.AUTO_TILE_PIXELS is AUTO_TILE_SIDE**2 (not imported: --help needs no torch).
AUTO_TILE_SIDE = 2048


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "translate",
        help=HELP,
        description=HELP
        + ". Outputs keep the inputs' sizes and relative names. Unreadable images and images "
        "above --max-pixels are reported and skipped; the exit status is 1 if any image failed. Nothing is "
        "written over an input: an output folder that holds an input image or the checkpoint is refused. "
        f"Single-scale models translate images of more than {AUTO_TILE_SIDE}x{AUTO_TILE_SIDE} pixels in "
        "1024 px tiles automatically (see --tile). Under torchrun (torchrun --nproc_per_node N [--nnodes M ...] "
        "-m semst translate ...) the files are shared out among the processes, one GPU each, and process 0 "
        "prints the summary; run it again with --no-overwrite to finish a stopped run.",
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
    p.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="skip (and report) images of more than N pixels (default: Pillow's decompression-bomb limit, "
        "PIL.Image.MAX_IMAGE_PIXELS, 89478485 unless changed)",
    )
    add_weights(p)
    add_device(p)
    add_progress(p)
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst import checkpoint as ckpt
    from semst.inference import panel_paths, plan_outputs, translate_files
    from semst.overlap import refuse_overlap
    from semst.runtime import SHARD_TIMEOUT, init_distributed, shutdown_distributed
    from semst.translators import Translator

    if args.max_pixels is not None and args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be a positive number of pixels, got {args.max_pixels}")
    # Fail on bad inputs and outputs that would replace an input before loading the model.
    pairs = plan_outputs(args.inputs, args.output, args.ext)
    checkpoint = ckpt.resolve_checkpoint(args.checkpoint)
    refuse_overlap([checkpoint], folders=[args.output, args.fusion_panels])
    if args.fusion_panels:
        panel_paths(pairs, args.output, args.fusion_panels)
    translator = Translator.from_checkpoint(checkpoint, device=args.device, weights=args.weights)
    if args.fusion_panels and translator.kind != "multi-scale":
        raise ValueError(
            f"--fusion-panels: {translator.checkpoint_path} is a single-scale model (one generator)"
        )
    tiling = tiling_from_args(translator, args)
    shards = init_distributed(translator.device, timeout=SHARD_TIMEOUT)  # one process unless under torchrun
    try:
        report = translate_files(
            translator,
            args.inputs,
            args.output,
            tiling=tiling,
            ext=args.ext,
            overwrite=not args.no_overwrite,
            progress=not args.no_progress,
            fusion_dir=args.fusion_panels,
            max_pixels=args.max_pixels,
            shards=shards,
        )
    finally:
        shutdown_distributed()
    if not shards.is_main:  # process 0 reports for the whole job
        return 0 if report.ok else 1
    print(
        f"translated {len(report.written)} image(s) into {args.output}"
        + (f" by {shards.world_size} processes" if shards.enabled else "")
        + (f", skipped {len(report.skipped)} existing" if report.skipped else "")
        + (f", {len(report.failed)} failed" if report.failed else "")
    )
    for src, reason in report.failed:
        print(f"  failed: {src}: {reason}", file=sys.stderr)
    return 0 if report.ok else 1
