"""``semst info``: what a checkpoint holds (without loading its weights or running anything in it)."""

from __future__ import annotations

import argparse
import json

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_verbosity

HELP = "describe a checkpoint: step, preset, architecture and the full config"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help=HELP, description=HELP, formatter_class=HelpFormatter)
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT_OR_RUN_DIR", help="a .safetensors checkpoint or a run directory"
    )
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst import checkpoint as ckpt

    path = ckpt.resolve_checkpoint(args.checkpoint)
    meta = ckpt.read_metadata(path)
    if args.json:
        print(json.dumps({k: v for k, v in meta.items() if k not in ("rng", "optimizers")}, indent=2))
        return 0
    config = meta.get("config", {})
    gen = config.get("generator", {})
    loss = config.get("loss", {})
    print(f"checkpoint  {path}")
    print(
        f"kind        {meta.get('kind')}  (semst {meta.get('semst_version')}, torch {meta.get('torch_version')})"
    )
    print(f"step        {meta.get('step')}  epoch {meta.get('epoch')}  created {meta.get('created')}")
    print(f"preset      {config.get('preset')}")
    if meta.get("kind") == "imported":
        source = meta.get("source", {})
        print(
            f"imported    from {source.get('path', source) if isinstance(source, dict) else source} "
            "(a CUT/CycleGAN generator: only the generator settings below describe it)"
        )
    print(
        f"generator   {gen.get('architecture')} {gen.get('num_blocks')} blocks, {gen.get('base_channels')} channels, "
        f"{gen.get('downsample')}/{gen.get('upsample')} resampling, norm {gen.get('norm')}"
    )
    ms = config.get("multiscale", {})
    if ms.get("enabled"):
        print(
            f"multi-scale global {ms.get('global_size')} px crops of {ms.get('global_size', 0) * ms.get('scale', 0)} "
            f"px regions (scale {ms.get('scale')}), local {ms.get('local_size')} px at full resolution; "
            f"G_g + G_l + scale attention"
        )
    else:
        print("multi-scale off (one generator)")
    if meta.get("kind") != "imported":  # imported generators have no semst losses or data
        print(
            f"losses      {loss.get('adversarial')} x{loss.get('adversarial_weight')}, {loss.get('contrastive')} "
            f"x{loss.get('contrastive_weight')}, TS x{loss.get('ts_weight')}"
        )
        print(f"data        {config.get('data', {}).get('source')} -> {config.get('data', {}).get('target')}")
    return 0
