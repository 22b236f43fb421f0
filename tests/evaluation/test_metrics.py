"""Tests for semst.evaluation.metrics: confusion matrices and segmentation scores, and the maps metrics.

Every expected number is counted by hand in the test from the arrays written out in it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from semst.evaluation.metrics import (
    PairedAccumulator,
    confusion_counts,
    confusion_matrix,
    paired_scores,
    segmentation_scores,
)

# 4x4 example, classes 0..2 labelled and predicted, 255 ignored. Class 2 is predicted twice but never labelled.
LABEL = np.array(
    [
        [0, 0, 0, 0],
        [0, 1, 1, 255],
        [1, 1, 255, 255],
        [0, 0, 1, 1],
    ],
    dtype=np.uint8,
)
PRED = np.array(
    [
        [0, 0, 0, 2],
        [0, 1, 0, 1],
        [1, 2, 0, 0],
        [0, 0, 1, 1],
    ],
    dtype=np.uint8,
)
# Label 0 (7 pixels): predicted 0 six times, 2 once (top right).
# Label 1 (6 pixels): predicted 1 at (1,1), (2,0), (3,2), (3,3); 0 at (1,2); 2 at (2,1).
# The three 255 pixels are skipped, whatever their prediction.
EXPECTED = np.array([[6, 0, 1], [1, 4, 1], [0, 0, 0]])


# ------------------------------------------------------------------------------------------------------------
# confusion_matrix / confusion_counts


def test_confusion_matrix_of_hand_made_example() -> None:
    matrix = confusion_matrix(PRED, LABEL, num_classes=3)

    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, EXPECTED)


def test_confusion_matrix_accepts_batches_and_torch_tensors() -> None:
    pred = np.stack([PRED, PRED[::-1]])  # (2, 4, 4)
    label = np.stack([LABEL, LABEL[::-1]])  # (2, 4, 4): flipping both keeps the counts

    np.testing.assert_array_equal(confusion_matrix(pred, label, 3), 2 * EXPECTED)
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(pred), torch.from_numpy(label), 3), 2 * EXPECTED
    )
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(pred).long(), torch.from_numpy(label).int(), 3), 2 * EXPECTED
    )


def test_confusion_matrix_equals_a_pixel_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, size=(3, 7, 9))
    label[rng.random(label.shape) < 0.2] = 255
    pred = rng.integers(0, 5, size=(3, 7, 9))
    expected = np.zeros((5, 5), dtype=np.int64)
    for true, guess in zip(label.ravel(), pred.ravel()):
        if true != 255:
            expected[true, guess] += 1

    np.testing.assert_array_equal(confusion_matrix(pred, label, 5), expected)


def test_custom_ignore_index() -> None:
    label = np.array([0, 1, 9, 9])
    pred = np.array([0, 0, 1, 1])

    np.testing.assert_array_equal(confusion_matrix(pred, label, 2, ignore_index=9), [[1, 0], [1, 0]])


def test_labels_outside_the_classes_are_an_error_naming_the_value() -> None:
    label = LABEL.copy()
    label[0, 0] = 7
    label[0, 1] = 19

    with pytest.raises(ValueError, match=r"0\.\.2 .*: 7, 19\..*labelTrainIds"):
        confusion_matrix(PRED, label, num_classes=3)


def test_bad_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(PRED[:2], LABEL, 3)
    with pytest.raises(ValueError, match="ignore_index=1 is a class id"):
        confusion_matrix(PRED, LABEL, 3, ignore_index=1)
    with pytest.raises(ValueError, match="at least 1"):
        confusion_matrix(PRED, LABEL, 0)
    with pytest.raises(TypeError, match="pred must hold integer"):
        confusion_matrix(PRED.astype(np.float32), LABEL, 3)


def test_predictions_outside_the_classes_go_to_the_extra_column() -> None:
    label = np.array([0, 0, 1, 1, 255])
    pred = np.array([0, 9, 1, -1, 9])  # 9 and -1 are no class; the last pixel is ignored

    counts = confusion_counts(pred, label, num_classes=2)

    np.testing.assert_array_equal(counts, [[1, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(confusion_matrix(pred, label, num_classes=2), [[1, 0], [0, 1]])


# ------------------------------------------------------------------------------------------------------------
# segmentation_scores


def test_scores_of_hand_made_example_with_empty_class() -> None:
    # num_classes=4: class 3 is neither labelled nor predicted (empty union).
    scores = segmentation_scores(confusion_matrix(PRED, LABEL, num_classes=4))

    # 13 scored pixels (16 minus 3 ignored), 6 + 4 correct.
    assert scores["num_pixels"] == 13
    assert scores["pixel_accuracy"] == pytest.approx(10 / 13)
    # Recall: class 0 6/7, class 1 4/6; classes 2 and 3 are absent from the labels and not averaged.
    assert scores["per_class_accuracy"] == pytest.approx([6 / 7, 4 / 6, None, None])
    assert scores["class_accuracy"] == pytest.approx((6 / 7 + 4 / 6) / 2)
    # IoU = TP / (TP + FP + FN): class 0 6 / (6 + 1 + 1); class 1 4 / (4 + 0 + 2); class 2 0 / (0 + 2 + 0), a
    # predicted but unlabelled class, counts as 0; class 3's union is empty and it is left out of the mean.
    assert scores["per_class_iou"][:3] == pytest.approx([6 / 8, 4 / 6, 0.0])
    assert scores["per_class_iou"][3] is None
    assert scores["mean_iou"] == pytest.approx((6 / 8 + 4 / 6 + 0.0) / 3)
    assert scores["confusion_matrix"] == [[6, 0, 1, 0], [1, 4, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert scores["invalid_predictions"] == 0


def test_scores_are_plain_json_values() -> None:
    scores = segmentation_scores(confusion_matrix(PRED, LABEL, num_classes=4))

    assert json.loads(json.dumps(scores)) == scores
    assert type(scores["pixel_accuracy"]) is float
    assert type(scores["per_class_iou"][0]) is float
    assert type(scores["num_pixels"]) is int


def test_scores_count_predictions_outside_the_classes_as_errors() -> None:
    label = np.array([0, 0, 1, 1])
    pred = np.array([0, 9, 1, -1])

    scores = segmentation_scores(confusion_counts(pred, label, num_classes=2))

    # Two of four pixels right; each class has recall 1/2; the stray predictions are false negatives of their
    # label class but false positives of no class, so each IoU is 1 / (1 + 0 + 1).
    assert scores["num_pixels"] == 4
    assert scores["pixel_accuracy"] == pytest.approx(2 / 4)
    assert scores["class_accuracy"] == pytest.approx(0.5)
    assert scores["per_class_iou"] == pytest.approx([0.5, 0.5])
    assert scores["mean_iou"] == pytest.approx(0.5)
    assert scores["confusion_matrix"] == [[1, 0], [0, 1]]
    assert scores["invalid_predictions"] == 2


def test_perfect_prediction_scores_one() -> None:
    scores = segmentation_scores(confusion_matrix(LABEL, LABEL, num_classes=3))

    assert scores["pixel_accuracy"] == scores["class_accuracy"] == scores["mean_iou"] == 1.0
    assert scores["per_class_iou"] == [1.0, 1.0, None]


def test_scores_without_pixels_are_none() -> None:
    scores = segmentation_scores(np.zeros((3, 3), dtype=np.int64))

    assert scores["pixel_accuracy"] is None
    assert scores["class_accuracy"] is None
    assert scores["mean_iou"] is None
    assert scores["per_class_iou"] == [None, None, None]
    assert scores["num_pixels"] == 0


def test_scores_refuse_bad_matrices() -> None:
    with pytest.raises(ValueError, match=r"\(C, C\) or \(C, C \+ 1\)"):
        segmentation_scores(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="negative"):
        segmentation_scores(-np.eye(2))


# ------------------------------------------------------------------------------------------------------------
# Paired (maps) metrics

PRED_2X2 = np.array(
    [[[10, 20, 30], [0, 0, 0]], [[255, 255, 255], [100, 100, 100]]],
    dtype=np.uint8,
)
TARGET_2X2 = np.array(
    [[[10, 20, 30], [5, 0, 0]], [[250, 251, 252], [90, 104, 100]]],
    dtype=np.uint8,
)
# Differences per pixel: (0, 0, 0); (-5, 0, 0); (5, 4, 3); (10, -4, 0).
# Largest absolute channel difference: 0, 5, 5, 10. Below 5: one pixel (5 itself is not below 5); below 10:
# three pixels. Squared sum: 0 + 25 + (25 + 16 + 9) + (100 + 16) = 191.


def test_paired_scores_of_hand_made_pair() -> None:
    sums = paired_scores(PRED_2X2, TARGET_2X2)

    assert sums == {"squared_error_sum": 191, "within_delta_5": 1, "within_delta_10": 3, "num_pixels": 4}


def test_accumulator_weighs_every_pixel_the_same() -> None:
    accumulator = PairedAccumulator()
    accumulator.update(PRED_2X2, TARGET_2X2, "a.png", "a_map.png")
    # A 1x1 pair with difference (3, 3, 3): squared sum 27, within both deltas.
    accumulator.update(np.full((1, 1, 3), 3, dtype=np.uint8), np.zeros((1, 1, 3), dtype=np.uint8))

    scores = accumulator.scores()

    # 5 pixels, 15 values, squared sum 191 + 27 = 218.
    assert scores["rmse"] == pytest.approx(math.sqrt(218 / 15))
    assert scores["accuracy_delta_5"] == pytest.approx(2 / 5)
    assert scores["accuracy_delta_10"] == pytest.approx(4 / 5)
    assert scores["num_pixels"] == 5
    assert scores["num_images"] == 2
    assert json.loads(json.dumps(scores)) == scores


def test_identical_images_score_zero_error() -> None:
    accumulator = PairedAccumulator()
    accumulator.update(PRED_2X2, PRED_2X2)

    assert accumulator.scores() == {
        "rmse": 0.0,
        "accuracy_delta_5": 1.0,
        "accuracy_delta_10": 1.0,
        "num_pixels": 4,
        "num_images": 1,
    }


def test_empty_accumulator_has_no_scores() -> None:
    scores = PairedAccumulator().scores()

    assert scores["rmse"] is None and scores["accuracy_delta_5"] is None and scores["num_images"] == 0


def test_size_mismatch_names_both_images_and_sizes() -> None:
    with pytest.raises(ValueError, match=r"'fake/1_A\.png' is 2x2 but 'real/1_B\.jpg' is 3x2"):
        paired_scores(
            PRED_2X2,
            np.zeros((2, 3, 3), dtype=np.uint8),
            pred_name="fake/1_A.png",
            target_name="real/1_B.jpg",
        )


def test_paired_scores_refuse_non_rgb_arrays() -> None:
    with pytest.raises(ValueError, match=r"'p' must be \(H, W, 3\) uint8"):
        paired_scores(PRED_2X2.astype(np.float32), TARGET_2X2, pred_name="p")
    with pytest.raises(ValueError, match=r"'target' must be \(H, W, 3\) uint8"):
        paired_scores(PRED_2X2, TARGET_2X2[..., 0])
