"""Full-resolution translation: time and peak memory of multi-scale tiled translation versus one whole-image
pass of a single generator, for growing image sizes (issue 3's benchmark; results in docs/benchmarks.md).

Each measurement runs in a fresh Python process, so its peak resident memory (``ru_maxrss``) belongs to that
translation alone: loading torch and the model, decoding nothing (the input is made in memory), translating
one PIL image as ``semst translate`` does, and producing the PIL output. Weights are random (initialised as
for training): time and memory do not depend on their values.

    python benchmarks/translate_fullres.py                          # CPU, the sizes of the issue
    python benchmarks/translate_fullres.py --sizes 1024x512 --modes multiscale --device cuda
    python benchmarks/translate_fullres.py --sizes 2048x1024 --modes multiscale --device cuda --tile-batch 8 --precision bf16

``--tile-batch`` and ``--precision`` set the translation's tile batch (local tiles and global windows) and the
autocast precision of its passes (`semst.tiling.Tiling`), as ``semst translate --tile-batch N --precision P``
does; by default each mode keeps the translator's defaults (fp32; multi-scale: one tile at a time).
``--flops`` also counts the networks' floating-point operations of one translation (torch's FLOP counter) and
times a 2048x2048 matmul in the same precision on the same device: their ratio is the compute floor, the
time the translation would take if every operation ran at matmul speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from PIL import Image
from semst.config import load_config
from semst.tiling import Tiling
from semst.translators import Translator

width, height, mode, device, threads, repeats, limit_gb, tile_batch, precision, count_flops = sys.argv[1:11]
width, height, repeats, tile_batch = int(width), int(height), int(repeats), int(tile_batch)
if float(limit_gb) > 0 and device == "cpu":  # an address-space cap turns an oversized allocation into a clean error, not the OOM killer
    cap = int(float(limit_gb) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
if int(threads):
    torch.set_num_threads(int(threads))
torch.manual_seed(0)
config = load_config("semst", overrides={"multiscale.enabled": mode == "multiscale"})
model = Translator.from_config(config).to(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")).eval()
rng = np.random.default_rng(0)
small = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
tiling = model.tiling(tile=256 if mode == "single-tiled" else None, batch=tile_batch or None, precision=precision)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times = []
for _ in range(repeats):
    if model.device.type == "cuda":
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = model.translate(image, tiling)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
assert out.size == image.size
result = {
    "size": f"{width}x{height}", "mode": mode, "device": str(model.device), "seconds": min(times),
    "tile_batch": tiling.batch, "precision": tiling.precision,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": base,
}
if model.device.type == "cuda":
    result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
if count_flops == "1":  # after the timing: one more translation, its network FLOPs counted, and the matmul rate
    from torch.utils.flop_counter import FlopCounterMode
    from semst.runtime import autocast
    with FlopCounterMode(display=False) as counter:
        model.translate(image, tiling)
    result["gflop"] = counter.get_total_flops() / 1e9
    n = 2048
    a, b = torch.randn(n, n, device=model.device), torch.randn(n, n, device=model.device)
    with torch.no_grad(), autocast(model.device, precision):
        for _ in range(2):
            a @ b
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        if model.device.type == "cuda":
            torch.cuda.synchronize()
    result["matmul_gflops"] = 5 * 2 * n**3 / (time.perf_counter() - start) / 1e9
    result["floor_seconds"] = result["gflop"] / result["matmul_gflops"]
print("RESULT " + json.dumps(result))
"""

MODES = ("multiscale", "single-whole", "single-tiled")


def measure(
    width: int,
    height: int,
    mode: str,
    device: str,
    threads: int,
    repeats: int,
    timeout: int,
    limit_gb: float,
    tile_batch: int = 0,
    precision: str = "fp32",
    count_flops: bool = False,
) -> dict:
    args = [
        str(width),
        str(height),
        mode,
        device,
        str(threads),
        str(repeats),
        str(limit_gb),
        str(tile_batch),
        precision,
        "1" if count_flops else "0",
    ]
    command = [sys.executable, "-c", CHILD, *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"size": f"{width}x{height}", "mode": mode, "error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    text = tail[0].lower()
    killed = proc.returncode < 0 or "memory" in text or "allocate" in text
    return {"size": f"{width}x{height}", "mode": mode, "error": ("killed/OOM: " if killed else "") + tail[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1024x512,2048x1024,4096x2048", help="WxH list")
    parser.add_argument("--modes", default=",".join(MODES[:2]), help=f"subset of {','.join(MODES)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=1, help="translations per process; the fastest counts")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per measurement")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=16.0,
        help="address-space cap per measurement (CPU), so a pass that does not fit fails cleanly (0: none)",
    )
    parser.add_argument(
        "--tile-batch", type=int, default=0, help="tiles translated at once (0: the translator's default)"
    )
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast of the passes"
    )
    parser.add_argument(
        "--flops",
        action="store_true",
        help="also count the networks' FLOPs of one translation and time a 2048^2 matmul in the same precision: "
        "the compute floor is FLOPs over that rate",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()
    results = []
    print(
        f"{'size':>10} {'mode':>13} {'megapixels':>10} {'seconds':>8} {'peak RSS MB':>11} {'peak CUDA MB':>12}"
    )
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        for mode in args.modes.split(","):
            r = measure(
                width,
                height,
                mode,
                args.device,
                args.threads,
                args.repeats,
                args.timeout,
                args.memory_limit_gb,
                args.tile_batch,
                args.precision,
                args.flops,
            )
            results.append(r)
            if "error" in r:
                print(f"{size:>10} {mode:>13} {width * height / 1e6:10.2f}  {r['error']}")
            else:
                cuda = f"{r['peak_cuda_mb']:12.0f}" if "peak_cuda_mb" in r else f"{'-':>12}"
                print(
                    f"{size:>10} {mode:>13} {width * height / 1e6:10.2f} {r['seconds']:8.1f} "
                    f"{r['peak_rss_mb']:11.0f} {cuda}",
                    flush=True,
                )
                if "gflop" in r:
                    print(
                        f"{'':>10} {'':>13} networks {r['gflop']:.0f} GFLOP; {args.precision} matmul "
                        f"{r['matmul_gflops']:.0f} GFLOP/s: floor {r['floor_seconds']:.1f} s, "
                        f"reached {r['floor_seconds'] / r['seconds']:.0%}",
                        flush=True,
                    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
