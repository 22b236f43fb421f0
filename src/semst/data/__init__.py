"""Data loading for semst: image files, CUT-style preprocessing and the unpaired training dataset.

Modules:

- :mod:`semst.data.images`: :func:`find_images` (recursive, sorted, case-insensitive extensions),
  :func:`load_rgb` (any Pillow mode to 8-bit RGB, EXIF orientation, eager decoding so corrupt files fail with
  :class:`ImageLoadError`), :func:`save_image` (atomic writes) and the tensor conversions
  :func:`image_to_tensor` / :func:`tensor_to_image` (``(3, H, W)`` in ``[-1, 1]``).
- :mod:`semst.data.transforms`: :func:`train_transform` (CUT's ``--preprocess`` modes, multiple-of-4 sizes and
  random flips, driven by an explicit ``numpy.random.Generator``), :func:`test_transform`, and the crop
  specifications :class:`SingleScaleCrops` and :class:`MultiScaleCrops` (SemST Eq. 4-5) that translators
  train on.
- :mod:`semst.data.batch`: the typed :class:`Sample`, :class:`Batch` and :class:`DomainCrops`, and
  :func:`collate`.
- :mod:`semst.data.unpaired`: :class:`UnpairedImages`, addressed by ``(epoch, position)`` keys so that data
  order and augmentation are pure functions of ``(seed, epoch, position)``, and :class:`StepBatchSampler`,
  which maps optimisation steps to keys for each DDP rank and resumes at any step.

To add a preprocessing mode: implement it in ``transforms.train_transform``, add its name to
``PREPROCESS_MODES`` and add a size test in ``tests/data/test_transforms.py``. To add another dataset layout,
write a new module next to ``unpaired.py`` that returns the same :class:`Sample`, so the training loop needs
no change.
"""

from semst.data.batch import Batch, DomainCrops, Sample, collate
from semst.data.images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    convert_to_rgb,
    find_images,
    image_to_tensor,
    load_rgb,
    save_image,
    tensor_to_image,
)
from semst.data.transforms import (
    PREPROCESS_MODES,
    CropSpec,
    MultiScaleCrops,
    SingleScaleCrops,
    make_multiple_of,
    test_transform,
    train_transform,
)
from semst.data.unpaired import StepBatchSampler, UnpairedImages, epoch_of_step

__all__ = [
    "IMAGE_EXTENSIONS",
    "PREPROCESS_MODES",
    "Batch",
    "CropSpec",
    "DomainCrops",
    "ImageLoadError",
    "MultiScaleCrops",
    "Sample",
    "SingleScaleCrops",
    "StepBatchSampler",
    "UnpairedImages",
    "collate",
    "convert_to_rgb",
    "epoch_of_step",
    "find_images",
    "image_to_tensor",
    "load_rgb",
    "make_multiple_of",
    "save_image",
    "tensor_to_image",
    "test_transform",
    "train_transform",
]
