"""``semst export``: write a checkpoint's translator as an ONNX or TorchScript file for deployment."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_verbosity, add_weights

HELP = "export a trained translator as ONNX or TorchScript (RGB [0, 1] in and out, any size)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help=HELP,
        description=HELP + ". The exported network takes float32 (B, 3, H, W) RGB in [0, 1] of any size and "
        "returns the translation at the same size, in [0, 1]; it pads to the generator's size multiple (4) "
        "internally. It translates the whole image in one pass (no tiling), so its memory grows with the "
        "image size, unlike `semst translate`, which tiles. semst's version and the config are stored in the "
        "file (ONNX metadata_props, or the TorchScript extra file semst_translator.json).",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT_OR_RUN_DIR",
        help="a .safetensors checkpoint, or a run directory (its latest checkpoint is used)",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=("onnx", "torchscript"),
        help="onnx (needs the optional package onnx: pip install 'semst[onnx]') or torchscript",
    )
    p.add_argument("--out", metavar="FILE", required=True, help="file to write (e.g. model.onnx, model.pt)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument(
        "--example-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=(256, 256),
        help="size of the example input traced with; the exported model accepts any size (default: 256 256)",
    )
    add_weights(p)
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst import checkpoint as ckpt
    from semst.export import export_checkpoint
    from semst.overlap import refuse_overlap

    refuse_overlap([ckpt.resolve_checkpoint(args.checkpoint)], files=[args.out])
    path = export_checkpoint(
        args.checkpoint,
        args.out,
        format=args.format,
        opset=args.opset,
        example_size=tuple(args.example_size),
        weights=args.weights,
    )
    print(
        f"wrote {path} ({args.format}; translates whole images without tiling: memory grows with their size)"
    )
    return 0
