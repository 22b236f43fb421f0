"""Training the evaluation segmenter on labelled target-domain images (the paper's FCN-8s, semst's U-Net).

The semantic-distortion protocol needs a segmenter trained on the TARGET domain; :func:`train_segmenter`
trains a :class:`~semst.segmentation.network.SegmentationUNet` on (image, label map) pairs with the
hyper-parameters of a :class:`SegmenterTrainConfig` and writes a safe checkpoint whose metadata holds that
config (``meta["config"]``; :meth:`SegmenterTrainConfig.from_checkpoint_meta` reads it back). Label maps
are single-channel PNGs (mode ``L`` or ``P``) whose pixel values are class ids, with 255 meaning "ignore"
(Cityscapes trainIds 0..18 for the paper's GTA -> Cityscapes task).

Randomness is a pure function of the seed: the weight initialisation is seeded by ``seed``, the sample
order by ``(seed, epoch)`` and each sample's augmentation by ``(seed, step, position in batch)``, so the
same call gives bit-identical weights on the same machine.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from semst.data.images import load_rgb
from semst.data.labels import IGNORE_INDEX, load_label_map
from semst.evaluation.segmentation import evaluate_segmentation
from semst.segmentation.loading import save_segmenter
from semst.segmentation.network import SegmentationUNet
from semst.segmentation.photometric import photometric_distortion

__all__ = ["IGNORE_INDEX", "SegmenterTrainConfig", "train_segmenter"]

log = logging.getLogger("semst.segmenter")

# The training settings that checkpoints written before SegmenterTrainConfig held as top-level metadata keys.
_FLAT_META_KEYS = ("steps", "crop_size", "batch_size", "lr", "weight_decay", "scale_range", "seed")


@dataclass(frozen=True)
class SegmenterTrainConfig:
    """Hyper-parameters of :func:`train_segmenter`; the defaults are those of ``semst segmenter train``.

    ``crop_size`` may be given as an int (a square), ``crop_size`` and ``scale_range`` as lists (as JSON gives
    them back); both are stored as tuples. Invalid values raise one ``ValueError`` that lists every problem
    (the network's own arguments ``width``, ``depth`` and ``norm`` are checked by :class:`SegmentationUNet`).
    """

    num_classes: int = 19  # output classes (Cityscapes trainIds: 19)
    steps: int = 2000  # optimizer steps
    crop_size: tuple[int, int] = (256, 256)  # training crop (height, width); an int is a square
    batch_size: int = 4  # crops per step
    lr: float = 2e-3  # peak learning rate (AdamW, linear warm-up, poly decay)
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int | None = None  # linear warm-up steps; None: 5% of steps, at most 100
    scale_range: tuple[float, float] = (0.75, 1.25)  # range of the random rescaling before cropping
    seed: int = 0  # seed of the initialisation, the sample order and the augmentation
    width: int = 24  # channels of the first stage (doubles per stage), see SegmentationUNet
    depth: int = 4  # downsampling stages
    norm: str = "group"  # "group" or "batch"
    photometric: bool = False  # colour augmentation (semst.segmentation.photometric)
    log_every: int = 50  # log the mean loss every this many steps

    def __post_init__(self) -> None:
        crop = (self.crop_size, self.crop_size) if isinstance(self.crop_size, int) else tuple(self.crop_size)
        object.__setattr__(self, "crop_size", crop)
        object.__setattr__(self, "scale_range", tuple(self.scale_range))
        problems = []
        if len(crop) != 2 or not all(isinstance(v, int) and v >= 1 for v in crop):
            problems.append(f"crop_size must be a positive int or (height, width), got {crop!r}")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0 or None, got {self.warmup_steps}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            problems.append(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if problems:
            raise ValueError("invalid segmenter training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmenterTrainConfig:
        """Builds a config from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown segmenter training settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_checkpoint_meta(cls, meta: Mapping[str, Any]) -> SegmenterTrainConfig | None:
        """The config a segmenter checkpoint was trained with, from its metadata (``read_metadata``).

        Checkpoints written before the config was saved hold the training settings as top-level keys; the
        config is rebuilt from those and the architecture (``warmup_steps`` and ``log_every`` were not
        recorded: they get their defaults, which old versions always used for the warm-up).

        Returns:
            The config, or ``None`` for a checkpoint that does not say how it was trained (saved with
            :func:`~semst.segmentation.loading.save_segmenter` directly).
        """
        if "config" in meta:
            return cls.from_dict(meta["config"])
        if not all(key in meta for key in _FLAT_META_KEYS):
            return None
        architecture = meta.get("architecture") or {}
        return cls.from_dict(
            {
                "num_classes": meta["num_classes"],
                **{key: meta[key] for key in _FLAT_META_KEYS},
                **{key: architecture[key] for key in ("width", "depth", "norm") if key in architecture},
            }
        )


def _load_label_map(path: Path, num_classes: int) -> np.ndarray:
    """Reads a label map as (H, W) uint8 class ids; values must be < ``num_classes`` or 255 (ignore)."""
    values = load_label_map(path)
    invalid = (values >= num_classes) & (values != IGNORE_INDEX)
    if invalid.any():
        found = sorted(int(v) for v in np.unique(values[invalid]))[:10]
        raise ValueError(
            f"label map {path} contains values {found}, which are neither class ids 0..{num_classes - 1} "
            f"nor {IGNORE_INDEX} (ignore); is num_classes={num_classes} right, or does the map hold "
            f"label ids instead of train ids?"
        )
    return values


def _check_pairs(pairs: Sequence[tuple[Path, Path]], what: str) -> list[tuple[Path, Path]]:
    """Checks that every file exists and each label map has its image's size (headers only, no decoding)."""
    checked = []
    for image_path, label_path in pairs:
        image_path, label_path = Path(image_path), Path(label_path)
        for path, kind in ((image_path, "image"), (label_path, "label map")):
            if not path.is_file():
                raise FileNotFoundError(f"{what}: {kind} {path} does not exist")
        try:
            with Image.open(image_path) as image, Image.open(label_path) as label:
                image_size, label_size = image.size, label.size
        except Exception as exc:
            raise ValueError(
                f"{what}: {image_path} or {label_path} is not a readable image: {type(exc).__name__}: {exc}"
            ) from exc
        if image_size != label_size:
            raise ValueError(
                f"{what}: image {image_path} is {image_size[0]}x{image_size[1]} but its label map "
                f"{label_path} is {label_size[0]}x{label_size[1]}; they must have the same size"
            )
        checked.append((image_path, label_path))
    return checked


def _augment(
    image: Image.Image,
    label: np.ndarray,
    crop: tuple[int, int],
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale jitter, random crop (padded with ignore where the image is smaller) and horizontal flip.

    Returns:
        The image crop (h, w, 3) uint8 and the label crop (h, w) uint8.
    """
    scale = rng.uniform(*scale_range)
    width, height = image.size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
        # Labels are ids, never interpolated: NEAREST only.
        label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
    pixels = np.asarray(image)  # (H, W, 3)
    crop_h, crop_w = crop
    top = int(rng.integers(0, max(0, pixels.shape[0] - crop_h) + 1))
    left = int(rng.integers(0, max(0, pixels.shape[1] - crop_w) + 1))
    pixels = pixels[top : top + crop_h, left : left + crop_w]
    label = label[top : top + crop_h, left : left + crop_w]
    out_image = np.zeros((crop_h, crop_w, 3), dtype=np.uint8)
    out_label = np.full((crop_h, crop_w), IGNORE_INDEX, dtype=np.uint8)
    out_image[: pixels.shape[0], : pixels.shape[1]] = pixels
    out_label[: label.shape[0], : label.shape[1]] = label
    if rng.random() < 0.5:
        out_image, out_label = out_image[:, ::-1], out_label[:, ::-1]
    return out_image, out_label


def _to_batch(images: list[np.ndarray], labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (h, w, 3) images and (h, w) labels -> (B, 3, h, w) float32 in [0, 1] and (B, h, w) int64."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, h, w)
    y = torch.from_numpy(np.stack(labels).astype(np.int64))  # (B, h, w)
    return x.contiguous(), y


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then poly decay ``(1 - t)**0.9`` (DeepLab's schedule) to zero at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return (1.0 - progress) ** 0.9


def _evaluate(
    network: SegmentationUNet,
    pairs: Sequence[tuple[Path, Path]],
    num_classes: int,
    device: torch.device,
    progress: bool,
) -> dict[str, object]:
    """Segments each validation image whole and scores it (semst.evaluation, one confusion matrix)."""
    was_training = network.training
    network.eval()
    try:
        scores = evaluate_segmentation(
            network, pairs, num_classes=num_classes, device=device, progress=progress
        )
    finally:
        network.train(was_training)
    return {
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_iou": scores["mean_iou"],
        "class_iou": scores["per_class_iou"],
    }


def train_segmenter(
    train_pairs: Sequence[tuple[Path, Path]],
    config: SegmenterTrainConfig,
    *,
    out: Path,
    val_pairs: Sequence[tuple[Path, Path]] | None = None,
    class_names: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Trains a :class:`SegmentationUNet` on labelled images and saves it as a semst segmenter checkpoint.

    AdamW with linear warm-up and poly decay, cross-entropy with ``ignore_index=255``. Each sample is a
    random crop of a randomly rescaled (``config.scale_range``), randomly flipped image, with a random
    photometric distortion where ``config.photometric`` (`semst.segmentation.photometric`); label maps are
    resized with nearest-neighbour only, and crop parts outside a small image are ignored.

    Args:
        train_pairs: (image, label map) files. Images in any format :func:`semst.data.images.load_rgb` reads;
            label maps single-channel (mode L or P) with class ids and 255 for "ignore", the image's size.
        config: The hyper-parameters; stored in the checkpoint metadata as ``config``.
        out: Checkpoint file to write (``.safetensors``); its folder is created.
        val_pairs: Optional (image, label map) files scored after training, whole images at their stored
            size; the pixel accuracy, mean IoU and per-class IoU go into the checkpoint metadata ``val``.
        class_names: Optional names of the ``config.num_classes`` classes, stored in the checkpoint.
        device: Torch device to train on.
        progress: Show a tqdm progress bar (log lines go to ``logging.getLogger("semst.segmenter")``).

    Returns:
        The checkpoint path ``out``.

    Raises:
        FileNotFoundError: An image or label map is missing.
        ValueError: No pairs, class names that do not fit, a bad architecture, or a label map that is not
            single-channel, has another size than its image, or holds values other than class ids and 255.
        ImageLoadError: A label map cannot be decoded (checked before training), or an image (when drawn).
    """
    num_classes = config.num_classes
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but num_classes is {num_classes}")
    if not train_pairs:
        raise ValueError("train_segmenter needs at least one (image, label map) pair")
    train_files = _check_pairs(train_pairs, "training data")
    val_files = _check_pairs(val_pairs, "validation data") if val_pairs else []
    # Label maps are decoded and their ids checked before the first step, so that a truncated map or a wrong
    # id fails now, naming the file, and not after an hour of training (images: headers only, above).
    for _, label_path in tqdm(
        train_files + val_files, desc="check label maps", unit="map", disable=not progress, leave=False
    ):
        _load_label_map(label_path, num_classes)
    torch_device = torch.device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = SegmentationUNet(num_classes, width=config.width, depth=config.depth, norm=config.norm)
    network.to(torch_device).train()
    _optimize(network, train_files, config, torch_device, progress)
    network.eval()

    meta: dict[str, object] = {
        "config": config.to_dict(),
        "train_pairs": len(train_files),
        "ignore_index": IGNORE_INDEX,
    }
    if val_files:
        scores = _evaluate(network, val_files, num_classes, torch_device, progress)
        meta["val"] = {"pairs": len(val_files), **scores}
        log.info(
            f"validation on {len(val_files)} images: pixel accuracy {scores['pixel_accuracy']:.4f}, "
            f"mean IoU {scores['mean_iou']:.4f}"
        )
    path = save_segmenter(network, out, class_names=class_names, extra_meta=meta)
    log.info(f"segmenter saved to {path}")
    return path


def _optimize(
    network: SegmentationUNet,
    train_files: Sequence[tuple[Path, Path]],
    config: SegmenterTrainConfig,
    device: torch.device,
    progress: bool,
) -> None:
    """Runs `config.steps` AdamW steps on `network` (cross-entropy, warm-up then poly decay), logging the mean
    loss every `config.log_every` steps."""
    steps, batch_size, crop = config.steps, config.batch_size, config.crop_size
    warmup = min(100, max(1, steps // 20)) if config.warmup_steps is None else max(1, config.warmup_steps)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    parameters = sum(p.numel() for p in network.parameters())
    log.info(
        f"training a segmenter ({parameters / 1e6:.2f} M parameters, {network.architecture()}) on "
        f"{len(train_files)} images: {steps} steps, batch {batch_size}, crop {crop[0]}x{crop[1]} (HxW)"
    )
    order = _SampleOrder(len(train_files), config.seed)
    window_loss, window_steps, start = 0.0, 0, time.perf_counter()
    bar = tqdm(total=steps, desc="train segmenter", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        for step in range(steps):
            x, y = _training_batch(train_files, order, step, config)
            x, y = x.to(device), y.to(device)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(step, steps, warmup)
            bar.update(1)
            if bool((y == IGNORE_INDEX).all()):
                # Every pixel is ignored (the loss would be 0/0): nothing to learn, skip the step.
                continue
            loss = F.cross_entropy(network(x), y, ignore_index=IGNORE_INDEX)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"segmenter loss became {loss.item()} at step {step}; lower lr={config.lr}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            window_loss += loss.item()
            window_steps += 1
            if (step + 1) % config.log_every == 0 or step + 1 == steps:
                elapsed = time.perf_counter() - start
                log.info(
                    f"step {step + 1}/{steps}: loss {window_loss / window_steps:.4f}, "
                    f"lr {optimizer.param_groups[0]['lr']:.2e}, {elapsed / window_steps:.3f} s/step"
                )
                bar.set_postfix(loss=f"{window_loss / window_steps:.3f}")
                window_loss, window_steps, start = 0.0, 0, time.perf_counter()
    finally:
        bar.close()


class _SampleOrder:
    """Which training file the n-th sample is: a permutation per epoch seeded by (seed, epoch); the current
    epoch's permutation is kept."""

    def __init__(self, count: int, seed: int):
        self.count, self.seed = count, seed
        self._epoch = -1
        self._order: np.ndarray = np.empty(0, dtype=np.int64)

    def __call__(self, sample: int) -> int:
        epoch = sample // self.count
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.count)
            self._epoch = epoch
        return int(self._order[sample % self.count])


def _training_batch(
    train_files: Sequence[tuple[Path, Path]], order: _SampleOrder, step: int, config: SegmenterTrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented crops of one step: (B, 3, h, w) float32 images in [0, 1] and (B, h, w) int64 labels.

    Sample `step * batch_size + position` is augmented with the generator seeded by (seed, step, position).
    """
    images, labels = [], []
    for position in range(config.batch_size):
        image_path, label_path = train_files[order(step * config.batch_size + position)]
        rng = np.random.default_rng([config.seed, step, position, 1])
        image, label = _augment(
            load_rgb(image_path),
            _load_label_map(label_path, config.num_classes),
            config.crop_size,
            config.scale_range,
            rng,
        )
        if config.photometric:
            image = photometric_distortion(image, rng)
        images.append(image)
        labels.append(label)
    return _to_batch(images, labels)
