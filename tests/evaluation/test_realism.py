"""Realism scores measure what they claim, on a tiny world: real vs real ~ 0, source vs target large,
monotone along a source-to-target blend, the identity "translation" unrealistic; plus the API contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semst.evaluation import realism
from semst.evaluation.crops import CropView
from semst.evaluation.features import SegmenterEncoderExtractor
from semst.evaluation.realism import FeatureSet, extract_features, realism_scores
from semst.segmentation.network import SegmentationUNet
from tests.evaluation.tiny_world import BLENDS

MIN_CLASS_CROPS = 5  # 8 test images x 8 crops: classes have tens of crops, not hundreds


def labels_of(world: Path, images: list[Path]) -> list[Path]:
    return [world / f"{p.parent.name}_labels" / p.name for p in images]


@pytest.fixture(scope="module")
def reference(tiny_world, classifier):
    return extract_features(
        tiny_world / "target_test", [classifier], labels=tiny_world / "target_test_labels", progress=False
    )


@pytest.fixture(scope="module")
def checks(tiny_world, classifier, reference):
    """Scores of the target halves (real vs real), the source (identity translation) and the blends."""

    def score(images, labels, ref=reference, ref_labels=None):
        return realism_scores(
            images,
            ref,
            classifier=classifier,
            labels=labels,
            reference_labels=ref_labels,
            min_class_crops=MIN_CLASS_CROPS,
            progress=False,
        )["classifier"]

    targets = sorted((tiny_world / "target_test").glob("*.png"))
    results = {
        "halves": score(
            targets[:4], labels_of(tiny_world, targets[:4]), targets[4:], labels_of(tiny_world, targets[4:])
        ),
        "identity": score(tiny_world / "source_test", tiny_world / "source_test_labels"),
    }
    for t in BLENDS:
        results[t] = score(tiny_world / f"blend_{t:.2f}", tiny_world / "blend_labels")
    return results


def test_real_target_halves_score_as_real(checks):
    halves, identity = checks["halves"], checks["identity"]
    assert abs(halves["kid"]["mean"]) < 0.01 * identity["kid"]["mean"]
    assert abs(halves["class_matched_kid"]["kid"]) < 0.02 * identity["class_matched_kid"]["kid"]
    assert halves["target_share"] > 0.9 and halves["reference_target_share"] > 0.9


def test_identity_translation_scores_as_unrealistic(checks):
    identity = checks["identity"]
    assert identity["target_share"] < 0.1 and identity["target_probability"] < 0.3
    assert identity["kid"]["mean"] > 1.0
    assert identity["held_out"]["accuracy"] >= 0.9  # the judge is trustworthy
    # The blend at t = 0 is the same look as the identity (other layouts): the same KID, within 5%.
    assert checks[0.0]["kid"]["mean"] == pytest.approx(identity["kid"]["mean"], rel=0.05)


def test_scores_are_monotone_along_the_blend(checks):
    kid = [checks[t]["kid"]["mean"] for t in BLENDS]
    matched = [checks[t]["class_matched_kid"]["kid"] for t in BLENDS]
    share = [checks[t]["target_share"] for t in BLENDS]
    probability = [checks[t]["target_probability"] for t in BLENDS]
    for values in (kid, matched):
        tolerance = 0.02 * (values[0] - values[-1])
        assert all(b < a + tolerance for a, b in zip(values, values[1:])), values
        assert values[-1] < 0.05 * values[0]  # the full target look is nearly real
    for values, low, high in ((share, 0.1, 0.9), (probability, 0.3, 0.7)):
        assert all(b > a - 0.02 for a, b in zip(values, values[1:])), values
        assert values[0] < low and values[-1] > high


def test_class_matched_kid_reports_per_class(checks):
    matched = checks["identity"]["class_matched_kid"]
    scored = {name: entry for name, entry in matched["classes"].items() if entry["kid"] is not None}
    skipped = {name: entry for name, entry in matched["classes"].items() if entry["kid"] is None}
    # Source scenes are mostly road and sky; the target's narrow roads give few road crops at this size.
    assert "sky" in scored and "road" in matched["classes"]
    assert all(min(e["crops"], e["reference_crops"]) < MIN_CLASS_CROPS for e in skipped.values())
    assert all(
        e["crops"] >= MIN_CLASS_CROPS and e["reference_crops"] >= MIN_CLASS_CROPS for e in scored.values()
    )
    weighted = sum(e["kid"] * e["crops"] for e in scored.values()) / sum(e["crops"] for e in scored.values())
    assert matched["kid"] == pytest.approx(weighted)
    assert 0 < matched["coverage"] <= 1 and matched["scored_crops"] == sum(
        e["crops"] for e in scored.values()
    )


def test_reference_features_are_reused_and_cached(tiny_world, classifier, reference, tmp_path):
    assert reference.num_images == 8 and reference.num_crops == 64
    assert reference.features["classifier"].shape == (
        64,
        classifier.dim,
    ) and reference.crop_classes.shape == (64,)
    path = reference.save(tmp_path / "reference.safetensors")
    loaded = FeatureSet.load(path)
    np.testing.assert_array_equal(loaded.features["classifier"], reference.features["classifier"])
    np.testing.assert_array_equal(loaded.crop_classes, reference.crop_classes)
    assert loaded.view == reference.view and loaded.extractors == reference.extractors
    from_folder = realism_scores(
        tiny_world / "blend_0.50",
        tiny_world / "target_test",
        classifier=classifier,
        labels=tiny_world / "blend_labels",
        reference_labels=tiny_world / "target_test_labels",
        progress=False,
    )
    from_cache = realism_scores(
        tiny_world / "blend_0.50",
        loaded,
        classifier=classifier,
        labels=tiny_world / "blend_labels",
        progress=False,
    )
    assert from_cache["classifier"] == from_folder["classifier"]
    assert from_cache["num_images"] == 8 and from_cache["reference_crops"] == 64


def test_reference_features_of_another_extractor_are_refused(tiny_world, classifier, reference):
    segmenter = SegmenterEncoderExtractor(SegmentationUNet(19, width=4, depth=2))
    with pytest.raises(ValueError, match=r"hold \['classifier'\], not 'segmenter'"):
        realism_scores(tiny_world / "source_test", reference, extractors=[segmenter], classifier=classifier)
    changed = FeatureSet(
        **{**reference.__dict__, "extractors": {"classifier": {"name": "classifier", "sha256": "x"}}}
    )
    with pytest.raises(ValueError, match="were computed with"):
        realism_scores(tiny_world / "source_test", changed, classifier=classifier, progress=False)
    with pytest.raises(ValueError, match="trained on crops of"):
        realism_scores(tiny_world / "source_test", reference, classifier=classifier, view=CropView(64, 16))
    with pytest.raises(ValueError, match="needs a domain classifier or at least one feature extractor"):
        realism_scores(tiny_world / "source_test", reference)


def test_segmenter_encoder_features(tiny_world):
    network = SegmentationUNet(19, width=4, depth=2)
    extractor = SegmenterEncoderExtractor(network)
    assert extractor.dim == 16 and not extractor.whole_images
    assert extractor(torch.rand(3, 3, 32, 32)).shape == (3, 16)
    assert extractor(torch.rand(1, 3, 30, 45)).shape == (1, 16)  # padded inside, as the segmenter pads


class MeanColour:
    """A whole-image extractor for tests: the mean colour and its square (D = 6)."""

    name = "colour"
    dim = 6
    whole_images = True

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def describe(self) -> dict:
        return {"name": self.name}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(images.shape))
        mean = images.mean(dim=(2, 3))  # (B, 3)
        return torch.cat([mean, mean**2], dim=1)


def test_whole_image_extractors_get_same_size_batches(tmp_path, tiny_world, monkeypatch):
    from tests.conftest import write_images

    folder = tmp_path / "mixed"
    write_images(folder / "a", 3, (40, 30), seed=0)
    write_images(folder / "b", 2, (50, 20), seed=1)
    extractor = MeanColour()
    features = extract_features(folder, [extractor], batch_size=2, progress=False)
    assert features.features["colour"].shape == (5, 6) and features.num_crops == 0
    assert extractor.shapes == [(2, 3, 30, 40), (1, 3, 30, 40), (2, 3, 20, 50)]
    monkeypatch.setattr(realism, "_MAX_BUFFERED_PIXELS", 2 * 40 * 30)  # large frames: fewer per call
    bounded = MeanColour()
    extract_features(folder, [bounded], batch_size=8, progress=False)
    assert bounded.shapes == [(2, 3, 30, 40), (1, 3, 30, 40), (2, 3, 20, 50)]
    scores = realism_scores(folder, tiny_world / "target_test", extractors=[MeanColour()], progress=False)
    assert set(scores["colour"]) >= {"kid", "fid"} and "class_matched_kid" not in scores["colour"]


def test_label_maps_must_fit_the_images(tiny_world, classifier, tmp_path):
    from PIL import Image

    images = sorted((tiny_world / "source_test").glob("*.png"))
    with pytest.raises(ValueError, match="8 images but 2 label maps"):
        extract_features(images, [classifier], labels=labels_of(tiny_world, images)[:2], progress=False)
    small = tmp_path / "small_label.png"
    Image.fromarray(np.zeros((32, 64), np.uint8), mode="L").save(small)
    with pytest.raises(
        ValueError, match=r"label map .*small_label.png is 64x32 but image .*000.png is 128x64"
    ):
        extract_features(images[:1], [classifier], labels=[small], progress=False)
