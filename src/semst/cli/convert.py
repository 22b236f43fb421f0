"""``semst convert``: turn a CUT or CycleGAN generator (``latest_net_G.pth``) into a semst checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_verbosity

HELP = "convert a CUT or CycleGAN generator (latest_net_G.pth) into a semst checkpoint"

_RESAMPLING = {
    "antialias": "anti-aliased (blur), CUT's default",
    "strided": "strided convolutions (CUT --no_antialias, CycleGAN)",
    "transposed": "transposed convolutions (CUT --no_antialias_up, CycleGAN)",
}
_NORMS = {
    "instance": "InstanceNorm2d, affine=False (CUT/CycleGAN default)",
    "instance_affine": "InstanceNorm2d, affine=True",
    "none": "none (convolutions had no bias; zero biases are used)",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help=HELP,
        description=HELP + ". The architecture (residual blocks, ngf, anti-aliased or strided/transposed "
        "resampling, instance norm with or without affine parameters) is read from the weights; no flags are "
        "needed. The file is read with torch.load(weights_only=True): a file holding Python objects is "
        "refused, never unpickled. The result works with `semst translate` and `semst info`.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("source", metavar="FILE.pth", help="the generator's state dict, e.g. latest_net_G.pth")
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE.safetensors",
        help="checkpoint to write (default: FILE.pth's name with the .safetensors suffix, next to it)",
    )
    p.add_argument(
        "--name",
        help="label stored in the checkpoint (default: the folder holding FILE.pth, CUT's experiment name)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="only print the inferred architecture; write nothing"
    )
    add_verbosity(p)


def describe_architecture(arch: dict) -> list[str]:
    """Human-readable lines for an architecture dict of `semst.interop.cut.infer_cut_architecture`."""
    lines = [
        f"generator   {arch['cut_netG']}: {arch['num_blocks']} residual blocks, ngf {arch['base_channels']}, "
        f"{arch['in_channels']} -> {arch['out_channels']} channels",
        f"downsample  {_RESAMPLING[arch['downsample']]}",
        f"upsample    {_RESAMPLING[arch['upsample']]}",
        f"norm        {_NORMS[arch['norm']]}",
    ]
    if arch["block_container"] != "conv_block":
        lines.append(
            f"blocks      residual-block layers named {arch['block_container']!r} (CUT: 'conv_block')"
        )
    if arch["dropout"]:
        lines.append("dropout     the residual blocks had dropout; semst applies none (as in eval mode)")
    if arch["ignored_buffers"]:
        lines.append(
            f"ignored     {arch['ignored_buffers']} InstanceNorm running-statistics tensors (unused at test "
            "time by CUT/CycleGAN: images are normalised by their own statistics)"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    from semst import checkpoint as ckpt
    from semst.interop.cut import convert_cut_checkpoint, infer_cut_architecture, load_cut_state_dict
    from semst.overlap import refuse_overlap

    source = Path(args.source)
    if args.dry_run:
        arch = infer_cut_architecture(load_cut_state_dict(source), source=source)
        print(f"source      {source}")
        print("\n".join(describe_architecture(arch)))
        return 0
    out = Path(args.out) if args.out else source.with_suffix(ckpt.SUFFIX)
    refuse_overlap([source], files=[out])
    written = convert_cut_checkpoint(source, out, name=args.name)
    meta = ckpt.read_metadata(written)
    print(f"source      {source} (sha256 {meta['source']['sha256'][:16]}...)")
    print("\n".join(describe_architecture(meta["source"]["architecture"])))
    print(f"wrote       {written} (name {meta['name']!r})")
    print(f"translate   semst translate {written} IMAGES -o OUTDIR")
    return 0
