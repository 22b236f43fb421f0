"""The training loop: data, optimizers, schedule, logging and checkpoint cadence around ``train_step``.

``train(config, run_dir)`` creates ``run_dir`` and writes::

    run_dir/config.yaml                      the resolved config
    run_dir/checkpoints/step_000005000.safetensors   complete training states (the latest few are kept)
    run_dir/scalars.jsonl, train.log, tensorboard/, samples/   (see semst.training.logger)

``train(config, run_dir, resume=True)`` continues from the latest checkpoint of ``run_dir`` exactly as
if the run had not stopped (``scalars.jsonl`` loses the records of the steps after that checkpoint, which
the resumed run logs again). It is `build_run` (check the run folder and the data, build the networks,
optimizers, data loader and logger, restore a checkpoint) followed by `run_training` (the loop). The loop
knows nothing about the losses or the kind of translator: those live in ``step.py`` and
`semst.translators`.

Bad data and conditions (issue 13, docs/safety.md): the run folder may not lie inside the source or target
images (`check_run_dir_outside_data`); it is locked for the whole run (`semst.locking.FolderLock`), so a
second ``semst train`` on it stops at once; temporary files of a killed run are removed on the next start;
every image's header is read before the first step (`check_images`); an image that fails to decode later is
replaced by the next readable one of its domain, with a warning; a checkpoint that cannot be written (a full
disk) stops the run with `CheckpointWriteError` naming the file, and the last good checkpoint stays.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semst import checkpoint as ckpt
from semst.config import ConfigError, ExperimentConfig
from semst.data import StepBatchSampler, UnpairedImages, collate
from semst.data.batch import Batch, DomainCrops
from semst.data.images import ImageLoadError
from semst.data.transforms import CropSpec
from semst.data.unpaired import unreadable_images
from semst.files import remove_temporaries, write_text
from semst.locking import FolderLock
from semst.runtime import (
    Distributed,
    init_distributed,
    resolve_device,
    resolve_precision,
    slow_precision_warning,
    tune_cpu_allocator,
)
from semst.training.averaging import PowerAverage
from semst.training.logger import RunLogger, format_losses, image_grid
from semst.training.networks import TrainingNetworks, make_optimizers, make_scalers
from semst.training.schedule import linear_decay_factor
from semst.training.state import load_training_checkpoint, save_training_checkpoint
from semst.training.step import preview, train_step
from semst.translators import translator_class

# The folders of a run that hold semst's own files (and may hold temporary files of a killed write).
_RUN_FOLDERS = ("checkpoints", "samples")
# Image counts above which the start-of-run header check shows a progress bar.
_PROGRESS_FROM = 2000
# Unreadable images named in one error message at most.
_MAX_LISTED = 100

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
    """The run directory cannot be used as asked (it holds a run already, has nothing to resume, or lies
    inside the training data)."""


class TrainingDataError(ValueError):
    """Training images cannot be read; the message lists every one with the reason."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, say); the message names the file and the last good one."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, with (old, new) values; keys that neither
    config's training reads (`ExperimentConfig.inert_keys` of both) are left out."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    inert = old.inert_keys() & new.inert_keys()
    return {
        k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in inert
    }


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


def prepare_run_dir(run_dir: Path, *, resume: bool) -> Path | None:
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


def _data_folder(spec: str) -> Path:
    """The folder (or file) a ``data.source``/``data.target`` value names: ``NAME:PATH`` data sets by root."""
    from semst.data.datasets import is_dataset_spec

    if is_dataset_spec(spec):
        return Path(spec.partition(":")[2]).expanduser()
    return Path(spec).expanduser()


def check_run_dir_outside_data(run_dir: str | Path, sources: dict[str, str]) -> None:
    """Refuse a run folder that is a training-data folder or lies inside one, or a data folder inside the
    run's own sub-folders (``checkpoints/``, ``samples/``): the run would write its sample grids and
    checkpoints among the training images, and later runs would train on them. Paths are compared resolved,
    symbolic links followed.

    Args:
        run_dir: The run folder (it need not exist).
        sources: What each domain is read from, e.g. ``{"source": config.data.source, "target": ...}``.

    Raises:
        RunDirError: The folders collide; the message names both.
    """
    run = Path(run_dir).resolve()
    written = [run / name for name in _RUN_FOLDERS]
    for domain, spec in sources.items():
        if not spec:
            continue
        data = _data_folder(spec).resolve()
        if data.is_file():
            continue  # a single image: the run writes no image files into folders outside itself
        if run == data or data in run.parents:
            raise RunDirError(
                f"the run folder {run_dir} lies inside the {domain} images {spec} ({data}): its sample grids "
                f"and checkpoints would be written among the training images, and later runs would train on "
                f"them; choose an --out outside {data}. Nothing was written"
            )
        for folder in written:
            if data == folder or folder in data.parents:
                raise RunDirError(
                    f"the {domain} images {spec} ({data}) lie in {folder}, a folder the run writes to; choose "
                    f"another --out. Nothing was written"
                )


def check_images(dataset: UnpairedImages, *, progress: bool = True) -> None:
    """Read every training image's header (not its pixels) and list all that cannot be read in one error.

    Raises:
        TrainingDataError: Some images are unreadable (missing, zero bytes, not an image, a dangling link).
    """
    paths = list(dict.fromkeys([*dataset.source_paths, *dataset.target_paths]))
    bad = unreadable_images(paths, progress=progress and len(paths) >= _PROGRESS_FROM, desc="check images")
    if not bad:
        return
    if len(bad) == 1:
        raise TrainingDataError(
            f"the training image {bad[0][0]} cannot be read ({bad[0][1]}); remove or replace it (checked before "
            "the first step: nothing was trained)"
        )
    listed = "\n".join(f"  {path}: {reason}" for path, reason in bad[:_MAX_LISTED])
    more = f"\n  ... ({len(bad)} in all)" if len(bad) > _MAX_LISTED else ""
    raise TrainingDataError(
        f"{len(bad)} of the {len(paths)} training images cannot be read; remove or replace them (checked before "
        f"the first step: nothing was trained):\n{listed}{more}"
    )


def trim_scalars(path: Path, step: int) -> int:
    """Keep only the records of ``scalars.jsonl`` up to ``step`` (the checkpoint a run resumes from); the
    resumed run logs the later steps again. Unparsable lines (a write cut short by a kill) go too. The file
    is rewritten atomically. Returns the number of records dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            keep = int(record["step"]) <= step
        except (ValueError, KeyError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped


def _is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a single process (before the process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


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
    saved = ExperimentConfig.from_stored(meta["config"], source=str(latest))
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
    """A training run ready to go: what `build_run` prepares and `run_training` runs.

    ``lock`` is the run folder's lock (held by the main process from `build_run` until `run_training` ends;
    None on other ranks); ``unreadable`` collects the images that failed to decode during the run (file ->
    reason) and ``replaced`` counts how often one was replaced.
    """

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
    average: PowerAverage | None = None
    lock: FolderLock | None = None
    unreadable: dict[str, str] = field(default_factory=dict)
    replaced: int = 0

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def save(self, step: int, epoch: int) -> Path:
        """Write a checkpoint after ``step`` steps and prune old ones.

        Raises:
            CheckpointWriteError: The file could not be written (a full disk, say); the message names it, the
                free space and the last good checkpoint, which is left as it was.
        """
        path = self.checkpoint_dir / ckpt.checkpoint_name(step)
        try:
            save_training_checkpoint(
                path,
                config=self.config,
                networks=self.networks,
                optimizers=self.optimizers,
                scalers=self.scalers,
                average=self.average,
                step=step,
                extra={"epoch": epoch, "steps_per_epoch": self.steps_per_epoch},
            )
        except (OSError, RuntimeError, SafetensorError) as error:
            raise CheckpointWriteError(self._write_failure(path, step, error)) from error
        _prune_checkpoints(self.checkpoint_dir, self.config.log.keep_checkpoints)
        self.logger.info(f"step {step}: checkpoint {path}")
        return path

    def _write_failure(self, path: Path, step: int, error: BaseException) -> str:
        reason = " ".join(str(error).split()) or type(error).__name__
        try:
            free = f"; {shutil.disk_usage(self.checkpoint_dir).free / 2**20:.0f} MiB free there"
        except OSError:
            free = ""
        good = sorted(self.checkpoint_dir.glob(f"step_*{ckpt.SUFFIX}"))
        kept = (
            f"the last good checkpoint {good[-1]} is unchanged; free some space and continue with --resume"
            if good
            else "no earlier checkpoint exists"
        )
        return f"step {step}: could not write the checkpoint {path} ({type(error).__name__}: {reason}{free}); {kept}"

    def set_learning_rate(self, epoch: int) -> float:
        train_cfg = self.config.train
        lr = train_cfg.lr * linear_decay_factor(epoch, train_cfg.constant_epochs, train_cfg.decay_epochs)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    def note_unreadable(self, step: int, entries: list[tuple[str, str]]) -> None:
        """Warn once per image that failed to decode and was replaced; count every replacement."""
        self.replaced += len(entries)
        for path, reason in entries:
            if path not in self.unreadable:
                self.unreadable[path] = reason
                self.logger.warning(
                    f"step {step}: cannot decode {path} ({reason}); the next readable image of its domain is "
                    f"used instead ({len(self.unreadable)} unreadable image(s) so far)"
                )

    def close(self) -> None:
        """Close the logger and release the run folder's lock."""
        self.logger.close()
        if self.lock is not None:
            self.lock.release()


def build_run(
    config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainingRun:
    """Check the run folder and data, build networks, optimizers, data and logger; restore a checkpoint.

    The main process locks ``run_dir`` first (`FolderLock`; a second run on it fails at once) and keeps the
    lock until `run_training` returns (or `TrainingRun.close`); temporary files a killed run left in the run
    folder are removed, and on resume ``scalars.jsonl`` is cut back to the checkpoint's step.
    """
    config.validate()
    run_dir = Path(run_dir)
    check_data_sources(config)
    check_run_dir_outside_data(run_dir, {"source": config.data.source, "target": config.data.target})
    created = not run_dir.exists()
    lock = FolderLock(run_dir, "semst train").acquire() if _is_main_process() else None
    try:
        return _build_run(config, run_dir, resume=resume, progress=progress, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
            if created:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # only if still empty: nothing of this attempt is left behind
        raise


def _build_run(
    config: ExperimentConfig, run_dir: Path, *, resume: bool, progress: bool, lock: FolderLock | None
) -> TrainingRun:
    resume_from = prepare_run_dir(run_dir, resume=resume)
    if resume_from is not None:
        saved = ExperimentConfig.from_stored(
            ckpt.read_metadata(resume_from)["config"], source=str(resume_from)
        )
        if config.train.precision == "auto":  # a resumed run keeps the precision it chose
            config = config.replace({"train.precision": saved.train.precision})
        check_resumable(saved, config, resume_from)
    removed = []
    if lock is not None:  # no other process writes the run folder now
        for folder in (run_dir, *(run_dir / name for name in _RUN_FOLDERS)):
            removed += remove_temporaries(folder)

    crops = translator_class(config).crop_spec(config)
    dataset = UnpairedImages(
        config.data.source,
        config.data.target,
        crops,
        seed=config.train.seed,
        max_dataset_size=config.data.max_dataset_size,
    )
    check_images(dataset, progress=progress)

    device = resolve_device(config.train.device)
    dist = init_distributed(device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    if device.type == "cpu":
        tune_cpu_allocator()
    precision_note = None
    if config.train.precision == "auto":  # decided once, by the main process, for every process
        precision, why = dist.run_on_main(
            lambda: resolve_precision("auto", device, probe=_training_step_probe(config, device))
        )
        precision_note = f"precision auto: {precision} ({why})"
        config = config.replace({"train.precision": precision})
    networks, optimizers, scalers, average, start_step = _networks_and_state(config, device, resume_from)
    dropped = trim_scalars(run_dir / "scalars.jsonl", start_step) if dist.is_main and resume_from else 0
    sampler = StepBatchSampler(
        len(dataset),
        config.train.batch_size,
        start_step=start_step,
        rank=dist.rank,
        world_size=dist.world_size,
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
    if precision_note:
        logger.info(precision_note)
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
        average=average,
        lock=lock,
    )
    slow = slow_precision_warning(device, config.train.precision)
    warnings = [size_warning(crops, dataset), slow and f"train.precision={config.train.precision}: {slow}"]
    _log_start(run, removed=removed, dropped=dropped, warnings=[w for w in warnings if w])
    return run


def _training_step_probe(config: ExperimentConfig, device: torch.device) -> Callable[[str], float]:
    """For ``train.precision=auto``: seconds of one whole training step (the D update and the G + F update,
    every loss of the run) in a precision, on random crops of the run's sizes and batch, with freshly built
    networks of the run's config (the better of two steps after a warm-up; the global random state is left as
    it was). A whole step, not the generator alone: at the study's demo scale (96 px, 16 channels,
    multi-scale) on a CPU with AVX512_BF16 one generator pass timed 0.045 s in bf16 against 0.040 s in fp32,
    while the whole step took 0.311 s against 0.413 s (docs/benchmarks.md)."""

    def crops(generator: torch.Generator) -> DomainCrops:
        def image(side: int) -> torch.Tensor:  # (B, RGB, side, side) in [-1, 1]
            return torch.rand(config.train.batch_size, 3, side, side, generator=generator) * 2 - 1

        ms = config.multiscale
        if not ms.enabled:
            return DomainCrops(image(config.data.crop_size))
        side = max(1, ms.local_size // ms.scale)  # the local crop's side in global-crop pixels
        top = (ms.global_size - side) // 2
        box = torch.tensor([[top, top, side, side]] * config.train.batch_size)  # (B, 4): top, left, h, w
        return DomainCrops(image(ms.local_size), image(ms.global_size), box)

    def probe(precision: str) -> float:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.train.seed)
            generator = torch.Generator().manual_seed(0)
            batch = Batch(crops(generator), crops(generator)).to(device)
            networks = TrainingNetworks.from_config(config).to(device)
            optimizers = make_optimizers(networks, config.train)
            scalers = make_scalers(precision, device)
            times = []
            for step in range(3):
                start = time.perf_counter()
                train_step(
                    networks,
                    optimizers,
                    batch,
                    loss_cfg=config.loss,
                    projection_cfg=config.projection,
                    seed=config.train.seed,
                    step=step,
                    precision=precision,
                    scalers=scalers,
                )
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
        return min(times[1:])

    return probe


def _networks_and_state(
    config: ExperimentConfig, device: torch.device, resume_from: Path | None
) -> tuple[TrainingNetworks, dict, dict, PowerAverage | None, int]:
    """The training networks (seeded: identical initial weights on every process), their optimizers and
    fp16 gradient scalers, the translator's weight average (``train.ema_std`` > 0), all restored from
    ``resume_from`` if given; and the step to start from."""
    train_cfg = config.train
    torch.manual_seed(train_cfg.seed)
    networks = TrainingNetworks.from_config(config).to(device)
    optimizers = make_optimizers(networks, train_cfg)
    scalers = make_scalers(train_cfg.precision, device)
    average = PowerAverage(networks.translator, train_cfg.ema_std) if train_cfg.ema_std > 0 else None
    start_step = 0
    if resume_from is not None:
        meta = load_training_checkpoint(
            resume_from,
            networks=networks,
            optimizers=optimizers,
            scalers=scalers,
            average=average,
            device=device,
        )
        start_step = int(meta["step"])
    return networks, optimizers, scalers, average, start_step


def _log_start(run: TrainingRun, *, removed: list[Path], dropped: int, warnings: list[str]) -> None:
    """The run's first log lines: what runs where, and what was cleaned up from an interrupted run."""
    logger, dist = run.logger, run.dist
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in run.networks.parts().items()}
    logger.info(
        f"{'resuming' if run.resume_from else 'starting'} {run.config.preset} {run.networks.translator.kind} "
        f"run in {run.run_dir} on {run.device}{f' x{dist.world_size} processes' if dist.enabled else ''}: "
        f"{len(run.dataset)} images per epoch ({run.steps_per_epoch} steps), steps {run.start_step} -> "
        f"{run.last_step}; parameters " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in n_params.items())
    )
    if run.average is not None:
        logger.info(
            f"averaging the translator's weights (power-function EMA, relative std {run.average.std:g}, "
            f"gamma {run.average.gamma:.2f}): translate, refine and export use the average"
        )
    if removed:
        logger.info(
            f"removed {len(removed)} temporary file(s) left by an interrupted run: "
            + ", ".join(str(path) for path in removed[:5])
            + (" ..." if len(removed) > 5 else "")
        )
    if dropped:
        logger.info(
            f"scalars.jsonl: dropped {dropped} record(s) after step {run.start_step} (logged by the interrupted "
            "run after its last checkpoint; this run logs those steps again)"
        )
    for warning in warnings:
        logger.warning(warning)


def _log_step(
    run: TrainingRun, step: int, epoch: int, lr: float, losses: dict, window: tuple[float, int], bar
):
    values = {k: v.item() for k, v in losses.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise FloatingPointError(f"non-finite loss at step {step}: {format_losses(values)}")
    values.update(lr=lr, epoch=epoch, sec_per_step=(time.perf_counter() - window[0]) / window[1])
    if run.unreadable:
        values["data/unreadable_images"] = len(run.unreadable)
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
            try:
                batch = next(batches).to(run.device, non_blocking=True)
            except ImageLoadError as error:  # every image of a domain fails to decode
                raise TrainingDataError(f"step {step}: {error}") from error
            if batch.unreadable:
                run.note_unreadable(step, batch.unreadable)
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
            if run.average is not None:  # every process: the weights are the same on each
                run.average.update(run.networks.translator, step)
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
        if run.unreadable:
            run.logger.warning(
                f"{len(run.unreadable)} image(s) could not be decoded and were replaced {run.replaced} time(s) "
                "by the next readable image of their domain: " + ", ".join(sorted(run.unreadable))
            )
    finally:
        bar.close()
        run.close()
    return last_path if last_path is not None else run.checkpoint_dir / ckpt.checkpoint_name(step)


def train(
    config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> Path:
    """Train as ``config`` says (`build_run`, then `run_training`); returns the last checkpoint's path."""
    return run_training(build_run(config, run_dir, resume=resume, progress=progress), progress=progress)
