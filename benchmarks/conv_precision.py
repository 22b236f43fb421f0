"""Forward + backward of one 3x3 convolution in fp32 and under bf16 autocast, NCHW and channels_last.

    python benchmarks/conv_precision.py                  # the generator's layer shapes at 256 and 128 px crops
    python benchmarks/conv_precision.py --threads 2 --repeats 20

Whether bf16 pays on a CPU depends on the CPU: with AVX512_BF16 or AMX the convolutions run on bf16
instructions; without them oneDNN converts to fp32 and back, and bf16 is slower. This prints the CPU's bf16
features (from /proc/cpuinfo) and the time of each variant per layer shape (C channels at S x S: the residual
blocks of a 64-channel generator at 256 px crops are C=256 at 64 px). Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from semst.runtime import cpu_bf16_features

SHAPES = ((32, 128), (64, 64), (128, 32), (64, 256), (128, 128), (256, 64))


def time_conv(channels: int, size: int, precision: str, channels_last: bool, repeats: int) -> float:
    """Milliseconds per forward + backward of a 3x3 convolution on a (1, C, S, S) input."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    x = torch.randn(1, channels, size, size)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = conv(x)
        y.float().sum().backward()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20, help="timed passes per variant")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    features = cpu_bf16_features()
    print(
        f"CPU bf16 features: {', '.join(features) or 'none'}; {torch.get_num_threads()} threads; ms per fwd+bwd"
    )
    print(f"{'C':>5} {'S':>4} {'fp32':>9} {'fp32 cl':>9} {'bf16':>9} {'bf16 cl':>9} {'bf16/fp32':>9}")
    for channels, size in SHAPES:
        ms = {
            (p, cl): time_conv(channels, size, p, cl, args.repeats)
            for p in ("fp32", "bf16")
            for cl in (False, True)
        }
        print(
            f"{channels:5d} {size:4d} {ms['fp32', False]:9.2f} {ms['fp32', True]:9.2f} {ms['bf16', False]:9.2f} "
            f"{ms['bf16', True]:9.2f} {ms['bf16', False] / ms['fp32', False]:9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
