"""``semst train``: train a translator on two unaligned image folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import DEVICE_HELP, add_device, add_progress, add_verbosity
from semst.config import PRESETS, ConfigError, ExperimentConfig, load_config, parse_overrides

HELP = "train a translator on unaligned source and target image folders"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help=HELP,
        description=HELP + ". Settings: preset < --config file < --set overrides < dedicated flags.",
        formatter_class=HelpFormatter,
    )
    # One group per topic, added in the order of the usage line.
    _add_data_options(p.add_argument_group("data and run folder"))
    _add_method_options(p.add_argument_group("method and crops"))
    _add_run_options(p.add_argument_group("training run"))


def _add_data_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--source",
        metavar="DIR",
        help="source-domain images (searched recursively), e.g. trainA, or NAME:PATH",
    )
    group.add_argument(
        "--target",
        metavar="DIR",
        help="target-domain images (searched recursively), e.g. trainB, or NAME:PATH",
    )
    group.add_argument(
        "--data",
        metavar="ROOT",
        help="a CUT-style data root (ROOT/trainA is the source, ROOT/trainB the target), or a data set as "
        "downloaded, NAME:PATH, as the source, e.g. --data gta5:/data/GTA5 --target cityscapes:/data/cityscapes "
        "(names: gta5, synthia, cityscapes, cityscapes_parsing, maps, folder)",
    )
    group.add_argument(
        "--out", metavar="RUN_DIR", required=True, help="run directory for config, checkpoints and logs"
    )


def _add_method_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="method preset: semst (hDCE + TS), cut or fastcut (CUT's published settings) "
        "(default: the config file's preset, else semst)",
    )
    group.add_argument(
        "--config", metavar="FILE", help="YAML file with any config sections (see docs/configuration.md)"
    )
    group.add_argument(
        "--set",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config values, e.g. --set loss.ts_weight=1 train.batch_size=4",
    )
    scale = group.add_mutually_exclusive_group()
    scale.add_argument(
        "--multiscale",
        dest="multiscale",
        action="store_true",
        default=None,
        help="global + local generators fused by scale attention (paper 3.3; multiscale.enabled=true, the "
        "semst preset's default); crops from the multiscale.* settings",
    )
    scale.add_argument(
        "--single-scale",
        dest="multiscale",
        action="store_false",
        help="one generator on data.crop_size crops (multiscale.enabled=false; the cut/fastcut presets' "
        "default, the ablation 'w/o multi-scale' of the paper's Table 3, and the paper's choice for 256 px "
        "data sets)",
    )
    group.add_argument(
        "--crop-size",
        type=int,
        metavar="PX",
        help="training crop size: single-scale crops (data.crop_size; also sets --load-size to CUT's ratio "
        "286/256 unless given) and multi-scale global and local crops (multiscale.global_size and "
        "multiscale.local_size, equal as in the paper) (default: 256 in the presets)",
    )
    group.add_argument(
        "--load-size",
        type=int,
        metavar="PX",
        help="images are resized to this before cropping (default: data.load_size, 286 in the presets)",
    )


def _add_run_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="images per step and process (default: train.batch_size, 1 in the presets)",
    )
    group.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help="stop after N optimisation steps and write a final checkpoint (default: the full schedule, "
        "train.constant_epochs + train.decay_epochs)",
    )
    add_device(
        group,
        default=None,
        metavar="DEV",
        help=f"{DEVICE_HELP} (default: train.device, auto = CUDA if available)",
    )
    group.add_argument(
        "--seed",
        type=int,
        help="random seed of initialisation, data order and patch sampling (default: train.seed, 0)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoint (only run length, data paths, device "
        "and logging settings may change)",
    )
    group.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    add_progress(group, help="no progress bar (log lines only)")
    add_verbosity(group)


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config the arguments describe (for --resume: the saved config plus the allowed changes)."""
    overrides = parse_overrides(args.set)
    from semst.data.datasets import is_dataset_spec

    if args.data is not None and is_dataset_spec(args.data):
        # A named data set as downloaded is the source domain: --data gta5:/data/GTA5 --target cityscapes:/data/cs
        if args.source:
            raise ConfigError("give the source once: --data NAME:PATH or --source, not both")
        if not args.target:
            raise ConfigError(f"--data {args.data} is the source domain; give the target with --target")
        args.source = args.data
    elif args.data is not None:
        if args.source or args.target:
            raise ConfigError("give either --data ROOT or --source/--target, not both")
        root = Path(args.data)
        missing = [name for name in ("trainA", "trainB") if not (root / name).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"--data {root}: expected the folders {root}/trainA (source) and {root}/trainB (target); "
                f"missing {', '.join(missing)}"
            )
        args.source, args.target = str(root / "trainA"), str(root / "trainB")
    flags = {
        "data.source": args.source,
        "data.target": args.target,
        "data.crop_size": args.crop_size,
        "data.load_size": args.load_size,
        "train.batch_size": args.batch_size,
        "train.max_steps": args.max_steps,
        "train.device": args.device,
        "train.seed": args.seed,
        "multiscale.enabled": args.multiscale,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if args.crop_size is not None:
        if args.load_size is None and "data.load_size" not in overrides:
            # Keep CUT's ratio of resize to crop (286 / 256) when only the crop size is given.
            overrides["data.load_size"] = round(args.crop_size * 286 / 256)
        for key in ("multiscale.global_size", "multiscale.local_size"):
            overrides.setdefault(key, args.crop_size)
    if args.resume:
        if args.preset or args.config:
            raise ConfigError("--resume continues with the run's saved config; drop --preset/--config")
        from semst.training.loop import resume_config

        return resume_config(args.out, overrides)
    return load_config(args.preset, args.config, overrides)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.dry_run:
        sys.stdout.write(config.to_yaml())
        return 0
    # Imported here so that --help and --dry-run stay fast.
    from semst.runtime import shutdown_distributed
    from semst.training.loop import train

    try:
        last = train(config, Path(args.out), resume=args.resume, progress=not args.no_progress)
    finally:
        shutdown_distributed()
    print(f"done: latest checkpoint {last}\ntranslate with: semst translate {args.out} INPUT... -o OUTDIR")
    return 0
