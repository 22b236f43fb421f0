"""Scores of the paper's two paired protocols: segmentation metrics and photo-to-map pixel metrics.

**Semantic distortion** (SemST section 4.2, Cityscapes photo -> label, as in CUT and GcGAN): a fixed
segmenter labels the translated images, and its predictions are scored against the source images' label maps
with the usual three numbers, all from one confusion matrix accumulated over the whole data set (not averaged
per image):

- pixel accuracy: correct pixels / labelled pixels;
- class accuracy: the mean, over the classes present in the labels, of each class's recall TP / (TP + FN);
- mean IoU: the mean, over the classes with a non-empty union, of TP / (TP + FP + FN).

**Maps** (SemST section 4.2, photo -> map, after GcGAN): the translated map is compared with the true map
pixel by pixel on the 0-255 scale: the RMSE over all pixels and channels, and the accuracy at delta 5 and 10,
the fraction of pixels whose largest channel difference is below delta.

Everything returned is plain Python numbers and lists, so results can be written with ``json.dump``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "PAIRED_DELTAS",
    "PairedAccumulator",
    "confusion_counts",
    "confusion_matrix",
    "paired_scores",
    "segmentation_scores",
]

PAIRED_DELTAS: tuple[int, ...] = (5, 10)
"""The thresholds of the maps protocol's pixel accuracy, on the 0-255 scale (GcGAN's delta)."""


def _as_integer_array(values: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must hold integer class ids, got dtype {array.dtype}.")
    return array


def confusion_counts(
    pred: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
) -> np.ndarray:
    """Counts (label class, predicted class) pairs, with one extra column for predictions that are no class.

    Use this to accumulate a data set when predictions may lie outside ``[0, C)`` (read from files written by
    another tool, say); :func:`segmentation_scores` counts the extra column as errors. Predictions made by an
    argmax over ``C`` logits are always classes, and :func:`confusion_matrix` is enough.

    Args:
        pred: Predicted class ids, ``(H, W)`` or ``(B, H, W)`` (any shape equal to ``label``'s), integer numpy
            array or torch tensor (on any device).
        label: True class ids, the same shape; pixels equal to ``ignore_index`` are skipped.
        num_classes: Number of classes ``C``.
        ignore_index: The label value of pixels that are not scored; must not be a class id (0..C-1).

    Returns:
        ``(C, C + 1)`` ``int64`` counts: entry ``[i, j]`` for ``j < C`` is the number of pixels labelled ``i``
        and predicted ``j``; column ``C`` counts pixels labelled ``i`` whose prediction is outside ``[0, C)``.

    Raises:
        ValueError: ``num_classes`` is not positive, ``ignore_index`` is a class id, the shapes differ, or a
            label value other than ``ignore_index`` is outside ``[0, C)`` (the message lists the values).
        TypeError: ``pred`` or ``label`` does not hold integers.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index={ignore_index} is a class id (classes are 0..{num_classes - 1}); choose a value "
            f"outside that range, such as 255."
        )
    pred = _as_integer_array(pred, "pred")
    label = _as_integer_array(label, "label")
    if pred.shape != label.shape:
        raise ValueError(f"pred and label must have the same shape, got {pred.shape} and {label.shape}.")

    label = label.reshape(-1).astype(np.int64)  # (N,)
    pred = pred.reshape(-1).astype(np.int64)  # (N,)
    scored = label != ignore_index
    label, pred = label[scored], pred[scored]
    unknown = (label < 0) | (label >= num_classes)
    if unknown.any():
        values = np.unique(label[unknown])
        shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise ValueError(
            f"Labels hold values outside the classes 0..{num_classes - 1} that are not ignore_index "
            f"({ignore_index}): {shown}. Check num_classes, ignore_index, and that the label maps hold train ids "
            f"(e.g. Cityscapes *_labelTrainIds.png, not *_labelIds.png)."
        )
    # Predictions that are no class go to the extra column C.
    pred = np.where((pred < 0) | (pred >= num_classes), num_classes, pred)
    width = num_classes + 1
    counts = np.bincount(label * width + pred, minlength=num_classes * width)
    return counts.reshape(num_classes, width).astype(np.int64)  # (C, C + 1)


def confusion_matrix(
    pred: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
) -> np.ndarray:
    """The confusion matrix of one image or batch: rows are label classes, columns predicted classes.

    Pixels whose label is ``ignore_index`` are skipped. A prediction outside ``[0, C)`` falls in no column:
    the matrix drops it. To count such pixels as errors in the scores, accumulate :func:`confusion_counts`
    instead, which keeps them in an extra column (the first ``C`` columns of its result are this matrix).

    Args:
        pred: Predicted class ids, ``(H, W)`` or ``(B, H, W)``, integer numpy array or torch tensor.
        label: True class ids, the same shape.
        num_classes: Number of classes ``C``.
        ignore_index: The label value of pixels that are not scored.

    Returns:
        ``(C, C)`` ``int64``: entry ``[i, j]`` is the number of pixels labelled ``i`` and predicted ``j``.

    Raises:
        ValueError: As :func:`confusion_counts`.
        TypeError: As :func:`confusion_counts`.
    """
    return np.ascontiguousarray(confusion_counts(pred, label, num_classes, ignore_index)[:, :num_classes])


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def segmentation_scores(confusion: np.ndarray) -> dict:
    """Pixel accuracy, class accuracy and mean IoU of a confusion matrix accumulated over a data set.

    With TP = the diagonal, FP = column sum - TP and FN = row total - TP for each class:

    - ``pixel_accuracy`` = sum(TP) / number of labelled pixels;
    - ``per_class_accuracy[c]`` = TP / (TP + FN), ``None`` for a class absent from the labels;
    - ``class_accuracy`` = the mean of ``per_class_accuracy`` over the classes present in the labels;
    - ``per_class_iou[c]`` = TP / (TP + FP + FN), ``None`` when that union is empty (a class neither labelled
      nor predicted); a class predicted but absent from the labels has IoU 0 and lowers the mean;
    - ``mean_iou`` = the mean of ``per_class_iou`` over the classes with a non-empty union.

    Means over no pixels or no classes are ``None``.

    Args:
        confusion: ``(C, C)`` counts from :func:`confusion_matrix`, or ``(C, C + 1)`` from
            :func:`confusion_counts`, whose last column (predictions that are no class) counts as errors:
            wrong pixels, and false negatives of their label class, but no class's false positives.

    Returns:
        A dictionary of plain Python values: ``pixel_accuracy``, ``class_accuracy``, ``mean_iou`` (floats in
        [0, 1] or ``None``), ``per_class_accuracy`` and ``per_class_iou`` (lists of length C of floats or
        ``None``), ``confusion_matrix`` (C lists of C ints), ``invalid_predictions`` (int, pixels whose
        prediction was no class), ``num_pixels`` (int, labelled pixels scored).

    Raises:
        ValueError: ``confusion`` is not ``(C, C)`` or ``(C, C + 1)``, or holds negative counts.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[1] not in (confusion.shape[0], confusion.shape[0] + 1):
        raise ValueError(f"confusion must be (C, C) or (C, C + 1), got shape {confusion.shape}.")
    if confusion.size and confusion.min() < 0:
        raise ValueError("confusion holds negative counts.")
    num_classes = confusion.shape[0]
    confusion = confusion.astype(np.int64)
    matrix = confusion[:, :num_classes]  # (C, C)
    label_total = confusion.sum(axis=1)  # (C,), includes predictions that are no class
    true_positive = np.diagonal(matrix)  # (C,)
    false_positive = matrix.sum(axis=0) - true_positive  # (C,)
    false_negative = label_total - true_positive  # (C,)
    union = true_positive + false_positive + false_negative  # (C,)
    present = label_total > 0
    nonempty = union > 0

    accuracy = np.divide(true_positive, label_total, out=np.zeros(num_classes), where=present)
    iou = np.divide(true_positive, union, out=np.zeros(num_classes), where=nonempty)
    num_pixels = int(label_total.sum())
    return {
        "pixel_accuracy": float(true_positive.sum() / num_pixels) if num_pixels else None,
        "class_accuracy": _mean_or_none(accuracy[present]),
        "mean_iou": _mean_or_none(iou[nonempty]),
        "per_class_accuracy": [float(a) if p else None for a, p in zip(accuracy, present)],
        "per_class_iou": [float(v) if n else None for v, n in zip(iou, nonempty)],
        "confusion_matrix": matrix.tolist(),
        "invalid_predictions": int(label_total.sum() - matrix.sum()),
        "num_pixels": num_pixels,
    }


def _rgb_array(image: np.ndarray | Image.Image, name: str) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"'{name}' must be (H, W, 3) uint8 RGB, got shape {array.shape} and dtype {array.dtype}."
        )
    return array


def paired_scores(
    pred: np.ndarray | Image.Image,
    target: np.ndarray | Image.Image,
    *,
    pred_name: str = "prediction",
    target_name: str = "target",
    deltas: Sequence[int] = PAIRED_DELTAS,
) -> dict:
    """The sums of one image pair that :class:`PairedAccumulator` adds up over a data set.

    Args:
        pred: The translated image, ``(H, W, 3)`` ``uint8`` (or an RGB Pillow image).
        target: The true image, the same size.
        pred_name: How error messages name ``pred`` (its file, typically).
        target_name: How error messages name ``target``.
        deltas: Pixel-accuracy thresholds on the 0-255 scale.

    Returns:
        ``squared_error_sum`` (int, the sum over pixels and channels of the squared difference),
        ``within_delta_<d>`` for each delta (int, pixels whose largest channel absolute difference is strictly
        less than d), ``num_pixels`` (int, H * W).

    Raises:
        ValueError: An image is not ``(H, W, 3)`` ``uint8``, or the sizes differ (both names and sizes are
            given).
    """
    pred_array = _rgb_array(pred, pred_name)
    target_array = _rgb_array(target, target_name)
    if pred_array.shape != target_array.shape:
        height, width = pred_array.shape[:2]
        target_height, target_width = target_array.shape[:2]
        raise ValueError(
            f"Image sizes differ: '{pred_name}' is {width}x{height} but '{target_name}' is "
            f"{target_width}x{target_height} (width x height); paired metrics compare pixel by pixel."
        )
    difference = pred_array.astype(np.int32) - target_array.astype(np.int32)  # (H, W, 3)
    largest = np.abs(difference).max(axis=2)  # (H, W)
    sums = {"squared_error_sum": int(np.square(difference, dtype=np.int64).sum())}
    for delta in deltas:
        sums[f"within_delta_{delta}"] = int(np.count_nonzero(largest < delta))
    sums["num_pixels"] = int(largest.size)
    return sums


class PairedAccumulator:
    """Adds up :func:`paired_scores` over a data set; :meth:`scores` gives the maps protocol's numbers.

    All pixels of all images weigh the same (the RMSE is not a mean of per-image RMSEs), so larger images
    count more.

    Example::

        accumulator = PairedAccumulator()
        for pred_path, target_path in pairs:
            accumulator.update(load(pred_path), load(target_path), str(pred_path), str(target_path))
        accumulator.scores()  # {"rmse": ..., "accuracy_delta_5": ..., "accuracy_delta_10": ..., ...}
    """

    def __init__(self, deltas: Sequence[int] = PAIRED_DELTAS) -> None:
        """Creates an empty accumulator.

        Args:
            deltas: Pixel-accuracy thresholds on the 0-255 scale; each gives ``accuracy_delta_<d>``.
        """
        self.deltas = tuple(int(d) for d in deltas)
        self.squared_error_sum = 0
        self.within = dict.fromkeys(self.deltas, 0)
        self.num_pixels = 0
        self.num_images = 0

    def update(
        self,
        pred: np.ndarray | Image.Image,
        target: np.ndarray | Image.Image,
        pred_name: str = "prediction",
        target_name: str = "target",
    ) -> dict:
        """Adds one image pair (see :func:`paired_scores` for the arguments and errors) and returns its sums."""
        sums = paired_scores(pred, target, pred_name=pred_name, target_name=target_name, deltas=self.deltas)
        self.squared_error_sum += sums["squared_error_sum"]
        for delta in self.deltas:
            self.within[delta] += sums[f"within_delta_{delta}"]
        self.num_pixels += sums["num_pixels"]
        self.num_images += 1
        return sums

    def scores(self) -> dict:
        """The data set's scores.

        Returns:
            ``rmse`` (sqrt of the mean squared difference over all pixels and channels, 0-255 scale),
            ``accuracy_delta_<d>`` for each delta (fraction in [0, 1]), ``num_pixels``, ``num_images``. The
            floats are ``None`` before any image was added.
        """
        values = self.num_pixels * 3
        result: dict = {"rmse": math.sqrt(self.squared_error_sum / values) if values else None}
        for delta in self.deltas:
            result[f"accuracy_delta_{delta}"] = (
                self.within[delta] / self.num_pixels if self.num_pixels else None
            )
        result["num_pixels"] = self.num_pixels
        result["num_images"] = self.num_images
        return result
