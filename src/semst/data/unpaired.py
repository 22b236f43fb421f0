"""Unpaired two-domain training data (CUT's ``unaligned`` dataset) with a deterministic, resumable order.

An item is addressed by a key ``(epoch, position)`` instead of a plain index, and everything random about it
(which source image, which target image, the crops and flips) is a pure function of ``(seed, epoch,
position)``. The order of training data therefore does not depend on the number of DataLoader workers, on how
the global batch is split between DDP processes, or on whether training was interrupted and resumed:
:class:`StepBatchSampler` maps an optimisation step to its keys arithmetically.

Typical use::

    dataset = UnpairedImages("data/trainA", "data/trainB", seed=cfg.seed)
    sampler = StepBatchSampler(len(dataset), batch_size=1, start_step=resumed, rank=rank, world_size=world)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=4, collate_fn=collate_unpaired)
    for step, batch in zip(range(resumed, total_steps), loader):
        ...
"""

from __future__ import annotations

import operator
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from semst.data.images import find_images, load_rgb
from semst.data.transforms import PREPROCESS_MODES, multiscale_train_transform, train_transform

__all__ = ["StepBatchSampler", "UnpairedImages", "collate_unpaired", "epoch_of_step"]

# Every RNG is seeded with four words [seed, epoch, position, stream]. A fixed length matters: numpy's
# SeedSequence pads short entropy with zeros, so [s, e] and [s, e, 0, 0] would give the same stream.
_STREAM_TARGET_INDEX = 0  # [seed, epoch, position, 0] is the same stream as [seed, epoch, position].
_STREAM_SOURCE_AUGMENT = 1
_STREAM_TARGET_AUGMENT = 2
_STREAM_PERMUTATION = 3  # Seeded with position 0: the permutation belongs to the epoch, not a position.
_PERMUTATION_CACHE_SIZE = 2
_MAX_SEED = 2**32  # Larger values would be split into several SeedSequence words and could collide.


def _check_int(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.") from None
    if value < minimum or (maximum is not None and value >= maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum})"
        raise ValueError(f"{name} must be {allowed}, got {value}.")
    return value


def epoch_of_step(step: int, steps_per_epoch: int) -> int:
    """Returns the epoch (counted from 0) that an optimisation step (counted from 0) belongs to.

    Args:
        step: The step index, ``>= 0``.
        steps_per_epoch: Steps in one epoch, ``>= 1`` (see :attr:`StepBatchSampler.steps_per_epoch`).

    Returns:
        ``step // steps_per_epoch``.
    """
    step = _check_int(step, "step", minimum=0)
    steps_per_epoch = _check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    return step // steps_per_epoch


def _find_domain_images(directory: str | os.PathLike[str], domain: str) -> list[Path]:
    """The images of a folder (searched recursively), or of a data set named ``NAME:PATH`` such as
    ``gta5:/data/GTA5`` or ``cityscapes:/data/cityscapes`` (its usual training split; semst.data.datasets)."""
    from semst.data.datasets import is_dataset_spec, open_dataset

    if is_dataset_spec(directory):
        try:
            return [sample.image for sample in open_dataset(str(directory)).samples()]
        except ValueError as error:
            raise ValueError(f"The {domain} data set cannot be used: {error}") from error
    try:
        return find_images(directory)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"The {domain} images cannot be found: {error}") from error
    except ValueError as error:
        raise ValueError(f"The {domain} images cannot be used: {error}") from error


class UnpairedImages(Dataset[dict[str, Any]]):
    """Pairs of unrelated images from a source and a target domain, addressed by ``(epoch, position)``.

    The epoch length is ``max(n_source, n_target)`` as in CUT. For the item at ``(epoch, position)``:

    - the source image is ``permutation[position] % n_source``, where ``permutation`` is a random permutation
      of ``range(len(self))`` drawn once per ``(seed, epoch)`` (generator ``[seed, epoch, 0, 3]``); when the
      source domain is the larger one, every source image appears exactly once per epoch;
    - the target image is drawn uniformly at random from the RNG seeded by ``(seed, epoch, position)``,
      independently of the source (CUT's ``serial_batches=False``);
    - crop and flip come from :func:`~semst.data.transforms.train_transform` with generators seeded by
      ``np.random.default_rng([seed, epoch, position, k])``, ``k = 1`` for the source and ``k = 2`` for the
      target.

    Nothing is drawn from global random state, so results do not depend on worker processes or call order.

    Attributes:
        source_paths: The source images, sorted (see :func:`~semst.data.images.find_images`), after
            truncation.
        target_paths: The target images, likewise.
    """

    def __init__(
        self,
        source_dir: str | os.PathLike[str],
        target_dir: str | os.PathLike[str],
        *,
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        seed: int = 0,
        max_dataset_size: int | None = None,
        steady_from_epoch: int | None = None,
        multiscale: dict[str, Any] | None = None,
    ) -> None:
        """Finds the images of both domains.

        Args:
            source_dir: Directory (searched recursively) or single image file of the source domain.
            target_dir: Directory or single image file of the target domain.
            preprocess: One of :data:`~semst.data.transforms.PREPROCESS_MODES`.
            load_size: Resize size for the ``resize``/``scale_width`` modes.
            crop_size: Random crop size for the crop modes.
            flip: Whether to flip images horizontally at random.
            seed: Seed of all data randomness, in ``[0, 2**32)``.
            max_dataset_size: If given, only the first ``max_dataset_size`` images (in sorted order) of each
                domain are used.
            steady_from_epoch: If given, from this epoch on ``load_size`` is replaced by ``crop_size``, which
                turns off the resize jitter (CUT does this for the learning-rate decay phase).
            multiscale: If given, keyword arguments of
                :func:`~semst.data.transforms.multiscale_train_transform` (``global_size``, ``scale``,
                ``local_size``, ``image_width``): items then hold an aligned global/local crop pair per domain
                instead of one crop, and ``preprocess``/``load_size``/``crop_size`` are not used.

        Raises:
            FileNotFoundError: A domain's path does not exist (the message names the domain and the path).
            ValueError: A domain has no images, or an argument is out of range.
        """
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(
                f"Unknown preprocess mode {preprocess!r}; expected one of {', '.join(PREPROCESS_MODES)}."
            )
        self.preprocess = preprocess
        self.load_size = _check_int(load_size, "load_size", minimum=1)
        self.crop_size = _check_int(crop_size, "crop_size", minimum=1)
        self.flip = bool(flip)
        self.seed = _check_int(seed, "seed", minimum=0, maximum=_MAX_SEED)
        if max_dataset_size is not None:
            max_dataset_size = _check_int(max_dataset_size, "max_dataset_size", minimum=1)
        if steady_from_epoch is not None:
            steady_from_epoch = _check_int(steady_from_epoch, "steady_from_epoch", minimum=0)
        self.max_dataset_size = max_dataset_size
        self.steady_from_epoch = steady_from_epoch
        self.multiscale = dict(multiscale) if multiscale is not None else None

        source_paths = _find_domain_images(source_dir, "source")
        target_paths = _find_domain_images(target_dir, "target")
        if max_dataset_size is not None:
            source_paths = source_paths[:max_dataset_size]
            target_paths = target_paths[:max_dataset_size]
        self.source_paths: list[Path] = source_paths
        self.target_paths: list[Path] = target_paths
        self._permutations: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        """Returns the epoch length, ``max(n_source, n_target)``."""
        return max(len(self.source_paths), len(self.target_paths))

    def _permutation(self, epoch: int) -> np.ndarray:
        """Returns the epoch's permutation of ``range(len(self))``, keeping the last few epochs cached."""
        permutation = self._permutations.get(epoch)
        if permutation is None:
            rng = np.random.default_rng([self.seed, epoch, 0, _STREAM_PERMUTATION])
            permutation = rng.permutation(len(self))
            self._permutations[epoch] = permutation
            while len(self._permutations) > _PERMUTATION_CACHE_SIZE:
                self._permutations.popitem(last=False)
        else:
            self._permutations.move_to_end(epoch)
        return permutation

    def indices(self, epoch: int, position: int) -> tuple[int, int]:
        """Returns the (source, target) image indices for a key, without loading anything.

        Args:
            epoch: The epoch, ``>= 0``.
            position: The position in the epoch, in ``[0, len(self))``.

        Returns:
            Indices into :attr:`source_paths` and :attr:`target_paths`.
        """
        epoch = _check_int(epoch, "epoch", minimum=0)
        position = _check_int(position, "position", minimum=0, maximum=len(self))
        source_index = int(self._permutation(epoch)[position]) % len(self.source_paths)
        target_rng = np.random.default_rng([self.seed, epoch, position, _STREAM_TARGET_INDEX])
        target_index = int(target_rng.integers(0, len(self.target_paths)))
        return source_index, target_index

    def load_size_for_epoch(self, epoch: int) -> int:
        """Returns the resize size used in an epoch (``crop_size`` once ``steady_from_epoch`` is reached)."""
        if self.steady_from_epoch is not None and epoch >= self.steady_from_epoch:
            return self.crop_size
        return self.load_size

    def _transform(self, path: Path, epoch: int, position: int, stream: int) -> Any:
        rng = np.random.default_rng([self.seed, epoch, position, stream])
        if self.multiscale is not None:
            return multiscale_train_transform(load_rgb(path), rng, flip=self.flip, **self.multiscale)
        return train_transform(
            load_rgb(path),
            rng,
            preprocess=self.preprocess,
            load_size=self.load_size_for_epoch(epoch),
            crop_size=self.crop_size,
            flip=self.flip,
        )

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        """Loads and augments the pair at ``key = (epoch, position)``.

        Args:
            key: ``(epoch, position)`` with ``epoch >= 0`` and ``0 <= position < len(self)``.

        Returns:
            ``{"source": (3, h, w) tensor, "target": (3, h, w) tensor, "source_path": str, "target_path": str,
            "epoch": int, "position": int}``, tensors in ``[-1, 1]``. In multi-scale mode ``"source"`` is
            replaced by ``"source_global"``, ``"source_local"`` and ``"source_box"`` (see
            :func:`~semst.data.transforms.multiscale_train_transform`), and likewise for ``"target"``.

        Raises:
            TypeError: ``key`` is not an ``(epoch, position)`` pair.
            ValueError: ``epoch`` or ``position`` is out of range.
            semst.data.images.ImageLoadError: An image file is corrupt or unreadable (the message names it).
        """
        if not isinstance(key, Sequence) or isinstance(key, str) or len(key) != 2:
            raise TypeError(
                f"UnpairedImages is indexed by (epoch, position) pairs, got {key!r}; "
                "use StepBatchSampler as the DataLoader's batch_sampler."
            )
        epoch = _check_int(key[0], "epoch", minimum=0)
        position = _check_int(key[1], "position", minimum=0, maximum=len(self))
        source_index, target_index = self.indices(epoch, position)
        source_path = self.source_paths[source_index]
        target_path = self.target_paths[target_index]
        item: dict[str, Any] = {}
        for domain, path, stream in (
            ("source", source_path, _STREAM_SOURCE_AUGMENT),
            ("target", target_path, _STREAM_TARGET_AUGMENT),
        ):
            crops = self._transform(path, epoch, position, stream)
            if isinstance(crops, dict):  # multi-scale: source_global, source_local, source_box, ...
                item.update({f"{domain}_{name}": value for name, value in crops.items()})
            else:
                item[domain] = crops
        item.update(
            source_path=str(source_path), target_path=str(target_path), epoch=epoch, position=position
        )
        return item


def collate_unpaired(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batches items of :class:`UnpairedImages`; the same result as PyTorch's default collate, clearer errors.

    Args:
        items: Items returned by :meth:`UnpairedImages.__getitem__`.

    Returns:
        ``{"source": (B, 3, h, w), "target": (B, 3, h, w), "source_path": list[str], "target_path": list[str],
        "epoch": (B,) int64, "position": (B,) int64}``; in multi-scale mode every ``<domain>_global``,
        ``<domain>_local`` and ``<domain>_box`` tensor is stacked likewise.

    Raises:
        ValueError: ``items`` is empty, or the images of a domain differ in size (possible with the ``none``
            and ``scale_width`` modes, which do not crop).
    """
    if not items:
        raise ValueError("Cannot collate an empty batch.")
    batch: dict[str, Any] = {}
    for name in items[0]:
        if not isinstance(items[0][name], torch.Tensor):
            continue
        tensors = [item[name] for item in items]
        shapes = {tuple(tensor.shape) for tensor in tensors}
        if len(shapes) > 1:
            domain = name.split("_")[0]
            paths = [item[f"{domain}_path"] for item in items]
            raise ValueError(
                f"Cannot batch {domain} images of different sizes {sorted(shapes)} (files {paths}); use a "
                "preprocess mode that crops to a fixed size, or a batch size of 1."
            )
        batch[name] = torch.stack(tensors)  # (B, ...)
    for name in ("source_path", "target_path"):
        batch[name] = [item[name] for item in items]
    for name in ("epoch", "position"):
        batch[name] = torch.tensor([item[name] for item in items], dtype=torch.int64)  # (B,)
    return batch


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for every optimisation step, this process's list of ``(epoch, position)`` keys, forever.

    The global batch of a step is ``batch_size * world_size`` consecutive positions of one epoch; rank ``r``
    takes the ``r``-th slice of ``batch_size`` of them. Step ``s`` covers epoch ``s // steps_per_epoch``,
    positions from ``(s % steps_per_epoch) * global_batch``. Keys depend only on the step, so resuming at
    ``start_step`` continues exactly where an uninterrupted run would be, and the global batch is the same for
    any split into processes with the same global batch size.

    ``steps_per_epoch`` is ``dataset_len // global_batch`` with ``drop_last`` (CUT drops the incomplete last
    batch) and ``ceil(dataset_len / global_batch)`` without it; in the latter case the last step of an epoch
    is filled up with positions wrapped around modulo ``dataset_len`` so every step has the full batch (DDP
    needs equal batch counts on all ranks). If ``dataset_len < global_batch``, an epoch is a single step and
    its positions wrap around modulo ``dataset_len`` as well, so some items appear twice in that step.

    Iteration never ends; the training loop decides when to stop. Use as
    ``DataLoader(dataset, batch_sampler=sampler, ...)``.
    """

    def __init__(
        self,
        dataset_len: int,
        batch_size: int,
        *,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        """Creates the sampler.

        Args:
            dataset_len: ``len(dataset)``, the epoch length in items.
            batch_size: Items per step for this process.
            start_step: The first step to yield (the number of steps already done when resuming).
            rank: This process's rank in ``[0, world_size)``.
            world_size: The number of processes sharing each global batch.
            drop_last: Whether to drop an incomplete last global batch of each epoch instead of wrapping
                around.

        Raises:
            ValueError: An argument is out of range.
        """
        self.dataset_len = _check_int(dataset_len, "dataset_len", minimum=1)
        self.batch_size = _check_int(batch_size, "batch_size", minimum=1)
        self.start_step = _check_int(start_step, "start_step", minimum=0)
        self.world_size = _check_int(world_size, "world_size", minimum=1)
        self.rank = _check_int(rank, "rank", minimum=0, maximum=self.world_size)
        self.drop_last = bool(drop_last)
        self.global_batch_size = self.batch_size * self.world_size
        if self.drop_last:
            steps = self.dataset_len // self.global_batch_size
        else:
            steps = -(-self.dataset_len // self.global_batch_size)
        self._steps_per_epoch = max(1, steps)

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch (at least 1)."""
        return self._steps_per_epoch

    def keys_for_step(self, step: int) -> list[tuple[int, int]]:
        """Returns this process's ``(epoch, position)`` keys for one step.

        Args:
            step: The step index, ``>= 0``.

        Returns:
            ``batch_size`` keys.
        """
        epoch = epoch_of_step(step, self._steps_per_epoch)
        first = (step % self._steps_per_epoch) * self.global_batch_size + self.rank * self.batch_size
        return [(epoch, (first + offset) % self.dataset_len) for offset in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """Yields the keys of steps ``start_step, start_step + 1, ...`` without end."""
        step = self.start_step
        while True:
            yield self.keys_for_step(step)
            step += 1
