"""What a training run writes for people and tools: a readable log, JSONL scalars, TensorBoard, image grids.

``RUN_DIR/train.log``       human-readable log lines (also printed)
``RUN_DIR/scalars.jsonl``   one JSON object per logged step: {"step", "epoch", "lr", "sec_per_step", losses...}
``RUN_DIR/tensorboard/``    the same scalars and the image grids, if the ``tensorboard`` package is installed
``RUN_DIR/samples/``        PNG grids: source | translation | target | identity translation
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from semst.data.images import save_image, tensor_to_image

log = logging.getLogger("semst.train")


def image_grid(columns: Mapping[str, torch.Tensor], max_rows: int = 4) -> Image.Image:
    """A labelled grid: one column per named (B, 3, H, W) batch in [-1, 1], one row per image."""
    names = list(columns)
    batches = [columns[n][:max_rows].detach().float().cpu() for n in names]
    rows = min(b.shape[0] for b in batches)
    height, width = batches[0].shape[-2:]
    label_h = 14
    grid = Image.new("RGB", (width * len(names), label_h + height * rows), (32, 32, 32))
    draw = ImageDraw.Draw(grid)
    for c, (name, b) in enumerate(zip(names, batches)):
        draw.text((c * width + 3, 1), name, fill=(230, 230, 230))
        for r in range(rows):
            tile = tensor_to_image(b[r]).resize((width, height))
            grid.paste(tile, (c * width, label_h + r * height))
    return grid


class RunLogger:
    """Writes scalars and image grids of one run; every method is a no-op when ``enabled`` is False."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._writer = None
        self._handler = None
        if not enabled:
            return
        (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        self._handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        log.addHandler(self._handler)
        log.setLevel(logging.INFO)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                log.info(
                    "tensorboard is not installed: scalars go to scalars.jsonl only (pip install semst[tensorboard])"
                )
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def info(self, message: str) -> None:
        if self.enabled:
            log.info(message)

    def warning(self, message: str) -> None:
        if self.enabled:
            log.warning(message)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time(), 3), **{k: float(v) for k, v in values.items()}}
        with open(self.run_dir / "scalars.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, float(value), step)

    def images(self, step: int, grid: Image.Image, name: str = "samples") -> Path | None:
        if not self.enabled:
            return None
        path = self.run_dir / "samples" / f"{name}_step_{step:09d}.png"
        save_image(grid, path)
        if self._writer is not None:
            array = torch.from_numpy(np.array(grid)).permute(2, 0, 1)  # (3, H, W) uint8
            self._writer.add_image(name, array, step)
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler.close()


def format_losses(values: Mapping[str, float], keys: Sequence[str] | None = None) -> str:
    """``"D/loss 0.251  G/hdce 4.83 ..."``: short, aligned numbers for the log and the progress bar."""
    keys = keys or list(values)
    return "  ".join(f"{k} {values[k]:.4g}" for k in keys if k in values)
