"""Unpaired two-domain training data (CUT's ``unaligned`` dataset) with a deterministic, resumable order.

An item is addressed by a key ``(epoch, position)`` instead of a plain index, and everything random about it
(which source image, which target image, the crops and flips) is a pure function of ``(seed, epoch,
position)``. The order of training data therefore does not depend on the number of DataLoader workers, on how
the global batch is split between DDP processes, or on whether training was interrupted and resumed:
:class:`StepBatchSampler` maps an optimisation step to its keys arithmetically.

Typical use::

    dataset = UnpairedImages("data/trainA", "data/trainB", SingleScaleCrops(crop_size=256), seed=cfg.seed)
    sampler = StepBatchSampler(len(dataset), batch_size=1, start_step=resumed, rank=rank, world_size=world)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=4, collate_fn=collate)
    for step, batch in zip(range(resumed, total_steps), loader):
        ...

Bad files: :func:`unreadable_images` reads every image's header before training (fast: no decoding), so a
zero-byte or foreign file is reported up front. An image whose header is fine but whose data cannot be
decoded (a truncated file) is replaced, when it is drawn, by the next readable image of its domain (by index,
wrapping around), and the item records it in ``Sample.unreadable``; the replacement depends only on which
files fail, so the order stays deterministic and a resumed run still equals an uninterrupted one.
"""

from __future__ import annotations

import operator
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from semst.data.batch import Sample
from semst.data.images import ImageLoadError, find_images, load_rgb
from semst.data.transforms import CropSpec, SingleScaleCrops

__all__ = ["StepBatchSampler", "UnpairedImages", "epoch_of_step", "unreadable_images"]

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


def unreadable_images(
    paths: Sequence[Path], *, progress: bool = False, desc: str = "check images"
) -> list[tuple[Path, str]]:
    """The images whose header cannot be read, with the reason: missing files, dangling symbolic links,
    zero-byte or foreign files, images above Pillow's size limit. Only headers are read (``PIL.Image.open``
    and the size), about a millisecond a file, so the check suits a whole data set before training.

    Args:
        paths: The image files.
        progress: Show a progress bar.
        desc: The progress bar's label.

    Returns:
        ``(path, reason)`` for every unreadable file, in the order of ``paths``.
    """
    bad = []
    for path in tqdm(paths, desc=desc, unit="img", disable=not progress, dynamic_ncols=True, leave=False):
        path = Path(path)
        if path.is_symlink() and not path.exists():
            bad.append((path, f"a symbolic link to '{os.readlink(path)}', which does not exist"))
            continue
        try:
            with Image.open(path) as image:
                width, height = image.size
            if width < 1 or height < 1:
                bad.append((path, f"the image is {width}x{height} pixels"))
        except Exception as error:  # Pillow raises many types for foreign or damaged files
            bad.append((path, f"{type(error).__name__}: {error}"))
    return bad


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


class UnpairedImages(Dataset[Sample]):
    """Pairs of unrelated images from a source and a target domain, addressed by ``(epoch, position)``.

    The epoch length is ``max(n_source, n_target)`` as in CUT. For the item at ``(epoch, position)``:

    - the source image is ``permutation[position] % n_source``, where ``permutation`` is a random permutation
      of ``range(len(self))`` drawn once per ``(seed, epoch)`` (generator ``[seed, epoch, 0, 3]``); when the
      source domain is the larger one, every source image appears exactly once per epoch;
    - the target image is drawn uniformly at random from the RNG seeded by ``(seed, epoch, position)``,
      independently of the source (CUT's ``serial_batches=False``);
    - crops and flips come from the crop specification (:class:`~semst.data.transforms.SingleScaleCrops` or
      :class:`~semst.data.transforms.MultiScaleCrops`) with generators seeded by
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
        crops: CropSpec | None = None,
        *,
        seed: int = 0,
        max_dataset_size: int | None = None,
    ) -> None:
        """Finds the images of both domains.

        Args:
            source_dir: Directory (searched recursively), single image file or ``NAME:PATH`` data set of the
                source domain.
            target_dir: The same for the target domain.
            crops: How training crops are cut (default: ``SingleScaleCrops()``, CUT's defaults).
            seed: Seed of all data randomness, in ``[0, 2**32)``.
            max_dataset_size: If given, only the first ``max_dataset_size`` images (in sorted order) of each
                domain are used.

        Raises:
            FileNotFoundError: A domain's path does not exist (the message names the domain and the path).
            ValueError: A domain has no images, or an argument is out of range.
        """
        self.crops: CropSpec = SingleScaleCrops() if crops is None else crops
        self.seed = _check_int(seed, "seed", minimum=0, maximum=_MAX_SEED)
        if max_dataset_size is not None:
            max_dataset_size = _check_int(max_dataset_size, "max_dataset_size", minimum=1)
        self.max_dataset_size = max_dataset_size

        source_paths = _find_domain_images(source_dir, "source")
        target_paths = _find_domain_images(target_dir, "target")
        if max_dataset_size is not None:
            source_paths = source_paths[:max_dataset_size]
            target_paths = target_paths[:max_dataset_size]
        self.source_paths: list[Path] = source_paths
        self.target_paths: list[Path] = target_paths
        self._permutations: OrderedDict[int, np.ndarray] = OrderedDict()
        # Images that failed to decode (index -> reason), per domain; kept per process (and worker).
        self._unreadable: dict[str, dict[int, str]] = {"source": {}, "target": {}}

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

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        """Loads and crops the pair at ``key = (epoch, position)``.

        Args:
            key: ``(epoch, position)`` with ``epoch >= 0`` and ``0 <= position < len(self)``.

        Returns:
            A :class:`~semst.data.batch.Sample` whose crops are tensors in ``[-1, 1]``.

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
        source_path, source_image, source_bad = self._load("source", self.source_paths, source_index)
        target_path, target_image, target_bad = self._load("target", self.target_paths, target_index)
        source = self.crops(source_image, self._rng(epoch, position, _STREAM_SOURCE_AUGMENT), epoch)
        target = self.crops(target_image, self._rng(epoch, position, _STREAM_TARGET_AUGMENT), epoch)
        unreadable = tuple(source_bad + target_bad)
        return Sample(source, target, str(source_path), str(target_path), epoch, position, unreadable)

    def _load(self, domain: str, paths: list[Path], index: int) -> tuple[Path, Image.Image, list]:
        """Loads ``paths[index]``, or the next readable image after it (wrapping around) if it cannot be decoded;
        returns the path loaded, the image and the ``(file, reason)`` of the images that failed on the way."""
        known = self._unreadable[domain]
        failed: list[tuple[str, str]] = []
        for offset in range(len(paths)):
            candidate = (index + offset) % len(paths)
            if candidate not in known:
                try:
                    return paths[candidate], load_rgb(paths[candidate]), failed
                except ImageLoadError as error:
                    known[candidate] = error.reason or str(error)
            failed.append((str(paths[candidate]), known[candidate]))
        others = len(paths) - 1
        rest = f"; and none of the other {others} {domain} image(s) could be decoded either" if others else ""
        raise ImageLoadError(paths[index], known[index] + rest)

    def _rng(self, epoch: int, position: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, position, stream])


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
