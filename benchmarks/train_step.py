"""Time one training step of ``cut``, single-scale ``semst`` and multi-scale ``semst-ms`` at one crop size.

    python benchmarks/train_step.py                       # 256 px, CUT's full-size networks, batch 1
    python benchmarks/train_step.py --size 128 --base-channels 32 --steps 10
    python benchmarks/train_step.py --presets cut,semst,semst-ms --device cuda --precision bf16

``cut`` and ``semst`` run the same networks and data and differ only in the losses (PatchNCE vs hDCE +
TS), so their ratio is the cost of SemST's losses. ``semst-ms`` is the multi-scale model (paper 3.3) with
global and local crops of ``--size`` (the global one covering a region twice as large): two generators,
the attention head and the fusion. Steps alternate between the presets (ABAB...) so that
machine-load drift affects both alike; the median of the timed steps is reported. Results and the
commands that produced them are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from semst.config import load_config
from semst.data.batch import Batch, DomainCrops
from semst.runtime import tune_cpu_allocator
from semst.training.networks import TrainingNetworks, make_optimizers, make_scalers
from semst.training.step import train_step

VARIANTS = {"cut": ("cut", False), "semst": ("semst", False), "semst-ms": ("semst", True)}


def build(variant: str, args: argparse.Namespace, device: torch.device):
    preset, multiscale = VARIANTS[variant]
    config = load_config(
        preset,
        overrides={
            "generator.base_channels": args.base_channels,
            "discriminator.base_channels": args.base_channels,
            "data.crop_size": args.size,
            "multiscale.enabled": multiscale,
            "multiscale.global_size": args.size,
            "multiscale.local_size": args.size,
            "multiscale.scale": 2,
            "train.precision": args.precision,
        },
    )
    torch.manual_seed(0)
    networks = TrainingNetworks.from_config(config).to(device)
    optimizers = make_optimizers(networks, config.train)
    return config, networks, optimizers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels")
    parser.add_argument(
        "--base-channels", type=int, default=64, help="generator/discriminator width (CUT: 64)"
    )
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per preset")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--presets", default="cut,semst", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default mmap threshold")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, profile one more step per preset (torch.profiler) and print its N costliest "
        "operators by self CPU time",
    )
    args = parser.parse_args()
    if not args.no_malloc_tuning and args.device == "cpu":
        tune_cpu_allocator()  # as semst train does on the CPU
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = args.presets.split(",")
    runs = {p: build(p, args, device) for p in presets}
    scalers = {p: make_scalers(args.precision, device) for p in presets}
    gen = torch.Generator().manual_seed(0)

    def crops() -> DomainCrops:
        def image():
            return (torch.rand(args.batch_size, 3, args.size, args.size, generator=gen) * 2 - 1).to(device)

        quarter = args.size // 4  # the local crop in the middle of the global region: box in global pixels
        box = torch.tensor([[quarter, quarter, args.size // 2, args.size // 2]] * args.batch_size)
        return DomainCrops(crop=image(), global_crop=image(), box=box)

    batch = Batch(crops(), crops())

    def step(preset: str, index: int) -> None:
        config, networks, optimizers = runs[preset]
        train_step(
            networks,
            optimizers,
            batch,
            loss_cfg=config.loss,
            projection_cfg=config.projection,
            seed=config.train.seed,
            step=index,
            precision=config.train.precision,
            scalers=scalers[preset],
        )

    times: dict[str, list[float]] = {p: [] for p in presets}
    for i in range(args.warmup + args.steps):
        for preset in presets:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(preset, i)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[preset].append(time.perf_counter() - start)
    print(
        f"device {device} ({torch.get_num_threads()} threads), {args.size}px, base_channels {args.base_channels}, "
        f"batch {args.batch_size}, {args.precision}, {args.steps} timed steps per preset (median, min)"
    )
    medians = {}
    for preset in presets:
        medians[preset] = statistics.median(times[preset])
        print(f"  {preset:8s} {medians[preset]:.4f} s/step  (min {min(times[preset]):.4f})")
    if "cut" in medians and "semst" in medians:
        print(f"  semst / cut = {medians['semst'] / medians['cut']:.3f}")
    if "semst" in medians and "semst-ms" in medians:
        print(f"  semst-ms / semst = {medians['semst-ms'] / medians['semst']:.3f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        for preset in presets:
            with profile(activities=activities) as prof:
                step(preset, args.warmup + args.steps)
            print(f"\n{preset}, {args.precision}: the {args.profile} costliest operators (self CPU time)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))


if __name__ == "__main__":
    main()
