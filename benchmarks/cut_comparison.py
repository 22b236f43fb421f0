"""Time CUT's own training step against semst's presets, in one process, steps alternating, same random batches.

CUT's code is not part of semst and nothing of it is copied here: fetch it yourself, then pass its folder.

    git clone https://github.com/taesungp/contrastive-unpaired-translation /tmp/cut
    python benchmarks/cut_comparison.py /tmp/cut                      # CPU, CUT's settings, fp32
    python benchmarks/cut_comparison.py /tmp/cut --precision bf16     # semst under bf16 autocast, CUT as shipped
    python benchmarks/cut_comparison.py /tmp/cut --device cuda --precision bf16 --channels-last --compile
    SEMST_CUT_CHECKOUT=/tmp/cut python benchmarks/cut_comparison.py   # the folder may come from the environment
    python benchmarks/cut_comparison.py /tmp/cut --flops              # count each step's FLOPs instead of timing

Run it from the semst repository with semst importable (installed, or ``PYTHONPATH=src``), on an otherwise
idle machine: any other process on the cores distorts every figure.

What is timed, per step and variant (steps go ABCD ABCD ..., so drift in the machine's load hits all alike; the
median over the timed steps is reported, with ratios to CUT's code):

* ``cut-code``: CUT's ``CUTModel.optimize_parameters()`` (``--CUT_mode CUT``), built by CUT's own options
  (``options.train_options.TrainOptions``) and ``models.create_model``, then
  ``data_dependent_initialize`` as CUT's train.py does: ResNet-9 generator with ``--ngf``, 70x70 PatchGAN with
  ``--ndf``, PatchNCE on layers 0,4,8,12,16 with 256 patches and the identity term, LSGAN, Adam; crops of
  ``--size`` (CUT: ``--crop_size 256``), ``--batch-size`` (CUT: 1). CUT runs as shipped: fp32, eager,
  contiguous tensors; ``--cut-too`` applies ``--precision`` (autocast around its step), ``--channels-last``
  and ``--compile`` to it as well.
* ``cut``: semst's ``cut`` preset at the same settings (`semst.training.step.train_step` on
  `semst.training.networks.TrainingNetworks`, as benchmarks/train_step.py times it).
* ``semst``: semst's ``semst`` preset, single-scale (hDCE + TS losses).
* ``semst-ms``: the ``semst`` preset multi-scale: global crops of ``--size`` (covering a region twice as large)
  and local crops of ``--size``.

Every variant gets the same batch at a step: random images in [-1, 1] (``real_A``/``real_B`` for CUT, the
source and target crops for semst; the multi-scale global crops are drawn once more). On the CPU, glibc's
malloc thresholds are raised first as ``semst train`` does (`semst.runtime.tune_cpu_allocator`); in one
process this applies to CUT's step too, so the ratios compare the code (``--no-malloc-tuning`` to compare
with glibc's defaults). On CUDA, CUT switches ``cudnn.benchmark`` on for the whole process, semst included. ``--compile`` on the
CPU turns inductor's layout optimisation off (with torch 2.13 it fails in the backward pass of the replication
padding otherwise); on CUDA inductor keeps its defaults.

How CUT is imported: its folder is put first on ``sys.path`` and ``options``, ``models`` are imported from it.
CUT's options import its ``data`` and ``util`` packages, which import torchvision; torchvision is used there
only for CUT's data loading, which is not run here, so when torchvision is not installed an empty stand-in
module is registered for it. visdom, dominate and CUT's other display packages are never imported (only
CUT's train.py and util/visualizer.py use them). CUT writes its option table to a temporary
``checkpoints_dir``, which is removed afterwards.

Figures measured with this script go to docs/benchmarks.md, with the command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from semst.config import load_config
from semst.data.batch import Batch, DomainCrops
from semst.runtime import autocast, tune_cpu_allocator
from semst.training.networks import TrainingNetworks, make_optimizers, make_scalers
from semst.training.step import train_step

SEMST_VARIANTS = {"cut": ("cut", False), "semst": ("semst", False), "semst-ms": ("semst", True)}
VARIANTS = ("cut-code", *SEMST_VARIANTS)


# --- CUT ------------------------------------------------------------------------------------------------


def _stand_in_for_torchvision() -> bool:
    """Registers empty ``torchvision`` and ``torchvision.transforms`` modules if torchvision is missing (CUT's
    data and util packages import it at the top; this script never calls into it). Returns whether it did."""
    if importlib.util.find_spec("torchvision") is not None:
        return False
    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    torchvision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.transforms"] = transforms
    return True


def import_cut(checkout: Path):
    """CUT's ``TrainOptions`` and ``create_model`` from a checkout of taesungp/contrastive-unpaired-translation."""
    for part in ("models/cut_model.py", "options/train_options.py"):
        if not (checkout / part).is_file():
            raise SystemExit(
                f"{checkout} is not a checkout of CUT (no {part}); get it with: git clone "
                "https://github.com/taesungp/contrastive-unpaired-translation"
            )
    _stand_in_for_torchvision()
    sys.path.insert(0, str(checkout))
    from models import create_model  # noqa: PLC0415 - CUT's package, importable only now
    from options.train_options import TrainOptions  # noqa: PLC0415

    return TrainOptions, create_model


def build_cut(checkout: Path, args: argparse.Namespace, device: torch.device, first: dict, workdir: Path):
    """CUT's model in CUT mode from its own options, initialised on ``first`` (its data-dependent init)."""
    train_options, create_model = import_cut(checkout)
    gpu = str(device.index or 0) if device.type == "cuda" else "-1"
    command_line = (
        f"--dataroot {workdir} --name cut_comparison --checkpoints_dir {workdir} --model cut --CUT_mode CUT "
        f"--gpu_ids {gpu} --crop_size {args.size} --load_size {args.size} --ngf {args.base_channels} "
        f"--ndf {args.base_channels} --batch_size {args.batch_size} --num_patches {args.num_patches} "
        "--num_threads 0 --display_id 0"
    )
    # CUT's CUTModel.modify_commandline_options parses sys.argv itself (parse_known_args()), so it sees CUT's
    # command line, not this script's; CUT prints its option table and network sizes.
    argv = sys.argv
    sys.argv = [argv[0], *command_line.split()]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = train_options(cmd_line=command_line).parse()
    finally:
        sys.argv = argv
    with contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(0)
        np.random.seed(0)  # CUT draws its patch locations from numpy's global generator
        model = create_model(opt)
        model.data_dependent_initialize(first)  # builds netF and its optimizer, as CUT's train.py does
    if args.channels_last and args.cut_too:
        for net in (model.netG, model.netD, model.netF):
            net.to(memory_format=torch.channels_last)
    if args.compile and args.cut_too:
        model.netG = torch.compile(model.netG)
        model.netD = torch.compile(model.netD)
    precision = args.precision if args.cut_too else "fp32"

    def step(data: dict, index: int) -> None:
        model.set_input(data)
        with autocast(device, precision):
            model.optimize_parameters()

    return step


# --- semst ----------------------------------------------------------------------------------------------


def compile_networks(networks: TrainingNetworks) -> None:
    """``torch.compile`` on every network of a step: each generator's one encoder-decoder pass (``_run``, which
    ``forward``, ``forward_with_taps`` and ``encode`` share), the attention head, D and the projection heads."""
    for generator in networks.translator.branches().values():
        generator._run = torch.compile(generator._run)
    attention = getattr(networks.translator, "attention", None)
    if attention is not None:
        attention.compile()
    networks.discriminator.compile()
    for projector in networks.projectors.values():
        projector.compile()


def build_semst(variant: str, args: argparse.Namespace, device: torch.device):
    preset, multiscale = SEMST_VARIANTS[variant]
    config = load_config(
        preset,
        overrides={
            "generator.base_channels": args.base_channels,
            "discriminator.base_channels": args.base_channels,
            "data.crop_size": args.size,
            "projection.num_patches": args.num_patches,
            "multiscale.enabled": multiscale,
            "multiscale.global_size": args.size,
            "multiscale.local_size": args.size,
            "multiscale.scale": 2,
            "train.batch_size": args.batch_size,
            "train.precision": args.precision,
        },
    )
    torch.manual_seed(0)
    networks = TrainingNetworks.from_config(config).to(device)
    if args.channels_last:
        networks.to(memory_format=torch.channels_last)
    if args.compile:
        compile_networks(networks)
    optimizers = make_optimizers(networks, config.train)
    scalers = make_scalers(args.precision, device)

    def step(batch: Batch, index: int) -> None:
        train_step(
            networks,
            optimizers,
            batch,
            loss_cfg=config.loss,
            projection_cfg=config.projection,
            seed=config.train.seed,
            step=index,
            precision=config.train.precision,
            scalers=scalers,
        )

    return step


# --- the same random batches for everyone ---------------------------------------------------------------


def make_batches(count: int, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """``count`` steps' inputs: CUT's data dict and semst's Batch over the same source and target images."""
    generator = torch.Generator().manual_seed(0)
    memory = torch.channels_last if args.channels_last else torch.contiguous_format

    def images() -> torch.Tensor:
        x = torch.rand(args.batch_size, 3, args.size, args.size, generator=generator) * 2 - 1  # (B, 3, S, S)
        return x.to(device).contiguous(memory_format=memory)

    quarter = args.size // 4  # the local crop in the middle of the global region, in global pixels
    box = torch.tensor([[quarter, quarter, args.size // 2, args.size // 2]] * args.batch_size)
    batches = []
    for i in range(count):
        source, target = images(), images()
        source_global, target_global = images(), images()
        cut_memory = memory if args.cut_too else torch.contiguous_format
        batches.append(
            {
                "cut": {
                    "A": source.contiguous(memory_format=cut_memory),
                    "B": target.contiguous(memory_format=cut_memory),
                    "A_paths": [f"source_{i}.png"] * args.batch_size,
                    "B_paths": [f"target_{i}.png"] * args.batch_size,
                },
                "semst": Batch(
                    DomainCrops(crop=source, global_crop=source_global, box=box),
                    DomainCrops(crop=target, global_crop=target_global, box=box),
                ),
            }
        )
    return batches


def count_flops(step: Callable[[int], None], index: int) -> tuple[int, dict[str, int]]:
    """The FLOPs of one call of ``step`` (forward and backward convolutions and matrix products, as torch's
    ``FlopCounterMode`` counts them: 2 per multiply-add) and their split by operator."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415 - only for --flops

    with FlopCounterMode(display=False) as counter:
        step(index)
    by_operator = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_operator


def report_flops(steps: dict[str, Callable[[int], None]], args: argparse.Namespace) -> None:
    """Prints each variant's GFLOP per step (the second step, after one untimed warm-up step each), its ratio
    to CUT's code and the operators that do the work; writes them to ``--json`` if given."""
    for step in steps.values():
        step(0)  # the same first step the timing runs untimed
    counts = {variant: count_flops(step, 1) for variant, step in steps.items()}
    print(
        f"GFLOP per training step ({args.size} px, base channels {args.base_channels}, batch {args.batch_size}; "
        "torch's FLOP counter, forward and backward)"
    )
    for variant, (total, by_operator) in counts.items():
        ratio = f"  {total / counts['cut-code'][0]:.3f}x CUT's code" if "cut-code" in counts else ""
        split = ", ".join(
            f"{op.removeprefix('aten.')} {n / 1e9:.1f}"
            for op, n in sorted(by_operator.items(), key=lambda item: -item[1])
        )
        print(f"  {variant:9s} {total / 1e9:9.1f} GFLOP{ratio}   ({split})")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "settings": vars(args),
                    "gflop": {v: c[0] / 1e9 for v, c in counts.items()},
                    "gflop_by_operator": {
                        v: {op: n / 1e9 for op, n in c[1].items()} for v, c in counts.items()
                    },
                },
                indent=2,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for what runs."
    )
    parser.add_argument(
        "cut_checkout",
        nargs="?",
        default=os.environ.get("SEMST_CUT_CHECKOUT"),
        help="a checkout of taesungp/contrastive-unpaired-translation (default: $SEMST_CUT_CHECKOUT)",
    )
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels (CUT: 256)")
    parser.add_argument("--base-channels", type=int, default=64, help="ngf = ndf (CUT: 64)")
    parser.add_argument("--batch-size", type=int, default=1, help="(CUT: 1)")
    parser.add_argument("--num-patches", type=int, default=256, help="patches per tap (CUT: 256)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="semst's autocast"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="semst's networks and inputs channels_last"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile semst's networks")
    parser.add_argument(
        "--cut-too",
        action="store_true",
        help="apply --precision, --channels-last and --compile to CUT's step too",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--no-malloc-tuning", action="store_true", help="keep glibc's default malloc thresholds"
    )
    parser.add_argument(
        "--flops",
        action="store_true",
        help="count the floating-point operations of one step per variant (torch's FLOP counter) instead of "
        "timing: the compute floor of each step, independent of the machine's load",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the settings and every step time here")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if "cut-code" in variants and not args.cut_checkout:
        parser.error("give the CUT checkout (or set SEMST_CUT_CHECKOUT), or leave cut-code out of --variants")
    if args.cut_too and args.precision == "fp16":
        parser.error("--cut-too with fp16: CUT's step has no gradient scaler; use bf16")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu" and not args.no_malloc_tuning:
        tune_cpu_allocator()
    if args.compile and device.type == "cpu":
        # With torch 2.13 on the CPU, inductor's layout optimisation (channels-last convolutions inside the
        # compiled graph) fails in the backward of the generators' replication padding (a stride assertion in
        # replication_pad2d_backward); without it the compiled step runs.
        from torch._inductor import config as inductor_config

        inductor_config.layout_optimization = False
    batches = make_batches(args.warmup + args.steps, args, device)
    steps: dict[str, Callable[[int], None]] = {}
    with tempfile.TemporaryDirectory(prefix="cut_comparison_") as workdir:
        for variant in variants:
            if variant == "cut-code":
                cut_step = build_cut(Path(args.cut_checkout), args, device, batches[0]["cut"], Path(workdir))
                steps[variant] = lambda i, step=cut_step: step(batches[i]["cut"], i)
            else:
                semst_step = build_semst(variant, args, device)
                steps[variant] = lambda i, step=semst_step: step(batches[i]["semst"], i)
        if args.flops:
            report_flops(steps, args)
            return
        times: dict[str, list[float]] = {v: [] for v in variants}
        for i in range(args.warmup + args.steps):
            for variant in variants:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                steps[variant](i)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= args.warmup:
                    times[variant].append(time.perf_counter() - start)
    settings = (
        f"device {device} ({torch.get_num_threads()} threads), {args.size} px, base channels "
        f"{args.base_channels}, batch {args.batch_size}, semst {args.precision}"
        f"{', channels_last' if args.channels_last else ''}{', compiled' if args.compile else ''}"
        f"{' (CUT too)' if args.cut_too else ' (CUT as shipped: fp32, eager)'}, {args.steps} timed steps "
        "per variant (median, min)"
    )
    print(settings)
    medians = {v: statistics.median(t) for v, t in times.items() if t}
    for variant, median in medians.items():
        ratio = f"  {median / medians['cut-code']:.3f}x CUT's code" if "cut-code" in medians else ""
        print(f"  {variant:9s} {median:8.4f} s/step  (min {min(times[variant]):.4f}){ratio}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"settings": vars(args), "summary": settings, "median_s": medians, "times_s": times}, indent=2
            )
        )


if __name__ == "__main__":
    main()
