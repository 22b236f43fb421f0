"""The discriminator's work in one training step: one call per image batch against one call for all of them.

    python benchmarks/discriminator_batching.py --threads 2
    python benchmarks/discriminator_batching.py --threads 2 --size 128 --base-channels 32

A step's discriminator judges the real target crops and each translation (single-scale: real + fake in the
D update, fake in the G update; multi-scale: real + fused + G_l's own output, then fused + local), one call
per image batch (`semst.training.step.train_step`, as CUT's code). Concatenating them into one call gives the
same logits (the PatchGAN normalises each image on its own). This times the D update's and the G update's
discriminator forward + backward both ways, alternating, on CUT's 70x70 PatchGAN at CUT's sizes, and prints
the medians. Results go to docs/benchmarks.md (on the CPU: no gain in the whole step, so the step keeps one
call per batch).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from semst.networks import PatchDiscriminator


def judge(discriminator, images):
    """The logits of each image batch from one call on their concatenation (all of one shape here)."""
    joined = discriminator(torch.cat(images))  # (sum of B_i, 1, h, w)
    return joined.split([image.shape[0] for image in images])


def d_update(discriminator, images, joined: bool) -> None:
    """Forward + backward of the D update: weight gradients, no input gradients."""
    logits = judge(discriminator, images) if joined else [discriminator(image) for image in images]
    sum(logit.square().mean() for logit in logits).backward()


def g_update(discriminator, images, joined: bool) -> None:
    """Forward + backward of the G update: input gradients through a frozen discriminator."""
    logits = judge(discriminator, images) if joined else [discriminator(image) for image in images]
    torch.autograd.grad(sum(logit.square().mean() for logit in logits), images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels (CUT: 256)")
    parser.add_argument("--base-channels", type=int, default=64, help="ndf (CUT: 64)")
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per way")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(base_channels=args.base_channels)
    shape = (1, 3, args.size, args.size)
    print(
        f"{torch.get_num_threads()} threads, {args.size} px, ndf {args.base_channels}; ms per pass (median)"
    )
    for name, count in (("single-scale", 2), ("multi-scale", 3)):
        reals = [torch.randn(shape) for _ in range(count)]
        fakes = [torch.randn(shape, requires_grad=True) for _ in range(count - 1)]
        with torch.no_grad():  # the same logits both ways, or the timing compares different work
            for a, b in zip(judge(discriminator, reals), [discriminator(real) for real in reals]):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        times: dict[tuple[str, bool], list[float]] = {}
        for repeat in range(args.repeats + 2):
            for joined in (False, True):
                for part, run in (("D update", d_update), ("G update", g_update)):
                    discriminator.requires_grad_(part == "D update")
                    start = time.perf_counter()
                    run(discriminator, reals if part == "D update" else fakes, joined)
                    if repeat >= 2:  # two warm-up passes
                        times.setdefault((part, joined), []).append(time.perf_counter() - start)
                    discriminator.zero_grad(set_to_none=True)
        for part in ("D update", "G update"):
            separate = statistics.median(times[(part, False)]) * 1e3
            joined = statistics.median(times[(part, True)]) * 1e3
            print(
                f"{name:12s} {part} ({count if part == 'D update' else count - 1} batches): "
                f"separate {separate:8.1f}  joined {joined:8.1f}  ({joined / separate:.3f}x)"
            )


if __name__ == "__main__":
    main()
