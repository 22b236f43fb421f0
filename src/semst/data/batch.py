"""Typed training samples and batches: what the data pipeline hands to a translator's training step.

A translator trains on crops. Single-scale training cuts one crop per image; multi-scale training (SemST
Eq. 4-5) cuts a full-resolution local crop and a downsampled global crop around it, and records where the
local crop lies in the global crop. `DomainCrops` holds either kind, so the same `Sample` and `Batch` types
serve both translators (semst.translators), and a field that a translator does not use is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["Batch", "DomainCrops", "Sample", "collate"]


@dataclass
class DomainCrops:
    """The crops of one domain: unbatched (one image, no leading B) in a `Sample`, batched in a `Batch`.

    Attributes:
        crop: (B, 3, h, w) in [-1, 1]: the single-scale crop, or the full-resolution local crop X_l.
        global_crop: (B, 3, hg, wg) in [-1, 1]: the downsampled global crop X_g (multi-scale), else None.
        box: (B, 4) int64: the local crop in global-crop pixels as (top, left, height, width)
            (multi-scale), else None.
    """

    crop: torch.Tensor
    global_crop: torch.Tensor | None = None
    box: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DomainCrops:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return DomainCrops(move(self.crop), move(self.global_crop), move(self.box))

    @property
    def size(self) -> int:
        """Number of images (the leading dimension of a batch)."""
        return self.crop.shape[0]

    @staticmethod
    def stack(items: Sequence[DomainCrops], paths: Sequence[str], domain: str) -> DomainCrops:
        """Batch unbatched crops; an error names the files when their sizes differ."""

        def stacked(name: str) -> torch.Tensor | None:
            tensors = [getattr(item, name) for item in items]
            if tensors[0] is None:
                return None
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) > 1:
                raise ValueError(
                    f"Cannot batch {domain} images of different sizes {sorted(shapes)} (files {list(paths)}); "
                    "use a preprocess mode that crops to a fixed size, or a batch size of 1."
                )
            return torch.stack(tensors)  # (B, ...)

        return DomainCrops(stacked("crop"), stacked("global_crop"), stacked("box"))


@dataclass
class Sample:
    """One training item: a source and a target image's crops, and where they came from.

    ``unreadable`` lists the ``(file, reason)`` of images that were drawn for this item but could not be
    decoded, and were replaced by the next readable image of their domain (semst.data.unpaired).
    """

    source: DomainCrops
    target: DomainCrops
    source_path: str
    target_path: str
    epoch: int
    position: int
    unreadable: tuple[tuple[str, str], ...] = ()


@dataclass
class Batch:
    """A batch of samples, as the training step takes it.

    Attributes:
        source, target: batched `DomainCrops` of the source (X) and target (Y) domains.
        source_paths, target_paths: the image files, per sample.
        epoch, position: (B,) int64, the samples' keys (semst.data.unpaired).
        unreadable: ``(file, reason)`` of the images that could not be decoded and were replaced (`Sample`).
    """

    source: DomainCrops
    target: DomainCrops
    source_paths: list[str] = field(default_factory=list)
    target_paths: list[str] = field(default_factory=list)
    epoch: torch.Tensor | None = None
    position: torch.Tensor | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with its image tensors on ``device`` (keys and paths stay where they are)."""
        return Batch(
            self.source.to(device, non_blocking),
            self.target.to(device, non_blocking),
            self.source_paths,
            self.target_paths,
            self.epoch,
            self.position,
            self.unreadable,
        )

    @property
    def size(self) -> int:
        return self.source.size


def collate(items: Sequence[Sample]) -> Batch:
    """Batches `Sample`s (the DataLoader's ``collate_fn``); images of a domain must share their size."""
    if not items:
        raise ValueError("Cannot collate an empty batch.")
    source_paths = [item.source_path for item in items]
    target_paths = [item.target_path for item in items]
    return Batch(
        source=DomainCrops.stack([item.source for item in items], source_paths, "source"),
        target=DomainCrops.stack([item.target for item in items], target_paths, "target"),
        source_paths=source_paths,
        target_paths=target_paths,
        epoch=torch.tensor([item.epoch for item in items], dtype=torch.int64),  # (B,)
        position=torch.tensor([item.position for item in items], dtype=torch.int64),  # (B,)
        unreadable=[entry for item in items for entry in item.unreadable],
    )
