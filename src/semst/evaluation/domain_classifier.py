"""A small source-vs-target domain classifier: an always-available realism judge, trained here.

Realism scores need a network that knows what the target domain looks like. The classic one (Inception,
for FID/KID) is an ImageNet model whose weights must be downloaded; this one is trained in a few minutes on
a CPU from the data set itself: a compact CNN that tells crops of real SOURCE images (label 0) from crops
of real TARGET images (label 1). Crops, not whole images (see :mod:`semst.evaluation.crops`): at the default
view, 64-pixel crops of frames resized to a 256-pixel short side, it judges colour, texture, noise and
shading, not the scene layout. A translation is then scored by

- its **target share**: the fraction of its crops the classifier calls "target" (and the mean probability),
  next to the classifier's accuracy on held-out real images, which says how far to trust it; and
- **KID on the classifier's penultimate features** (:mod:`semst.evaluation.realism`), a graded distance
  that keeps measuring after the share saturates at 0 or 1.

Training is a pure function of the seed: initialisation from ``seed``, the crops of each image from
``(seed, domain, image index)``, each batch and flip from ``(seed, step)``; the same call gives the same
checkpoint on the same machine. The checkpoint is a semst safetensors file (``kind: "domain-classifier"``)
with the architecture, the crop view, the training settings and the held-out accuracy as JSON metadata;
nothing is pickled.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from semst.checkpoint import CheckpointError, load_module_state, load_tensors, read_metadata, save_checkpoint
from semst.data.images import find_images, load_rgb
from semst.evaluation.crops import CropView, grid_positions, random_crops, take_crops
from semst.files import file_sha256

__all__ = [
    "DomainClassifier",
    "DomainClassifierExtractor",
    "load_domain_classifier",
    "train_domain_classifier",
]

log = logging.getLogger(__name__)

KIND = "domain-classifier"
PREFIX = "classifier."
# Input normalisation: RGB in [0, 1] to roughly zero mean and unit scale, fixed (colour is the signal).
_MEAN, _STD = 0.5, 0.25
_ImageInput = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]  # a folder or image files


class DomainClassifier(nn.Module):
    """Crops (B, 3, S, S) RGB in [0, 1] -> "target" logits (B,); features (B, D) before the last layer.

    Structure (C = ``width``)::

        normalise -> conv3x3 (C) -> BN -> LeakyReLU
        depth x [conv3x3 stride 2 (doubling, at most max_width) -> BN -> LeakyReLU
                 -> conv3x3 -> BN -> LeakyReLU]
        global average pool -> features (B, D) -> linear -> logit

    BatchNorm (not instance or group norm, which would remove each crop's mean colour and contrast, two of
    the cues that tell the domains apart).

    Args:
        width: Channels of the first layer.
        depth: Number of stride-2 stages.
        max_width: Channel cap of the deeper stages; D = min(width * 2**depth, max_width).
    """

    def __init__(self, *, width: int = 16, depth: int = 4, max_width: int = 128) -> None:
        super().__init__()
        if width < 1 or max_width < width or not 1 <= depth <= 6:
            raise ValueError(
                f"DomainClassifier needs 1 <= width <= max_width and 1 <= depth <= 6, got {width=}, "
                f"{depth=}, {max_width=}"
            )
        self.width, self.depth, self.max_width = width, depth, max_width
        channels = [min(width * 2**i, max_width) for i in range(depth + 1)]
        layers: list[nn.Module] = [*self._unit(3, channels[0], stride=1)]
        for i in range(depth):
            layers += [*self._unit(channels[i], channels[i + 1], stride=2)]
            layers += [*self._unit(channels[i + 1], channels[i + 1], stride=1)]
        self.body = nn.Sequential(*layers)
        self.dim = channels[-1]
        self.head = nn.Linear(self.dim, 1)

    @staticmethod
    def _unit(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        ]

    def architecture(self) -> dict[str, int]:
        """The constructor arguments: ``DomainClassifier(**net.architecture())`` rebuilds the network."""
        return {"width": self.width, "depth": self.depth, "max_width": self.max_width}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D) of crops (B, 3, S, S) in [0, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"DomainClassifier expects RGB crops (B, 3, S, S), got shape {list(x.shape)}")
        return self.body((x - _MEAN) / _STD).mean(dim=(2, 3))  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ "Target" logits (B,) of crops (B, 3, S, S) in [0, 1]."""
        return self.head(self.features(x)).squeeze(1)  # (B,)


class DomainClassifierExtractor:
    """A trained domain classifier as a crop :class:`~semst.evaluation.features.FeatureExtractor`.

    ``extractor(crops)`` gives penultimate features (B, D); :meth:`target_probability` turns features into
    the classifier's probability of "target", so the realism scores get KID and the target share from one
    forward pass. Load one with :func:`load_domain_classifier`.

    Attributes:
        name: "classifier".
        dim: Feature dimension D.
        whole_images: False: it judges crops of :attr:`view`.
        view: The crop view it was trained with (scores must use the same).
        held_out: Its accuracy on held-out real images (from training), or None.
        source: The checkpoint file.
    """

    name = "classifier"
    whole_images = False

    def __init__(
        self,
        network: DomainClassifier,
        *,
        view: CropView,
        held_out: dict[str, Any] | None = None,
        source: str = "",
        digest: str = "",
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.view = view
        self.held_out = held_out
        self.source = source
        self.digest = digest
        self.dim = network.dim

    def describe(self) -> dict[str, Any]:
        """What the features depend on (the checkpoint's content hash and view), for caches and scores."""
        return {"name": self.name, "file": self.source, "sha256": self.digest, "view": self.view.as_dict()}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, D) float32 of crops (B, 3, S, S) in [0, 1]."""
        with torch.no_grad():
            return self.network.features(images.to(self.device, torch.float32)).float().cpu()

    def target_probability(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """The classifier's probability of "target" (N,) for features (N, D) it computed."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        with torch.no_grad():
            return torch.sigmoid(self.network.head(x).squeeze(1)).cpu().double().numpy()


def load_domain_classifier(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> DomainClassifierExtractor:
    """Loads a domain classifier checkpoint written by :func:`train_domain_classifier`.

    Raises:
        CheckpointError: The file is missing, not a semst checkpoint, not a domain classifier, or damaged.
    """
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("kind") != KIND:
        kind = meta.get("kind") or "translation model"
        raise CheckpointError(f"{path} is a semst {kind} checkpoint, not a domain classifier")
    try:
        network = DomainClassifier(**meta["architecture"])
        view = CropView(**meta["view"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the domain classifier metadata is invalid: {exc}") from exc
    state = {k[len(PREFIX) :]: t for k, t in load_tensors(path, prefixes=[PREFIX]).items()}
    load_module_state(network, state, what="domain classifier", path=path)
    return DomainClassifierExtractor(
        network,
        view=view,
        held_out=meta.get("held_out"),
        source=str(path),
        digest=file_sha256(path),
        device=device,
    )


def _image_list(images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        return find_images(images)
    files = [Path(p) for p in images]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
    return files


def _split(files: list[Path], fraction: float, seed: int, salt: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out) files: a seeded ``fraction`` held out, at least one each when there are two."""
    if fraction <= 0 or len(files) < 2:
        return files, []
    count = min(len(files) - 1, max(1, round(fraction * len(files))))
    order = np.random.default_rng([seed, salt, 7]).permutation(len(files))
    held = set(order[:count].tolist())
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def _crop_pool(
    files: list[Path], view: CropView, per_image: int, seed: int, salt: int, progress: bool, what: str
) -> np.ndarray:
    """``per_image`` random crops of each image at the working size: (N, S, S, 3) uint8."""
    crops = []
    for index, path in enumerate(tqdm(files, desc=f"crops of {what}", unit="img", disable=not progress)):
        image = view.resize_image(load_rgb(path))
        rng = np.random.default_rng([seed, salt, index])
        positions = random_crops(image.shape[0], image.shape[1], view.crop_size, per_image, rng)
        crops.append(take_crops(image, positions, view.crop_size))
    return np.concatenate(crops)  # (N, S, S, 3)


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 crops (B, S, S, 3) -> float (B, 3, S, S) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def _held_out_accuracy(
    network: DomainClassifier,
    files: dict[str, list[Path]],
    view: CropView,
    device: torch.device,
    batch_size: int,
) -> dict[str, Any]:
    """Accuracy on a grid of crops of held-out images: per domain and balanced (their mean)."""
    network.eval()
    result: dict[str, Any] = {}
    for domain, label in (("source", 0), ("target", 1)):
        correct = total = 0
        for path in files[domain]:
            image = view.resize_image(load_rgb(path))
            crops = take_crops(
                image, grid_positions(image.shape[0], image.shape[1], view.crop_size), view.crop_size
            )
            for start in range(0, len(crops), batch_size):
                with torch.no_grad():
                    logits = network(_to_tensor(crops[start : start + batch_size]).to(device))
                correct += int(((logits > 0).long() == label).sum())
                total += len(logits)
        result[f"{domain}_accuracy"] = correct / total
        result[f"{domain}_images"] = len(files[domain])
        result[f"{domain}_crops"] = total
    result["accuracy"] = (result["source_accuracy"] + result["target_accuracy"]) / 2
    return result


def train_domain_classifier(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    view: CropView | None = None,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    width: int = 16,
    depth: int = 4,
    max_width: int = 128,
    val_fraction: float = 0.2,
    val_source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    val_target: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    max_crops: int = 8192,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Trains a :class:`DomainClassifier` on crops of real source (0) and real target (1) images and saves it.

    Each image contributes ``min(64, max(1, max_crops // images))`` random crops, cut once (so memory is
    bounded by ``max_crops`` crops per domain whatever the data set size); each step draws half of the
    batch from each domain, flips crops horizontally at random (no colour augmentation: colour is what it
    must judge) and takes an AdamW step (linear warm-up, cosine decay), with binary cross-entropy.

    Args:
        source: Real source images: a folder (searched recursively) or a list of files.
        target: Real target images.
        out: Checkpoint to write (``.safetensors``).
        view: Crop view (working short side, crop size; default ``CropView()``: 64-pixel crops at short side
            256); stored in the checkpoint and used for scoring.
        steps: Optimizer steps.
        batch_size: Crops per step (half from each domain).
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        seed: Seed of initialisation, held-out split, crops, batches and flips.
        width: First-layer channels of the network.
        depth: Stride-2 stages.
        max_width: Channel cap (the feature dimension).
        val_fraction: Share of each domain's images held out to measure accuracy, unless ``val_source`` and
            ``val_target`` are given; 0 trains on everything and reports no accuracy.
        val_source: Held-out source images (with ``val_target``), instead of a split.
        val_target: Held-out target images.
        max_crops: Bound on the training crops kept in memory per domain.
        device: Torch device.
        progress: Show progress bars.

    Returns:
        The checkpoint path.

    Raises:
        FileNotFoundError: A folder or file does not exist.
        ValueError: Bad settings, or a folder without images.
    """
    if steps < 1 or batch_size < 2 or lr <= 0 or max_crops < 1 or not 0 <= val_fraction < 1:
        raise ValueError(
            f"train_domain_classifier needs steps >= 1, batch_size >= 2, lr > 0, max_crops >= 1 and "
            f"0 <= val_fraction < 1; got {steps=}, {batch_size=}, {lr=}, {max_crops=}, {val_fraction=}"
        )
    if (val_source is None) != (val_target is None):
        raise ValueError("give both val_source and val_target, or neither")
    view = view if view is not None else CropView()
    files, held = _training_and_held_out(source, target, val_source, val_target, val_fraction, seed)
    torch_device = torch.device(device)

    pools = {}
    for salt, domain in enumerate(("source", "target")):
        per_image = min(64, max(1, max_crops // len(files[domain])))
        pools[domain] = _crop_pool(files[domain], view, per_image, seed, 10 + salt, progress, domain)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = DomainClassifier(width=width, depth=depth, max_width=max_width)
    network.to(torch_device).train()
    log.info(
        f"training a domain classifier on {len(files['source'])} source and {len(files['target'])} target "
        f"images ({len(pools['source'])} + {len(pools['target'])} crops of {view.crop_size} px at short side "
        f"{view.short_side}): {steps} steps of {batch_size} crops"
    )
    running = _fit(network, pools, steps, batch_size, lr, weight_decay, seed, torch_device, progress)
    network.eval()
    log.info(f"domain classifier trained: smoothed loss {running:.4f}")

    training = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "source_images": len(files["source"]),
        "target_images": len(files["target"]),
        "source_crops": len(pools["source"]),
        "target_crops": len(pools["target"]),
        "final_loss": running,
    }
    return _save_classifier(network, out, view, training, held, torch_device)


def _save_classifier(
    network: DomainClassifier,
    out: str | os.PathLike[str],
    view: CropView,
    training: dict[str, Any],
    held: dict[str, list[Path]],
    device: torch.device,
) -> Path:
    """Measures the held-out accuracy (when there are held-out images of both domains) and writes the
    checkpoint with its metadata."""
    meta: dict[str, Any] = {
        "kind": KIND,
        "architecture": network.architecture(),
        "view": view.as_dict(),
        "input": "RGB float32 crops (B, 3, S, S) in [0, 1]; logit > 0 means target",
        "training": training,
        "held_out": None,
    }
    if held.get("source") and held.get("target"):
        meta["held_out"] = _held_out_accuracy(network, held, view, device, batch_size=256)
        log.info(
            f"held-out accuracy {meta['held_out']['accuracy']:.4f} (source {meta['held_out']['source_accuracy']:.4f}"
            f", target {meta['held_out']['target_accuracy']:.4f}) on {len(held['source'])} + {len(held['target'])} images"
        )
    tensors = {PREFIX + name: t for name, t in network.state_dict().items()}
    path = save_checkpoint(out, tensors, meta)
    log.info(f"domain classifier saved to {path}")
    return path


def _training_and_held_out(
    source: _ImageInput,
    target: _ImageInput,
    val_source: _ImageInput | None,
    val_target: _ImageInput | None,
    val_fraction: float,
    seed: int,
) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The training and the held-out images of each domain: the given held-out images, else a seeded split."""
    files = {"source": _image_list(source), "target": _image_list(target)}
    held: dict[str, list[Path]] = {}
    if val_source is not None and val_target is not None:
        held = {"source": _image_list(val_source), "target": _image_list(val_target)}
    else:
        for salt, domain in enumerate(("source", "target")):
            files[domain], held[domain] = _split(files[domain], val_fraction, seed, salt)
    return files, held


def _fit(
    network: DomainClassifier,
    pools: dict[str, np.ndarray],
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    progress: bool,
) -> float:
    """AdamW steps (linear warm-up, cosine decay) on batches drawn half from each domain's crop pool
    (N, S, S, 3), flipped at random with the generator of (seed, step); returns the smoothed loss."""
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, min(50, steps // 10))
    half = batch_size // 2
    labels = torch.cat([torch.zeros(half), torch.ones(batch_size - half)]).to(device)
    running = 0.0
    bar = tqdm(
        total=steps, desc="train domain classifier", unit="step", disable=not progress, dynamic_ncols=True
    )
    try:
        for step in range(steps):
            rng = np.random.default_rng([seed, step, 3])
            picks = [
                pools["source"][rng.integers(0, len(pools["source"]), size=half)],
                pools["target"][rng.integers(0, len(pools["target"]), size=batch_size - half)],
            ]
            crops = np.concatenate(picks)  # (B, S, S, 3)
            flip = rng.random(batch_size) < 0.5
            crops[flip] = crops[flip, :, ::-1]
            progress_fraction = (step - warmup) / max(1, steps - warmup)
            factor = (
                (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * progress_fraction))
            )
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            loss = F.binary_cross_entropy_with_logits(network(_to_tensor(crops).to(device)), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"domain classifier loss became {loss.item()} at step {step}; lower {lr=}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", refresh=False)
    finally:
        bar.close()
    return running
