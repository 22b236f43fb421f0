"""Shared fixtures: tiny configs and tiny unpaired image folders, so every test runs in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.config import ExperimentConfig, load_config

torch.set_num_threads(min(2, os.cpu_count() or 1))

TINY_OVERRIDES = {
    "generator.base_channels": 8,
    "generator.num_blocks": 2,
    "discriminator.base_channels": 8,
    "projection.taps": "input,down1,down2,res1,res2",
    "projection.num_patches": 32,
    "projection.dim": 32,
    "data.crop_size": 32,
    "data.load_size": 36,
    "data.num_workers": 0,
    "log.log_every": 1,
    "log.sample_every": 1000,
    "log.checkpoint_every": 1000,
    "log.tensorboard": False,
    # Single-scale unless a test asks for TINY_MULTISCALE: most tests exercise one generator's code paths.
    "multiscale.enabled": False,
}

TINY_MULTISCALE = {
    "multiscale.enabled": True,
    "multiscale.global_size": 32,
    "multiscale.scale": 2,
    "multiscale.local_size": 32,
    "multiscale.attention_hidden": 8,
}


def write_images(
    folder: Path, count: int, size: tuple[int, int], seed: int, suffix: str = ".png"
) -> list[Path]:
    """``count`` smooth random RGB images of ``size`` (W, H) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.BICUBIC)
        path = folder / f"img_{i:02d}{suffix}"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Source and target folders with a few 40x48 / 48x40 images (unaligned, different counts)."""
    source, target = tmp_path / "trainA", tmp_path / "trainB"
    write_images(source, 4, (40, 48), seed=1)
    write_images(target, 3, (48, 40), seed=2, suffix=".jpg")
    return source, target


def tiny_config(
    preset: str = "semst", source: Path | str = "", target: Path | str = "", **overrides
) -> ExperimentConfig:
    values = {**TINY_OVERRIDES, "data.source": str(source), "data.target": str(target), **overrides}
    return load_config(preset, overrides=values)


@pytest.fixture
def make_config():
    """Factory for tiny validated configs: ``make_config("cut", source, target, **{"train.seed": 3})``."""
    return tiny_config


def make_batch(config: ExperimentConfig, count: int = 2, seed: int = 0, size: tuple[int, int] = (90, 70)):
    """A collated training batch of ``count`` random image pairs (W, H = ``size``), cut by the crop
    specification the config's translator trains on (single- or multi-scale)."""
    from semst.data.batch import Sample, collate
    from semst.translators import translator_class

    crops = translator_class(config).crop_spec(config)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        images = [
            Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
            for _ in range(2)
        ]
        source, target = (crops(image, rng, 0) for image in images)
        samples.append(Sample(source, target, f"source_{i}.png", f"target_{i}.png", 0, i))
    return collate(samples)


def training_setup(config: ExperimentConfig, seed: int = 0):
    """Freshly initialised training networks (seeded) and their optimizers."""
    from semst.training.networks import TrainingNetworks, make_optimizers

    torch.manual_seed(seed)
    networks = TrainingNetworks.from_config(config)
    return networks, make_optimizers(networks, config.train)
