"""Evaluation of translations with the paper's paired protocols (SemST section 4.2).

Modules:

- :mod:`semst.evaluation.metrics`: the scores. :func:`confusion_matrix` / :func:`confusion_counts` (one image
  or batch, ``np.bincount``), :func:`segmentation_scores` (pixel accuracy, class accuracy, mean IoU of a
  confusion matrix accumulated over a data set), :func:`paired_scores` and :class:`PairedAccumulator` (RMSE
  and accuracy at delta 5 and 10 of translated against true maps).
- :mod:`semst.evaluation.matching`: :func:`match_pairs` pairs images with label maps (Cityscapes suffixes,
  nested city folders), :func:`match_prediction_pairs` pairs translated with true images.
- :mod:`semst.evaluation.segmentation`: :func:`evaluate_segmentation` runs a segmenter over image/label pairs;
  :func:`evaluate_paired` scores prediction/target pairs.

The Cityscapes label table and label-map files live in :mod:`semst.data.labels`.

To add a protocol: write its scores as plain functions over numpy arrays in ``metrics.py`` (or a new module
if it needs more than a screen), its loop over files next to ``evaluate_segmentation``, and exact-value
tests on hand-made arrays in ``tests/evaluation``.
"""

from semst.evaluation.matching import (
    CITYSCAPES_IMAGE_SUFFIX,
    CITYSCAPES_LABEL_SUFFIX,
    match_pairs,
    match_prediction_pairs,
)
from semst.evaluation.metrics import (
    PAIRED_DELTAS,
    PairedAccumulator,
    confusion_counts,
    confusion_matrix,
    paired_scores,
    segmentation_scores,
)
from semst.evaluation.segmentation import evaluate_paired, evaluate_segmentation

__all__ = [
    "CITYSCAPES_IMAGE_SUFFIX",
    "CITYSCAPES_LABEL_SUFFIX",
    "PAIRED_DELTAS",
    "PairedAccumulator",
    "confusion_counts",
    "confusion_matrix",
    "evaluate_paired",
    "evaluate_segmentation",
    "match_pairs",
    "match_prediction_pairs",
    "paired_scores",
    "segmentation_scores",
]
