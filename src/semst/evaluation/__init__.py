"""Evaluation of translations: the paper's paired protocols (SemST section 4.2) and offline realism scores.

Modules:

- :mod:`semst.evaluation.metrics`: the scores. :func:`confusion_matrix` / :func:`confusion_counts` (one image
  or batch, ``np.bincount``), :func:`segmentation_scores` (pixel accuracy, class accuracy, mean IoU of a
  confusion matrix accumulated over a data set), :func:`paired_scores` and :class:`PairedAccumulator` (RMSE
  and accuracy at delta 5 and 10 of translated against true maps).
- :mod:`semst.evaluation.matching`: :func:`match_pairs` pairs images with label maps (Cityscapes suffixes,
  nested city folders), :func:`match_prediction_pairs` pairs translated with true images.
- :mod:`semst.evaluation.segmentation`: :func:`evaluate_segmentation` runs a segmenter over image/label pairs;
  :func:`evaluate_paired` scores prediction/target pairs.

Realism (does a translation look like the target domain? docs/realism.md):

- :mod:`semst.evaluation.realism`: :func:`realism_scores` (target share, KID/FID per feature extractor,
  class-matched KID) and :func:`extract_features` / :class:`FeatureSet` (reference features computed once,
  saved and reused for every run).
- :mod:`semst.evaluation.domain_classifier`: :func:`train_domain_classifier` (a small source-vs-target CNN
  on crops, safe checkpoint with held-out accuracy) and :func:`load_domain_classifier`, the always-available
  judge.
- :mod:`semst.evaluation.features`: the :class:`FeatureExtractor` protocol and
  :class:`SegmenterEncoderExtractor` (the target segmenter's encoder).
- :mod:`semst.evaluation.inception`: :class:`InceptionExtractor`, the FID Inception-v3 in pure torch from a
  local weights file (nothing is downloaded).
- :mod:`semst.evaluation.kid` and :mod:`semst.evaluation.fid`: :func:`kid` and :func:`fid` on feature
  matrices (float64, no scipy).
- :mod:`semst.evaluation.crops`: :class:`CropView`, how images become crops for the crop-based judges.

The Cityscapes label table and label-map files live in :mod:`semst.data.labels`.

To add a protocol: write its scores as plain functions over numpy arrays in ``metrics.py`` (or a new module
if it needs more than a screen), its loop over files next to ``evaluate_segmentation``, and exact-value
tests on hand-made arrays in ``tests/evaluation``.
"""

from semst.evaluation.crops import CropView
from semst.evaluation.domain_classifier import (
    DomainClassifier,
    DomainClassifierExtractor,
    load_domain_classifier,
    train_domain_classifier,
)
from semst.evaluation.features import FeatureExtractor, SegmenterEncoderExtractor
from semst.evaluation.fid import fid, frechet_distance, gaussian_statistics
from semst.evaluation.inception import FIDInceptionV3, InceptionExtractor, load_inception_weights
from semst.evaluation.kid import KID, kid, mmd2_unbiased
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
from semst.evaluation.realism import FeatureSet, extract_features, realism_scores
from semst.evaluation.segmentation import evaluate_paired, evaluate_segmentation

__all__ = [
    "CITYSCAPES_IMAGE_SUFFIX",
    "CITYSCAPES_LABEL_SUFFIX",
    "KID",
    "PAIRED_DELTAS",
    "CropView",
    "DomainClassifier",
    "DomainClassifierExtractor",
    "FIDInceptionV3",
    "FeatureExtractor",
    "FeatureSet",
    "InceptionExtractor",
    "PairedAccumulator",
    "SegmenterEncoderExtractor",
    "confusion_counts",
    "confusion_matrix",
    "evaluate_paired",
    "evaluate_segmentation",
    "extract_features",
    "fid",
    "frechet_distance",
    "gaussian_statistics",
    "kid",
    "load_domain_classifier",
    "load_inception_weights",
    "match_pairs",
    "match_prediction_pairs",
    "mmd2_unbiased",
    "paired_scores",
    "realism_scores",
    "segmentation_scores",
    "train_domain_classifier",
]
