"""Tests for semst.evaluation.segmentation: segmenting files into one confusion matrix, and the maps loop."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from semst.data.labels import save_label_map
from semst.evaluation.segmentation import evaluate_paired, evaluate_segmentation

# The segmenter predicts this 2x2 map at half resolution. Bilinear upsampling of one-hot logits by 2
# (align_corners=False) gives each output pixel weight >= 0.75 * 0.75 on its nearest low-resolution pixel, so
# the argmax repeats every low-resolution class over a 2x2 block: FULL_PREDICTION.
HALF_PREDICTION = torch.tensor([[0, 1], [2, 0]])
FULL_PREDICTION = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 0, 0],
        [2, 2, 0, 0],
    ],
    dtype=np.uint8,
)
LABEL = np.array(
    [
        [0, 0, 1, 1],
        [0, 1, 1, 255],
        [2, 2, 0, 0],
        [255, 1, 0, 1],
    ],
    dtype=np.uint8,
)
# Rows = label, columns = prediction, over the 14 labelled pixels:
# label 0: six pixels, all predicted 0;
# label 1: (0,2), (0,3), (1,2) predicted 1; (1,1), (3,3) predicted 0; (3,1) predicted 2;
# label 2: (2,0), (2,1) predicted 2.
CONFUSION = [[6, 0, 0], [2, 3, 1], [0, 0, 2]]


def _one_hot_logits(batch: torch.Tensor) -> torch.Tensor:
    """Logits (B, 3, H/2, W/2) whose argmax is HALF_PREDICTION tiled to the size."""
    height, width = batch.shape[-2] // 2, batch.shape[-1] // 2
    classes = HALF_PREDICTION.repeat(height // 2, width // 2)  # (h, w)
    logits = F.one_hot(classes, num_classes=3).permute(2, 0, 1).float()  # (3, h, w)
    return logits.expand(batch.shape[0], -1, -1, -1)  # (B, 3, h, w)


def _write_pair(folder: Path, name: str, pixels: np.ndarray, label: np.ndarray) -> tuple[Path, Path]:
    image_path, label_path = folder / "images" / f"{name}.png", folder / "labels" / f"{name}.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(image_path)
    save_label_map(label, label_path)
    return image_path, label_path


def _pixels(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_half_resolution_logits_are_upsampled_and_scored(tmp_path: Path) -> None:
    pixels = [_pixels(4, 4, seed) for seed in range(2)]
    pairs = [_write_pair(tmp_path, f"img{i}", pixels[i], LABEL) for i in range(2)]
    inputs: list[torch.Tensor] = []
    seen: list[tuple[Path, Path, np.ndarray]] = []

    def segmenter(batch: torch.Tensor) -> torch.Tensor:
        inputs.append(batch.clone())
        return _one_hot_logits(batch)

    scores = evaluate_segmentation(
        segmenter,
        pairs,
        num_classes=3,
        batch_size=2,
        progress=False,
        on_image=lambda image, label, prediction: seen.append((image, label, prediction)),
    )

    # One call with both images, float32 RGB in [0, 1].
    assert len(inputs) == 1 and inputs[0].shape == (2, 3, 4, 4) and inputs[0].dtype == torch.float32
    expected_input = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0  # (2, 3, 4, 4)
    torch.testing.assert_close(inputs[0], expected_input, rtol=0, atol=1e-6)
    # The callback sees every pair with its full-resolution prediction.
    assert [(image, label) for image, label, _ in seen] == pairs
    for _, _, prediction in seen:
        assert prediction.dtype == np.uint8
        np.testing.assert_array_equal(prediction, FULL_PREDICTION)
    # Both images have the same counts, accumulated into one matrix.
    assert scores["confusion_matrix"] == [[2 * c for c in row] for row in CONFUSION]
    assert scores["num_images"] == 2
    assert scores["num_pixels"] == 28
    assert scores["pixel_accuracy"] == pytest.approx((6 + 3 + 2) / 14)
    assert scores["class_accuracy"] == pytest.approx((6 / 6 + 3 / 6 + 2 / 2) / 3)
    # IoU: class 0 6 / (6 + 2 + 0); class 1 3 / (3 + 0 + 3); class 2 2 / (2 + 1 + 0).
    assert scores["per_class_iou"] == pytest.approx([6 / 8, 3 / 6, 2 / 3])
    assert scores["mean_iou"] == pytest.approx((6 / 8 + 3 / 6 + 2 / 3) / 3)


def test_dict_returning_segmenter_uses_out(tmp_path: Path) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 4, 0), LABEL)]

    def segmenter(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # "aux" would predict everything as class 2; only "out" may be used.
        aux = torch.zeros(batch.shape[0], 3, 4, 4)
        aux[:, 2] = 1.0
        return {"out": _one_hot_logits(batch), "aux": aux}

    scores = evaluate_segmentation(segmenter, pairs, num_classes=3, progress=False)

    assert scores["confusion_matrix"] == CONFUSION
    assert scores["num_images"] == 1


def test_images_of_different_sizes_are_batched_separately(tmp_path: Path) -> None:
    wide_label = np.concatenate([LABEL, LABEL], axis=1)  # (4, 8)
    pairs = [
        _write_pair(tmp_path, "a", _pixels(4, 4, 0), LABEL),
        _write_pair(tmp_path, "b", _pixels(4, 8, 1), wide_label),
        _write_pair(tmp_path, "c", _pixels(4, 8, 2), wide_label),
    ]
    shapes: list[tuple[int, ...]] = []

    def segmenter(batch: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(batch.shape))
        return _one_hot_logits(batch)

    scores = evaluate_segmentation(segmenter, pairs, num_classes=3, batch_size=4, progress=False)

    assert shapes == [(1, 3, 4, 4), (2, 3, 4, 8)]
    # The wide label is LABEL twice side by side and the prediction tiles likewise: 1 + 2 * 2 = 5 copies.
    assert scores["confusion_matrix"] == [[5 * c for c in row] for row in CONFUSION]


def test_image_and_label_of_different_sizes_name_both_files(tmp_path: Path) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 6, 0), LABEL)]

    with pytest.raises(ValueError, match=r"img\.png' is 6x4 but its label map '.*labels/img\.png' is 4x4"):
        evaluate_segmentation(_one_hot_logits, pairs, num_classes=3, progress=False)


def test_wrong_number_of_classes_is_an_error(tmp_path: Path) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 4, 0), LABEL)]

    with pytest.raises(ValueError, match=r"C = num_classes = 19, got shape \(1, 3, 2, 2\)"):
        evaluate_segmentation(_one_hot_logits, pairs, num_classes=19, progress=False)


def test_bad_segmenter_outputs_and_arguments(tmp_path: Path) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 4, 0), LABEL)]

    with pytest.raises(ValueError, match="without the key 'out'"):
        evaluate_segmentation(lambda x: {"logits": _one_hot_logits(x)}, pairs, num_classes=3, progress=False)
    with pytest.raises(TypeError, match="got ndarray"):
        evaluate_segmentation(lambda x: np.zeros((1, 3, 2, 2)), pairs, num_classes=3, progress=False)
    with pytest.raises(ValueError, match="No .* pairs"):
        evaluate_segmentation(_one_hot_logits, [], num_classes=3, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_segmentation(_one_hot_logits, pairs, num_classes=3, batch_size=0, progress=False)


def test_module_in_training_mode_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 4, 0), LABEL)]

    class Segmenter(torch.nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            return _one_hot_logits(batch)

    with caplog.at_level(logging.WARNING, logger="semst.evaluation"):
        evaluate_segmentation(Segmenter(), pairs, num_classes=3, progress=False)
    assert "training mode" in caplog.text


def test_evaluate_paired_reads_files(tmp_path: Path) -> None:
    pred = np.array([[[10, 20, 30], [0, 0, 0]], [[255, 255, 255], [100, 100, 100]]], dtype=np.uint8)
    target = np.array([[[10, 20, 30], [5, 0, 0]], [[250, 251, 252], [90, 104, 100]]], dtype=np.uint8)
    Image.fromarray(pred).save(tmp_path / "fake.png")
    Image.fromarray(target).save(tmp_path / "real.png")
    Image.fromarray(np.zeros((3, 2, 3), dtype=np.uint8)).save(tmp_path / "tall.png")

    scores = evaluate_paired([(tmp_path / "fake.png", tmp_path / "real.png")], progress=False)

    # Largest channel differences 0, 5, 5, 10; squared sum 0 + 25 + 50 + 116 = 191 over 12 values.
    assert scores == {
        "rmse": pytest.approx(math.sqrt(191 / 12)),
        "accuracy_delta_5": 0.25,
        "accuracy_delta_10": 0.75,
        "num_pixels": 4,
        "num_images": 1,
    }
    with pytest.raises(ValueError, match=r"fake\.png' is 2x2 but '.*tall\.png' is 2x3"):
        evaluate_paired([(tmp_path / "fake.png", tmp_path / "tall.png")], progress=False)


def test_full_resolution_logits_are_used_as_they_are(tmp_path: Path) -> None:
    pairs = [_write_pair(tmp_path, "img", _pixels(4, 4, 0), LABEL)]
    logits = F.one_hot(torch.from_numpy(FULL_PREDICTION).long(), num_classes=3).permute(2, 0, 1)  # (3, 4, 4)

    scores = evaluate_segmentation(lambda batch: logits[None].float(), pairs, num_classes=3, progress=False)

    assert scores["confusion_matrix"] == CONFUSION
