"""The training loop: data, optimizers, schedule, logging and checkpoint cadence around ``train_step``.

``train(config, run_dir)`` creates ``run_dir`` and writes::

    run_dir/config.yaml                      the resolved config
    run_dir/checkpoints/step_000005000.safetensors   complete training states (the latest few are kept)
    run_dir/scalars.jsonl, train.log, tensorboard/, samples/   (see semst.training.logger)

``train(config, run_dir, resume=True)`` continues from the latest checkpoint of ``run_dir`` exactly as
if the run had not stopped. It is `build_run` (check the run folder and the data, build the networks,
optimizers, data loader and logger, restore a checkpoint) followed by `run_training` (the loop). The loop
knows nothing about the losses or the kind of translator: those live in ``step.py`` and
`semst.translators`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semst import checkpoint as ckpt
from semst.config import ConfigError, ExperimentConfig
from semst.data import StepBatchSampler, UnpairedImages, collate
from semst.data.transforms import CropSpec
from semst.runtime import Distributed, init_distributed, resolve_device, tune_cpu_allocator
from semst.training.logger import RunLogger, format_losses, image_grid
from semst.training.networks import TrainingNetworks, make_optimizers
from semst.training.schedule import linear_decay_factor
from semst.training.state import load_training_checkpoint, save_training_checkpoint
from semst.training.step import preview, train_step

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


def check_data_sources(config: ExperimentConfig) -> None:
    """Both domains must be named before training starts."""
    if not config.data.source or not config.data.target:
        raise ConfigError(
            "data.source and data.target must name the source and target images (--source/--target, "
            "--data ROOT, or data.source/data.target in a config file)"
        )


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """The saved config of ``run_dir``'s latest checkpoint with ``overrides`` applied (for ``--resume``);
    `build_run` refuses overrides that would change what a step computes (`check_resumable`)."""
    latest = ckpt.resolve_checkpoint(run_dir)
    meta = ckpt.read_metadata(latest)
    if "config" not in meta:
        raise ckpt.CheckpointError(f"{latest}: the checkpoint holds no config; it cannot be resumed")
    saved = ExperimentConfig.from_dict(meta["config"], source=str(latest))
    return saved.replace(overrides or {}, source="command line").validate()


def size_warning(crops: CropSpec, dataset: UnpairedImages, sample: int = 20) -> str | None:
    """A warning if the first images are smaller than the crops need (they would be upscaled)."""
    from PIL import Image

    small = []
    for paths in (dataset.source_paths, dataset.target_paths):
        for path in paths[:sample]:
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except OSError:
                continue  # unreadable files are reported by the data loader, with their names
            if crops.undersized(width, height):
                small.append(f"{path.name} ({width}x{height})")
    if not small:
        return None
    return (
        f"{len(small)} of the first images (e.g. {', '.join(small[:3])}) are smaller than the multi-scale "
        f"global region of {crops.region} px (multiscale.global_size x multiscale.scale) and will be upscaled "
        "to cover it. For small images train single-scale (--single-scale, as the paper does for 256 px data "
        "sets) or lower multiscale.global_size / multiscale.scale."
    )


@dataclass
class TrainingRun:
    """A training run ready to go: what `build_run` prepares and `run_training` runs."""

    config: ExperimentConfig
    run_dir: Path
    device: torch.device
    dist: Distributed
    networks: TrainingNetworks
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]
    dataset: UnpairedImages
    loader: DataLoader
    steps_per_epoch: int
    start_step: int
    last_step: int
    resume_from: Path | None
    logger: RunLogger

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def save(self, step: int, epoch: int) -> Path:
        """Write a checkpoint after ``step`` steps and prune old ones."""
        path = save_training_checkpoint(
            self.checkpoint_dir / ckpt.checkpoint_name(step),
            config=self.config,
            networks=self.networks,
            optimizers=self.optimizers,
            scalers=self.scalers,
            step=step,
            extra={"epoch": epoch, "steps_per_epoch": self.steps_per_epoch},
        )
        _prune_checkpoints(self.checkpoint_dir, self.config.log.keep_checkpoints)
        self.logger.info(f"step {step}: checkpoint {path}")
        return path

    def set_learning_rate(self, epoch: int) -> float:
        train_cfg = self.config.train
        lr = train_cfg.lr * linear_decay_factor(epoch, train_cfg.constant_epochs, train_cfg.decay_epochs)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr


def build_run(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False) -> TrainingRun:
    """Check the run folder and data, build networks, optimizers, data and logger; restore a checkpoint."""
    config.validate()
    run_dir = Path(run_dir)
    check_data_sources(config)
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
    train_cfg = config.train

    torch.manual_seed(train_cfg.seed)  # identical initial weights on every process
    networks = TrainingNetworks.from_config(config).to(device)
    crops = networks.translator.crop_spec(config)
    dataset = UnpairedImages(
        config.data.source,
        config.data.target,
        crops,
        seed=train_cfg.seed,
        max_dataset_size=config.data.max_dataset_size,
    )
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
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.data.num_workers > 0,
        collate_fn=collate,
    )
    logger = RunLogger(run_dir, enabled=dist.is_main, tensorboard=config.log.tensorboard)
    if dist.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    run = TrainingRun(
        config=config,
        run_dir=run_dir,
        device=device,
        dist=dist,
        networks=networks,
        optimizers=optimizers,
        scalers=scalers,
        dataset=dataset,
        loader=loader,
        steps_per_epoch=sampler.steps_per_epoch,
        start_step=start_step,
        last_step=total_steps(config, sampler.steps_per_epoch),
        resume_from=resume_from,
        logger=logger,
    )
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in networks.parts().items()}
    logger.info(
        f"{'resuming' if resume_from else 'starting'} {config.preset} {networks.translator.kind} run in "
        f"{run_dir} on {device}{f' x{dist.world_size} processes' if dist.enabled else ''}: {len(dataset)} "
        f"images per epoch ({run.steps_per_epoch} steps), steps {start_step} -> {run.last_step}; parameters "
        + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in n_params.items())
    )
    warning = size_warning(crops, dataset)
    if warning:
        logger.warning(warning)
    return run


def _log_step(
    run: TrainingRun, step: int, epoch: int, lr: float, losses: dict, window: tuple[float, int], bar
):
    values = {k: v.item() for k, v in losses.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise FloatingPointError(f"non-finite loss at step {step}: {format_losses(values)}")
    values.update(lr=lr, epoch=epoch, sec_per_step=(time.perf_counter() - window[0]) / window[1])
    run.logger.scalars(step, values)
    bar.set_postfix_str(
        format_losses(values, ["D/loss", "G/adversarial", f"G/{run.config.loss.contrastive}", "G/ts"])
    )
    run.logger.info(
        f"step {step}/{run.last_step} epoch {epoch} lr {lr:.3g} {values['sec_per_step']:.3f} s/step  "
        + format_losses({k: v for k, v in values.items() if "/" in k})
    )


def run_training(run: TrainingRun, *, progress: bool = True) -> Path:
    """Train from ``run.start_step`` to ``run.last_step``; returns the path of the last checkpoint written."""
    config, dist, log_cfg = run.config, run.dist, run.config.log
    bar = tqdm(
        total=run.last_step,
        initial=run.start_step,
        unit="step",
        dynamic_ncols=True,
        disable=not (progress and dist.is_main),
        desc=f"train {config.preset}",
    )
    step, last_path = run.start_step, run.resume_from
    window = (time.perf_counter(), 0)
    batches = iter(run.loader)
    try:
        while step < run.last_step:
            epoch = step // run.steps_per_epoch
            lr = run.set_learning_rate(epoch)
            batch = next(batches).to(run.device, non_blocking=True)
            losses = train_step(
                run.networks,
                run.optimizers,
                batch,
                loss_cfg=config.loss,
                projection_cfg=config.projection,
                seed=config.train.seed,
                step=step,
                image_offset=dist.rank * config.train.batch_size,
                dist=dist,
                precision=config.train.precision,
                scalers=run.scalers,
            )
            step += 1
            window = (window[0], window[1] + 1)
            bar.update(1)
            if step % log_cfg.log_every == 0 or step == run.last_step:
                _log_step(run, step, epoch, lr, losses, window, bar)
                window = (time.perf_counter(), 0)
            if dist.is_main and (step % log_cfg.sample_every == 0 or step == run.last_step):
                grid = preview(run.networks, batch, identity=config.loss.identity)
                run.logger.images(step, image_grid(grid))
            if step % log_cfg.checkpoint_every == 0 or step == run.last_step:
                if dist.is_main:
                    last_path = run.save(step, epoch)
                dist.barrier()
        if step == run.start_step and dist.is_main and run.resume_from is None:  # max_steps = 0: still one
            last_path = run.save(step, 0)
    finally:
        bar.close()
        run.logger.close()
    return last_path if last_path is not None else run.checkpoint_dir / ckpt.checkpoint_name(step)


def train(
    config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> Path:
    """Train as ``config`` says (`build_run`, then `run_training`); returns the last checkpoint's path."""
    return run_training(build_run(config, run_dir, resume=resume), progress=progress)
