"""The quality gate of `refine_dataset`: per-frame scores, flags, left-out frames and the flip summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.evaluation import evaluate_segmentation
from semst.refine import QualityGate, RefineError, refine_dataset
from semst.translators import Translator

from .test_refine import _dataset, _Sample

H, W = 30, 40
ROAD, BUILDING, SKY = 0, 2, 10


class _Rows:
    """A segmenter stub: 'building' on the top ``rows`` rows, 'road' below, whatever the image."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:])  # (B, 19, H, W)
        logits[:, ROAD] = 1.0
        logits[:, BUILDING, : self.rows] = 2.0
        return logits


def _sky_over_road(root: Path, sky_rows: list[int]) -> list[_Sample]:
    """One frame per entry: ``sky_rows[i]`` rows of sky over road, the last row ignored (255)."""
    rng = np.random.default_rng(0)
    samples = []
    for i, rows in enumerate(sky_rows):
        image, label = root / "images" / f"{i}.png", root / "labels" / f"{i}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(image)
        values = np.full((H, W), ROAD, dtype=np.uint8)
        values[:rows] = SKY
        values[-1] = 255
        Image.fromarray(values, mode="L").save(label)
        samples.append(_Sample(image, label, image.relative_to(root), label.relative_to(root)))
    return samples


@pytest.fixture
def model(make_config):
    torch.manual_seed(0)
    return Translator.from_config(make_config("semst")).eval()


def test_flip_summary_names_the_classes_that_turned_into_others(tmp_path, model):
    samples = _sky_over_road(tmp_path / "data", [10, 10, 10])
    gate = QualityGate(_Rows(10))  # building exactly where the label says sky
    report = refine_dataset(
        model, samples, tmp_path / "out", root=tmp_path / "data", progress=False, quality=gate
    )
    labelled = (H - 1) * W  # per frame
    sky = 10 * W
    assert report.quality["flips"] == [
        {
            "true_id": SKY,
            "true": "sky",
            "predicted_id": BUILDING,
            "predicted": "building",
            "pixels": 3 * sky,
            "share": sky / labelled,
            "share_of_true": 1.0,
        }
    ]
    assert report.quality["pixel_accuracy"] == (labelled - sky) / labelled
    assert report.quality["mean_iou"] == pytest.approx(1 / 3)  # road 1, sky 0, building 0
    for frame in report.quality["frames"].values():
        assert frame == {"pixel_accuracy": (labelled - sky) / labelled, "mean_iou": pytest.approx(1 / 3)}
    manifest = json.loads((tmp_path / "out" / "refine.json").read_text())
    assert manifest["quality"]["flips"] == report.quality["flips"]


def test_flagged_and_dropped_frames_are_those_below_the_thresholds(tmp_path, model):
    sky_rows = [2, 6, 10, 14]  # the stub predicts road everywhere: pixel accuracy 1 - rows / (H - 1)
    samples = _sky_over_road(tmp_path / "data", sky_rows)
    accuracy = [1 - rows / (H - 1) for rows in sky_rows]  # 0.93, 0.79, 0.66, 0.52
    gate = QualityGate(_Rows(0), flag_below=0.75, drop_below=0.6)
    out = tmp_path / "out"
    report = refine_dataset(model, samples, out, root=tmp_path / "data", progress=False, quality=gate)
    assert report.flagged == ["images/2.png"] and report.dropped == ["images/3.png"]
    assert report.ok and report.written == 3
    assert not (out / "images" / "3.png").exists() and not (out / "labels" / "3.png").exists()
    frames = report.quality["frames"]
    assert [frames[f"images/{i}.png"]["pixel_accuracy"] for i in range(4)] == pytest.approx(accuracy)
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["quality"]["dropped"] == ["images/3.png"] and manifest["quality"]["flagged"] == [
        "images/2.png"
    ]
    assert "images/3.png" not in manifest["outputs"]


def test_per_frame_scores_equal_evaluate_segmentation(tmp_path, model):
    torch.manual_seed(3)
    segmenter = torch.nn.Conv2d(3, 19, 1).eval()  # depends on the image: a real test of what is scored
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root, count=3)
    gate = QualityGate(segmenter)
    report = refine_dataset(model, samples, out, root=root, progress=False, quality=gate)
    for sample in samples:
        expected = evaluate_segmentation(
            segmenter, [(out / sample.relative, sample.label)], num_classes=19, progress=False
        )
        frame = report.quality["frames"][sample.relative.as_posix()]
        assert frame == {"pixel_accuracy": expected["pixel_accuracy"], "mean_iou": expected["mean_iou"]}
    overall = evaluate_segmentation(
        segmenter, [(out / s.relative, s.label) for s in samples], num_classes=19, progress=False
    )
    assert report.quality["pixel_accuracy"] == overall["pixel_accuracy"]
    assert report.quality["mean_iou"] == overall["mean_iou"]


def test_thresholds_must_be_fractions():
    with pytest.raises(RefineError, match="between 0 and 1"):
        QualityGate(_Rows(0), drop_below=80)
