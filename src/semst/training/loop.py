"""The training loop: data, optimizers, schedule, logging and checkpoint cadence around ``train_step``.

``train(config, run_dir)`` creates ``run_dir`` and writes::

    run_dir/config.yaml                      the resolved config
    run_dir/checkpoints/step_000005000.safetensors   complete training states (the latest few are kept)
    run_dir/scalars.jsonl, train.log, tensorboard/, samples/   (see semst.training.logger)

``train(config, run_dir, resume=True)`` continues from the latest checkpoint of ``run_dir`` exactly as
if the run had not stopped. The loop knows nothing about the losses: those live in ``step.py``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semst import checkpoint as ckpt
from semst.config import ConfigError, ExperimentConfig
from semst.data import StepBatchSampler, UnpairedImages, collate_unpaired
from semst.model import SemST
from semst.runtime import init_distributed, resolve_device, tune_cpu_allocator
from semst.training.logger import RunLogger, format_losses, image_grid
from semst.training.multiscale_step import multiscale_preview, multiscale_train_step
from semst.training.schedule import linear_decay_factor
from semst.training.state import (
    load_training_checkpoint,
    make_optimizers,
    save_training_checkpoint,
    training_networks,
)
from semst.training.step import train_step

# Settings that may change when a run is resumed: they affect how long it runs, where the data is read
# from and what is logged, not what a step computes.
RESUMABLE_CHANGES = (
    "train.max_steps",
    "train.device",
    "train.threads",
    "data.source",
    "data.target",
    "data.num_workers",
    "log.*",
)


class RunDirError(ValueError):
    """The run directory cannot be used as asked (it holds a run already, or has nothing to resume)."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, with (old, new) values."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_resumable(saved: ExperimentConfig, requested: ExperimentConfig, path: Path) -> None:
    """Refuse to resume with changes that would alter what a training step computes."""
    changed = {
        k: v
        for k, v in config_differences(saved, requested).items()
        if not k.startswith(tuple(p.rstrip("*") for p in RESUMABLE_CHANGES))
    }
    if changed:
        details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(
            f"cannot resume {path} with a different configuration ({details}). Only these may change on "
            f"resume: {', '.join(RESUMABLE_CHANGES)}. Start a new run directory to train with other settings."
        )


def total_steps(config: ExperimentConfig, steps_per_epoch: int) -> int:
    if config.train.max_steps is not None:
        return config.train.max_steps
    return (config.train.constant_epochs + config.train.decay_epochs) * steps_per_epoch


def _prune_checkpoints(folder: Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in sorted(folder.glob(f"step_*{ckpt.SUFFIX}"))[:-keep]:
        old.unlink(missing_ok=True)


def prepare_run_dir(run_dir: Path, config: ExperimentConfig, *, resume: bool) -> Path | None:
    """Check ``run_dir`` for a new or resumed run; returns the checkpoint to resume from (or None)."""
    if resume:
        latest = ckpt.resolve_checkpoint(run_dir) if (run_dir / "checkpoints").is_dir() else None
        if latest is None:
            raise RunDirError(f"--resume: {run_dir} has no checkpoints to resume from")
        return latest
    if (run_dir / "config.yaml").exists() or any((run_dir / "checkpoints").glob("*")):
        raise RunDirError(
            f"{run_dir} already holds a run (config.yaml or checkpoints). Pass --resume to continue it, "
            "or choose another --out; nothing was changed."
        )
    return None


def multiscale_sampling(config: ExperimentConfig) -> dict[str, Any] | None:
    """The crop settings of multi-scale training data (None for single-scale)."""
    ms = config.multiscale
    if not ms.enabled:
        return None
    return {
        "global_size": ms.global_size,
        "scale": ms.scale,
        "local_size": ms.local_size,
        "image_width": ms.image_width,
    }


def check_multiscale_image_sizes(
    config: ExperimentConfig, dataset: UnpairedImages, sample: int = 20
) -> str | None:
    """A warning if images are smaller than the multi-scale global region (they would be upscaled)."""
    from PIL import Image

    ms = config.multiscale
    if not ms.enabled:
        return None
    region = ms.global_size * ms.scale
    small = []
    for paths in (dataset.source_paths, dataset.target_paths):
        for path in paths[:sample]:
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except OSError:
                continue  # unreadable files are reported by the data loader, with their names
            if ms.image_width is not None:
                width, height = ms.image_width, round(height * ms.image_width / width)
            if min(width, height) < region:
                small.append(f"{path.name} ({width}x{height})")
    if not small:
        return None
    return (
        f"{len(small)} of the first images (e.g. {', '.join(small[:3])}) are smaller than the multi-scale "
        f"global region of {region} px (multiscale.global_size x multiscale.scale) and will be upscaled to "
        "cover it. For small images train single-scale (--single-scale, as the paper does for 256 px data "
        "sets) or lower multiscale.global_size / multiscale.scale."
    )


def run_step(
    config: ExperimentConfig,
    networks: dict,
    optimizers: dict,
    batch: dict,
    *,
    step: int,
    image_offset: int,
    dist,
    scalers: dict,
) -> dict[str, torch.Tensor]:
    """One training step of the configured kind (single- or multi-scale) on a batch on the device."""
    common = {
        "loss_cfg": config.loss,
        "projection_cfg": config.projection,
        "seed": config.train.seed,
        "step": step,
        "image_offset": image_offset,
        "dist": dist,
        "precision": config.train.precision,
        "scalers": scalers,
    }
    if config.multiscale.enabled:
        return multiscale_train_step(networks, optimizers, batch, multiscale_cfg=config.multiscale, **common)
    return train_step(networks, optimizers, batch["source"], batch["target"], **common)


@torch.no_grad()
def preview(config: ExperimentConfig, networks: dict, batch: dict) -> dict[str, torch.Tensor]:
    """The columns of a sample grid."""
    if config.multiscale.enabled:
        return multiscale_preview(networks, batch)
    source, target = batch["source"], batch["target"]
    grid = {"source": source, "translation": networks["generator"](source), "target": target}
    if config.loss.identity:
        grid["identity"] = networks["generator"](target)
    return grid


def train(
    config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> Path:
    """Train G, D and F as ``config`` says; returns the path of the last checkpoint written."""
    config.validate()
    run_dir = Path(run_dir)
    if not config.data.source or not config.data.target:
        raise ConfigError("data.source and data.target must name the source and target image folders")
    resume_from = prepare_run_dir(run_dir, config, resume=resume)
    if resume_from is not None:
        saved = ExperimentConfig.from_dict(ckpt.read_metadata(resume_from)["config"], source=str(resume_from))
        check_resumable(saved, config, resume_from)

    device = resolve_device(config.train.device)
    dist = init_distributed(device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    if device.type == "cpu":
        tune_cpu_allocator()
    train_cfg, log_cfg = config.train, config.log

    dataset = UnpairedImages(
        config.data.source,
        config.data.target,
        preprocess=config.data.preprocess,
        load_size=config.data.load_size,
        crop_size=config.data.crop_size,
        flip=config.data.flip,
        seed=train_cfg.seed,
        max_dataset_size=config.data.max_dataset_size,
        steady_from_epoch=train_cfg.constant_epochs,
        multiscale=multiscale_sampling(config),
    )

    torch.manual_seed(train_cfg.seed)  # identical initial weights on every process
    model = SemST(config, training=True).to(device)
    networks = training_networks(model)
    optimizers = make_optimizers(networks, train_cfg)
    scalers = (
        {name: torch.amp.GradScaler(device.type) for name in ("discriminator", "generator")}
        if train_cfg.precision == "fp16"
        else {}
    )

    start_step = 0
    if resume_from is not None:
        meta = load_training_checkpoint(
            resume_from, networks=networks, optimizers=optimizers, scalers=scalers, device=device
        )
        start_step = int(meta["step"])

    sampler = StepBatchSampler(
        len(dataset), train_cfg.batch_size, start_step=start_step, rank=dist.rank, world_size=dist.world_size
    )
    steps_per_epoch = sampler.steps_per_epoch
    last_step = total_steps(config, steps_per_epoch)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.data.num_workers > 0,
        collate_fn=collate_unpaired,
    )

    logger = RunLogger(run_dir, enabled=dist.is_main, tensorboard=log_cfg.tensorboard)
    if dist.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in networks.items()}
    logger.info(
        f"{'resuming' if resume_from else 'starting'} {config.preset} "
        f"{'multi-scale' if config.multiscale.enabled else 'single-scale'} run in {run_dir} on {device}"
        f"{f' x{dist.world_size} processes' if dist.enabled else ''}: {len(dataset)} images per epoch "
        f"({steps_per_epoch} steps), steps {start_step} -> {last_step}; parameters "
        + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in n_params.items())
    )

    warning = check_multiscale_image_sizes(config, dataset)
    if warning:
        logger.warning(warning)
    checkpoint_dir = run_dir / "checkpoints"
    last_path = resume_from

    def save(step: int, epoch: int) -> Path:
        path = save_training_checkpoint(
            checkpoint_dir / ckpt.checkpoint_name(step),
            config=config,
            networks=networks,
            optimizers=optimizers,
            scalers=scalers,
            step=step,
            extra={"epoch": epoch, "steps_per_epoch": steps_per_epoch},
        )
        _prune_checkpoints(checkpoint_dir, log_cfg.keep_checkpoints)
        logger.info(f"step {step}: checkpoint {path}")
        return path

    bar = tqdm(
        total=last_step,
        initial=start_step,
        unit="step",
        dynamic_ncols=True,
        disable=not (progress and dist.is_main),
        desc=f"train {config.preset}",
    )
    step = start_step
    window_start, window_steps = time.perf_counter(), 0
    batches = iter(loader)
    try:
        while step < last_step:
            epoch = step // steps_per_epoch
            lr = train_cfg.lr * linear_decay_factor(epoch, train_cfg.constant_epochs, train_cfg.decay_epochs)
            for optimizer in optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr
            batch = {
                k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in next(batches).items()
            }
            losses = run_step(
                config,
                networks,
                optimizers,
                batch,
                step=step,
                image_offset=dist.rank * train_cfg.batch_size,
                dist=dist,
                scalers=scalers,
            )
            step += 1
            window_steps += 1
            bar.update(1)
            if step % log_cfg.log_every == 0 or step == last_step:
                values = {k: v.item() for k, v in losses.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise FloatingPointError(f"non-finite loss at step {step}: {format_losses(values)}")
                elapsed = time.perf_counter() - window_start
                values.update(lr=lr, epoch=epoch, sec_per_step=elapsed / window_steps)
                window_start, window_steps = time.perf_counter(), 0
                logger.scalars(step, values)
                bar.set_postfix_str(
                    format_losses(values, ["D/loss", "G/adversarial", f"G/{config.loss.contrastive}", "G/ts"])
                )
                logger.info(
                    f"step {step}/{last_step} epoch {epoch} lr {lr:.3g} {values['sec_per_step']:.3f} s/step  "
                    + format_losses({k: v for k, v in values.items() if "/" in k})
                )
            if dist.is_main and (step % log_cfg.sample_every == 0 or step == last_step):
                logger.images(step, image_grid(preview(config, networks, batch)))
            if step % log_cfg.checkpoint_every == 0 or step == last_step:
                if dist.is_main:
                    last_path = save(step, epoch)
                dist.barrier()
        if step == start_step and dist.is_main and resume_from is None:  # max_steps = 0: still write one
            last_path = save(step, 0)
    finally:
        bar.close()
        logger.close()
    return last_path if last_path is not None else checkpoint_dir / ckpt.checkpoint_name(step)
