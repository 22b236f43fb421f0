"""Training and test preprocessing: CUT's ``get_transform`` reimplemented with Pillow and an explicit RNG.

Training images go through one of the :data:`PREPROCESS_MODES` (resize and/or random crop), are resized so
both sides are multiples of 4 (CUT's ``make_power_2`` with base 4), are flipped horizontally at random and
become ``(3, h, w)`` tensors in ``[-1, 1]``. Unlike CUT, all randomness comes from a
``numpy.random.Generator`` passed by the caller, so an augmentation is a pure function of the image and the
generator's seed.

Training crops are described by a crop specification, a small frozen dataclass that the translator chooses
(semst.translators): `SingleScaleCrops` (one crop per image, CUT's preprocessing) or `MultiScaleCrops` (an
aligned global/local crop pair, SemST Eq. 4-5). A specification is called as ``spec(image, rng, epoch)`` and
returns a `semst.data.batch.DomainCrops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from semst.data.batch import DomainCrops
from semst.data.images import convert_to_rgb, image_to_tensor

__all__ = [
    "PREPROCESS_MODES",
    "CropSpec",
    "MultiScaleCrops",
    "SingleScaleCrops",
    "make_multiple_of",
    "test_transform",
    "train_transform",
]

PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
"""Valid values of ``preprocess`` (CUT's keywords, spelled out as whole modes)."""

_SIZE_MULTIPLE = 4
_CROP_MODES = frozenset({"resize_and_crop", "crop", "scale_width_and_crop"})


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def _scale_width(image: Image.Image, width: int) -> Image.Image:
    """Resizes to the given width, keeping the aspect ratio (height rounded, at least 1)."""
    old_width, old_height = image.size
    height = max(1, round(old_height * width / old_width))
    return _resize(image, width, height)


def _upscale_to_cover(image: Image.Image, crop_size: int) -> Image.Image:
    """Upscales an image whose short side is below ``crop_size`` so that it equals ``crop_size``."""
    width, height = image.size
    short_side = min(width, height)
    if short_side >= crop_size:
        return image
    # The long side is rounded up so it can never fall below crop_size.
    if width <= height:
        return _resize(image, crop_size, max(crop_size, round(height * crop_size / width)))
    return _resize(image, max(crop_size, round(width * crop_size / height)), crop_size)


def _random_crop(image: Image.Image, crop_size: int, rng: np.random.Generator) -> Image.Image:
    image = _upscale_to_cover(image, crop_size)
    width, height = image.size
    left = int(rng.integers(0, width - crop_size + 1))
    top = int(rng.integers(0, height - crop_size + 1))
    return image.crop((left, top, left + crop_size, top + crop_size))


def make_multiple_of(image: Image.Image, multiple: int = _SIZE_MULTIPLE) -> Image.Image:
    """Resizes an image (bicubic) so both sides are multiples of ``multiple``, as CUT's ``make_power_2``.

    Each side becomes ``round(side / multiple) * multiple`` (Python's ``round``, as in CUT, so exact halves go
    to the even multiple), but at least ``multiple``. Images that already fit are returned unchanged.

    Args:
        image: The image.
        multiple: The required divisor of both sides.

    Returns:
        The image, resized if needed.
    """
    _check_positive_int(multiple, "multiple")
    width, height = image.size
    new_width = max(multiple, round(width / multiple) * multiple)
    new_height = max(multiple, round(height / multiple) * multiple)
    return _resize(image, new_width, new_height)


def train_transform(
    image: Image.Image,
    rng: np.random.Generator,
    *,
    preprocess: str = "resize_and_crop",
    load_size: int = 286,
    crop_size: int = 256,
    flip: bool = True,
) -> torch.Tensor:
    """Applies CUT's training preprocessing to one image.

    Modes:

    - ``"resize_and_crop"``: resize to ``load_size x load_size`` (bicubic, aspect ratio not kept), then take a
      random ``crop_size x crop_size`` crop.
    - ``"crop"``: random ``crop_size x crop_size`` crop of the original image.
    - ``"scale_width"``: resize so the width is ``load_size``, keeping the aspect ratio (height rounded); no
      crop.
    - ``"scale_width_and_crop"``: scale the width to ``load_size``, then take a random ``crop_size`` crop.
    - ``"none"``: no resize and no crop.

    In the crop modes an image (after any resize) whose short side is below ``crop_size`` is first upscaled,
    keeping its aspect ratio, so that its short side equals ``crop_size``; CUT would fail on such an image.
    Then, in every mode, both sides are resized to multiples of 4 if needed (see :func:`make_multiple_of`),
    and with ``flip`` the image is mirrored horizontally with probability 0.5.

    Random numbers are drawn only from ``rng``, in a fixed order (crop left, crop top, flip), so the same
    image and the same generator state always give the same tensor.

    Args:
        image: The input image (any mode; converted to RGB).
        rng: The random generator for the crop position and the flip.
        preprocess: One of :data:`PREPROCESS_MODES`.
        load_size: The side (``resize_and_crop``) or width (``scale_width*``) to resize to.
        crop_size: The side of the square random crop.
        flip: Whether to flip horizontally at random.

    Returns:
        A ``(3, h, w)`` float32 tensor in ``[-1, 1]``, with ``h`` and ``w`` multiples of 4.

    Raises:
        ValueError: ``preprocess`` is not a known mode, or a size is not a positive integer.
    """
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(
            f"Unknown preprocess mode {preprocess!r}; expected one of {', '.join(PREPROCESS_MODES)}."
        )
    _check_positive_int(load_size, "load_size")
    _check_positive_int(crop_size, "crop_size")
    image = convert_to_rgb(image)

    if preprocess == "resize_and_crop":
        image = _resize(image, load_size, load_size)
    elif preprocess in ("scale_width", "scale_width_and_crop"):
        image = _scale_width(image, load_size)
    if preprocess in _CROP_MODES:
        image = _random_crop(image, crop_size, rng)
    image = make_multiple_of(image, _SIZE_MULTIPLE)

    tensor = image_to_tensor(image)  # (3, h, w)
    if flip and rng.random() < 0.5:
        tensor = tensor.flip(-1)
    return tensor


@dataclass(frozen=True)
class SingleScaleCrops:
    """One crop per image with CUT's preprocessing (`train_transform`).

    Attributes:
        preprocess: one of `PREPROCESS_MODES`.
        load_size: resize size (``resize_and_crop``) or width (``scale_width*``).
        crop_size: side of the random square crop.
        flip: random horizontal flips.
        steady_from_epoch: from this epoch on ``load_size`` is replaced by ``crop_size`` (no resize jitter;
            CUT does this for the learning-rate decay phase); None keeps ``load_size``.
    """

    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    steady_from_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ValueError(
                f"Unknown preprocess mode {self.preprocess!r}; expected one of {', '.join(PREPROCESS_MODES)}."
            )
        _check_positive_int(self.load_size, "load_size")
        _check_positive_int(self.crop_size, "crop_size")
        if self.steady_from_epoch is not None and (
            isinstance(self.steady_from_epoch, bool) or self.steady_from_epoch < 0
        ):
            raise ValueError(f"steady_from_epoch must be >= 0 or None, got {self.steady_from_epoch!r}.")

    def load_size_for_epoch(self, epoch: int) -> int:
        """The resize size used in an epoch (``crop_size`` once ``steady_from_epoch`` is reached)."""
        if self.steady_from_epoch is not None and epoch >= self.steady_from_epoch:
            return self.crop_size
        return self.load_size

    def undersized(self, width: int, height: int) -> bool:
        """Whether an image of this size is upscaled to fit a crop (CUT's crop sizes: never worth a warning)."""
        return False

    def __call__(self, image: Image.Image, rng: np.random.Generator, epoch: int) -> DomainCrops:
        crop = train_transform(
            image,
            rng,
            preprocess=self.preprocess,
            load_size=self.load_size_for_epoch(epoch),
            crop_size=self.crop_size,
            flip=self.flip,
        )
        return DomainCrops(crop=crop)


@dataclass(frozen=True)
class MultiScaleCrops:
    """An aligned (global, local) crop pair per image for multi-scale training (SemST Eq. 4-5).

    The image is resized to ``image_width`` (aspect kept) if given, upscaled (aspect kept) if a side is
    shorter than the global region ``global_size * scale``, flipped horizontally with probability 0.5 if
    ``flip``, and then cropped by `semst.multiscale.crops.sample_multiscale_crops`: a random region of
    ``global_size * scale`` pixels downsampled by T (`semst.multiscale.crops.downsample`) to ``global_size``
    (X_g), and a random ``local_size`` full-resolution crop inside it (X_l), aligned to the global crop's
    pixel grid. Random numbers come only from ``rng``, in a fixed order (flip, global offset, local offset).

    Attributes:
        global_size: side of X_g (h_g = w_g).
        scale: downsampling factor of X_g; it covers ``global_size * scale`` image pixels a side.
        local_size: side of X_l (h_l = w_l), a multiple of ``scale``.
        image_width: resize images to this width first (aspect kept); None = as stored.
        flip: random horizontal flips.
    """

    global_size: int = 256
    scale: int = 2
    local_size: int = 256
    image_width: int | None = None
    flip: bool = True

    def __post_init__(self) -> None:
        for name in ("global_size", "scale", "local_size"):
            _check_positive_int(getattr(self, name), name)
        if self.image_width is not None:
            _check_positive_int(self.image_width, "image_width")

    @property
    def region(self) -> int:
        """Side of the global region in image pixels."""
        return self.global_size * self.scale

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """An image's (width, height) after the ``image_width`` resize."""
        if self.image_width is None:
            return width, height
        return self.image_width, round(height * self.image_width / width)

    def undersized(self, width: int, height: int) -> bool:
        """Whether an image of this size is smaller than the global region (it would be upscaled)."""
        return min(self.scaled_size(width, height)) < self.region

    def __call__(self, image: Image.Image, rng: np.random.Generator, epoch: int) -> DomainCrops:
        from semst.multiscale.crops import Box, crop, downsample, sample_multiscale_crops

        image = convert_to_rgb(image)
        if self.image_width is not None:
            image = _scale_width(image, self.image_width)
        image = _upscale_to_cover(image, self.region)
        flipped = self.flip and rng.random() < 0.5
        boxes = sample_multiscale_crops(
            image.height,
            image.width,
            global_region=self.region,
            scale=self.scale,
            local_size=self.local_size,
            rng=rng,
        )
        g = boxes.global_box
        # The boxes are drawn on the flipped image (same size). Only the global region is cut and flipped,
        # not the whole image (a mirror image is a permutation of pixels: the same values either way), and
        # only the region becomes a tensor; the local crop is cut from it.
        left = image.width - g.left - g.width if flipped else g.left
        window = image.crop((left, g.top, left + g.width, g.top + g.height))
        if flipped:
            window = window.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        region = image_to_tensor(window)
        local_in_region = Box(
            boxes.local_box.top - g.top, boxes.local_box.left - g.left, self.local_size, self.local_size
        )
        inner = boxes.local_in_global
        return DomainCrops(
            crop=crop(region, local_in_region).contiguous(),  # (3, ls, ls)
            global_crop=downsample(region, self.scale),  # (3, gs, gs)
            box=torch.tensor([inner.top, inner.left, inner.height, inner.width], dtype=torch.int64),  # (4,)
        )


CropSpec = SingleScaleCrops | MultiScaleCrops
"""What a translator trains on; see `semst.translators.Translator.crop_spec`."""


def test_transform(image: Image.Image) -> torch.Tensor:
    """Converts an image for inference: no resize, crop or flip.

    Args:
        image: The input image (any mode; converted to RGB).

    Returns:
        A ``(3, H, W)`` float32 tensor in ``[-1, 1]`` with the image's own size.
    """
    return image_to_tensor(image)


# pytest collects functions named test_* from modules that import them; this marks it as not a test.
test_transform.__test__ = False  # type: ignore[attr-defined]
