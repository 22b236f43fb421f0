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


def _known(value: object) -> str:
    return "unknown" if value is None else str(value)


def _describe_segmenter(meta: dict) -> list[str]:
    architecture = meta.get("architecture")
    architecture = architecture if isinstance(architecture, dict) else {}
    lines = [
        f"segmenter   {_known(architecture.get('name'))}: {_known(meta.get('num_classes'))} classes, width "
        f"{_known(architecture.get('width'))}, depth {_known(architecture.get('depth'))}, norm "
        f"{_known(architecture.get('norm'))}",
        f"trained on  {_known(meta.get('train_pairs'))} labelled images",
    ]
    val = meta.get("val")
    if isinstance(val, dict) and isinstance(val.get("pixel_accuracy"), float):
        lines.append(
            f"held-out    {_known(val.get('pairs'))} images: pixel accuracy {100 * val['pixel_accuracy']:.2f}%, "
            f"mean IoU {100 * float(val.get('mean_iou') or 0):.2f}%"
        )
    return lines


def _describe_translator(meta: dict, path) -> list[str]:
    from semst.translators.base import checkpoint_config

    config = checkpoint_config(meta, path)  # validated: a clear error naming the file, never None fields
    gen, loss, ms = config.generator, config.loss, config.multiscale
    lines = [
        f"step        {_known(meta.get('step'))}  epoch {_known(meta.get('epoch'))}  created "
        f"{_known(meta.get('created'))}",
        f"preset      {config.preset}",
    ]
    if meta.get("kind") == "imported":
        source = meta.get("source", {})
        lines.append(
            f"imported    from {source.get('path', source) if isinstance(source, dict) else source} "
            "(a CUT/CycleGAN generator: only the generator settings below describe it)"
        )
    lines.append(
        f"generator   {gen.architecture} {gen.num_blocks} blocks, {gen.base_channels} channels, "
        f"{gen.downsample}/{gen.upsample} resampling, norm {gen.norm}"
    )
    if ms.enabled:
        lines.append(
            f"multi-scale global {ms.global_size} px crops of {ms.global_size * ms.scale} px regions (scale "
            f"{ms.scale}), local {ms.local_size} px at full resolution; G_g + G_l + scale attention"
        )
    else:
        lines.append("multi-scale off (one generator)")
    if meta.get("kind") != "imported":  # imported generators have no semst losses or data
        lines.append(
            f"losses      {loss.adversarial} x{loss.adversarial_weight}, {loss.contrastive} "
            f"x{loss.contrastive_weight}, TS x{loss.ts_weight}"
        )
        lines.append(f"data        {config.data.source} -> {config.data.target}")
        if config.train.ema_std > 0:
            lines.append(
                f"weights     the run's average (relative std {config.train.ema_std:g}) translates by default; "
                "--weights last for the last step's"
            )
    return lines


def run(args: argparse.Namespace) -> int:
    from semst import checkpoint as ckpt

    path = ckpt.resolve_checkpoint(args.checkpoint)
    meta = ckpt.read_metadata(path)
    if args.json:
        print(json.dumps({k: v for k, v in meta.items() if k not in ("rng", "optimizers")}, indent=2))
        return 0
    kind = meta.get("kind")
    body = _describe_segmenter(meta) if kind == "segmenter" else _describe_translator(meta, path)
    print(f"checkpoint  {path}")
    print(
        f"kind        {_known(kind)}  (semst {_known(meta.get('semst_version'))}, torch "
        f"{_known(meta.get('torch_version'))})"
    )
    print("\n".join(body))
    return 0
