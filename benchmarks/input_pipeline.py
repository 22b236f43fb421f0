"""Decode + crop throughput of semst's training data pipeline per data-loader worker, for GTA5-sized PNGs, and
the number of workers a GPU's step rate needs.

    python benchmarks/input_pipeline.py                                   # synthetic 1914x1052 PNGs
    python benchmarks/input_pipeline.py --steps-per-second 8 --workers 0,1,2,4
    python benchmarks/input_pipeline.py --folder /data/GTA5/images --images 64   # real files instead
    python benchmarks/input_pipeline.py --image-width 1280 --json figures.json

What runs: ``--images`` PNGs of ``--width`` x ``--height`` pixels (default 1914 x 1052, GTA5's frames: smooth
random scenes with fine noise, so that they compress roughly like photographs; their mean file size is
printed, to compare with the real data) are written to a temporary folder, or the first ``--images`` images
of ``--folder`` are used. For every crop specification and every worker count of ``--workers``, an
`semst.data.unpaired.UnpairedImages` over that folder (as source and target domain) is read through a
``torch.utils.data.DataLoader`` with `semst.data.unpaired.StepBatchSampler` and `semst.data.collate`, as
``semst train`` reads it. A sample decodes two images (source and target) and cuts their crops. The first
batches (one per worker) are not timed: they include starting the workers.

Crop specifications (``--specs``):

* ``decode``: `semst.data.images.load_rgb` alone, in the main process (the floor under every other row);
* ``single-scale``: `semst.data.transforms.SingleScaleCrops`, CUT's ``resize_and_crop`` (the whole image
  resized to ``--load-size`` squared, then a ``--crop-size`` crop; the ``cut`` preset and single-scale semst);
* ``single-scale-crop``: ``preprocess crop`` (a ``--crop-size`` crop at full resolution, no resize);
* ``multi-scale``: `semst.data.transforms.MultiScaleCrops` (``--global-size`` x 2 region, ``--local-size``
  crop) on images as stored (the ``semst`` preset);
* ``multi-scale-width``: the same with ``multiscale.image_width = --image-width`` (every image resized to that
  width first, as HRDA trains on GTA5 at 1280 x 720);
* ``multi-scale-stored-at-width``: the images stored at ``--image-width`` once beforehand ("decode once at load
  size"), then cropped as stored: what storing a data set at its training width would gain over resizing it
  at every step (crops are not bit-identical to ``multi-scale-width``: the resize happens once, in another
  order with the crop, so this row measures speed only).

Printed per row: images per second in all, per worker (the main process counts as one for 0 workers), and
the workers needed to feed ``--steps-per-second`` training steps of ``--batch-size`` samples
(``ceil(steps/s x batch x 2 / images per second per worker)``). Decoding scales with workers until the CPU
cores run out: the estimate holds only while workers + the training process fit on the machine's cores.

Run it on an otherwise idle machine; the figures go to docs/benchmarks.md with the command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semst.data import StepBatchSampler, UnpairedImages, collate
from semst.data.images import find_images, load_rgb
from semst.data.transforms import MultiScaleCrops, SingleScaleCrops

SPECS = (
    "decode",
    "single-scale",
    "single-scale-crop",
    "multi-scale",
    "multi-scale-width",
    "multi-scale-stored-at-width",
)


def write_synthetic_pngs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` PNGs of smooth random scenes with fine noise (a photograph's texture, roughly)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
        scene = np.asarray(
            Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.int16
        )
        noise = rng.normal(0, 6, size=scene.shape).round().astype(np.int16)
        path = folder / f"{i:05d}.png"
        Image.fromarray(np.clip(scene + noise, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def store_at_width(paths: list[Path], folder: Path, width: int) -> None:
    """The images resized to ``width`` (aspect kept, bicubic), as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        image = load_rgb(path)
        height = max(1, round(image.height * width / image.width))
        image.resize((width, height), Image.Resampling.BICUBIC).save(folder / f"{path.stem}.png")


def crop_spec(name: str, args: argparse.Namespace):
    if name == "single-scale":
        return SingleScaleCrops(
            preprocess="resize_and_crop", load_size=args.load_size, crop_size=args.crop_size
        )
    if name == "single-scale-crop":
        return SingleScaleCrops(preprocess="crop", load_size=args.load_size, crop_size=args.crop_size)
    width = args.image_width if name == "multi-scale-width" else None
    return MultiScaleCrops(
        global_size=args.global_size, scale=2, local_size=args.local_size, image_width=width
    )


def measure_decode(paths: list[Path], count: int) -> float:
    """Images per second of `load_rgb` alone, in this process."""
    load_rgb(paths[0])  # warm the page cache and Pillow's plugins
    start = time.perf_counter()
    for i in range(count):
        load_rgb(paths[i % len(paths)])
    return count / (time.perf_counter() - start)


def measure_loader(folder: Path, spec, workers: int, batch_size: int, batches: int) -> float:
    """Images per second (two per sample: source and target) through a DataLoader as semst train builds it."""
    from torch.utils.data import DataLoader

    dataset = UnpairedImages(folder, folder, spec, seed=0)
    sampler = StepBatchSampler(len(dataset), batch_size, start_step=0)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=collate,
        prefetch_factor=2 if workers > 0 else None,
    )
    iterator = iter(loader)
    for _ in range(max(1, workers)):  # the first batch of every worker includes its start
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    del iterator, loader
    return 2 * batches * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for what runs."
    )
    parser.add_argument("--width", type=int, default=1914, help="synthetic image width (GTA5: 1914)")
    parser.add_argument("--height", type=int, default=1052, help="synthetic image height (GTA5: 1052)")
    parser.add_argument("--images", type=int, default=8, help="images in the folder")
    parser.add_argument("--folder", type=Path, help="measure these images instead of synthetic ones")
    parser.add_argument("--passes", type=int, default=2, help="timed batches = passes x images / batch size")
    parser.add_argument("--workers", default="0,1,2", help="data-loader worker counts to measure")
    parser.add_argument("--batch-size", type=int, default=1, help="samples per step (train.batch_size)")
    parser.add_argument("--specs", default=",".join(SPECS), help=f"comma-separated, of {', '.join(SPECS)}")
    parser.add_argument("--crop-size", type=int, default=256, help="data.crop_size")
    parser.add_argument("--load-size", type=int, default=286, help="data.load_size")
    parser.add_argument("--global-size", type=int, default=256, help="multiscale.global_size (scale 2)")
    parser.add_argument("--local-size", type=int, default=256, help="multiscale.local_size")
    parser.add_argument(
        "--image-width", type=int, default=1280, help="multiscale.image_width of the -width rows"
    )
    parser.add_argument(
        "--steps-per-second", type=float, default=4.0, help="the GPU's training steps per second to feed"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    unknown = sorted(set(specs) - set(SPECS))
    if unknown:
        parser.error(f"unknown specs {unknown}; choose from {', '.join(SPECS)}")
    worker_counts = [int(w) for w in args.workers.split(",")]
    needed = args.steps_per_second * args.batch_size * 2  # images per second the GPU consumes
    with tempfile.TemporaryDirectory(prefix="input_pipeline_") as temporary:
        if args.folder is not None:
            paths = find_images(args.folder)[: args.images]
            folder = Path(temporary) / "images"
            folder.mkdir()
            for i, path in enumerate(paths):  # links, so that the data set's other images are not read
                os.symlink(path.resolve(), folder / f"{i:05d}{path.suffix}")
        else:
            folder = Path(temporary) / "images"
            write_synthetic_pngs(folder, args.images, args.width, args.height)
        paths = find_images(folder)
        if "multi-scale-stored-at-width" in specs:
            store_at_width(paths, Path(temporary) / "at_width", args.image_width)
        sizes = [path.stat().st_size for path in paths]
        with Image.open(paths[0]) as first:
            size = first.size
        print(
            f"{len(paths)} images of {size[0]}x{size[1]} ({'from ' + str(args.folder) if args.folder else 'synthetic'}"
            f"), mean file {statistics.mean(sizes) / 2**20:.2f} MiB; batch {args.batch_size}; the GPU at "
            f"{args.steps_per_second:g} steps/s needs {needed:g} images/s"
        )
        print(f"{'spec':>28} {'workers':>7} {'images/s':>9} {'per worker':>10} {'workers needed':>14}")
        batches = max(1, args.passes * len(paths) // args.batch_size)
        results = []
        for name in specs:
            for workers in [0] if name == "decode" else worker_counts:
                if name == "decode":
                    rate = measure_decode(paths, args.passes * len(paths))
                else:
                    source = Path(temporary) / "at_width" if name == "multi-scale-stored-at-width" else folder
                    spec = crop_spec(name if name != "multi-scale-stored-at-width" else "multi-scale", args)
                    rate = measure_loader(source, spec, workers, args.batch_size, batches)
                per_worker = rate / max(1, workers)
                row = {
                    "spec": name,
                    "workers": workers,
                    "images_per_second": rate,
                    "images_per_second_per_worker": per_worker,
                    "workers_needed": math.ceil(needed / per_worker),
                }
                results.append(row)
                print(
                    f"{name:>28} {workers:>7} {rate:9.2f} {per_worker:10.2f} {row['workers_needed']:>14}",
                    flush=True,
                )
    print(
        f"workers for {args.steps_per_second:g} steps/s of batch {args.batch_size}: the last column, at each row's "
        "rate (it holds while the workers and the training process have CPU cores of their own)"
    )
    if args.json:
        settings = {**vars(args), "folder": None if args.folder is None else str(args.folder)}
        Path(args.json).write_text(json.dumps({"settings": settings, "results": results}, indent=2))


if __name__ == "__main__":
    main()
