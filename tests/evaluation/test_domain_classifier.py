"""The domain classifier: network contract, deterministic training, safe checkpoint, held-out accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semst.checkpoint import CheckpointError, load_tensors, read_metadata
from semst.evaluation.domain_classifier import (
    DomainClassifier,
    DomainClassifierExtractor,
    load_domain_classifier,
    train_domain_classifier,
)
from semst.evaluation.features import FeatureExtractor
from tests.evaluation.conftest import TINY_NETWORK, TINY_VIEW


def test_network_gives_logits_and_features_for_any_crop_size():
    network = DomainClassifier(width=8, depth=3, max_width=32).eval()
    crops = torch.rand(5, 3, 32, 32)
    assert network(crops).shape == (5,)
    assert network.features(crops).shape == (5, 32) and network.dim == 32
    assert network(torch.rand(2, 3, 48, 40)).shape == (2,)
    assert DomainClassifier(**network.architecture()).architecture() == network.architecture()
    with pytest.raises(ValueError, match="RGB crops"):
        network(torch.rand(2, 1, 32, 32))


def test_checkpoint_is_safe_and_describes_itself(classifier_file):
    meta = read_metadata(classifier_file)
    assert meta["kind"] == "domain-classifier"
    assert meta["view"] == TINY_VIEW.as_dict() and meta["architecture"] == TINY_NETWORK
    assert (
        meta["training"]["source_images"] == 6 and meta["training"]["target_images"] == 6
    )  # 2 held out each
    held = meta["held_out"]
    assert held["source_images"] == 2 and held["target_images"] == 2 and held["source_crops"] == 16
    # The tiny world's looks differ a lot: even 50 steps on 6 + 6 images separate held-out crops.
    assert held["accuracy"] >= 0.9


def test_loaded_classifier_is_a_crop_feature_extractor(classifier, classifier_file):
    assert isinstance(classifier, FeatureExtractor) and isinstance(classifier, DomainClassifierExtractor)
    assert classifier.view == TINY_VIEW and not classifier.whole_images
    features = classifier(torch.rand(3, 3, 32, 32))
    assert features.shape == (3, classifier.dim) and features.dtype == torch.float32
    probability = classifier.target_probability(features)
    assert probability.shape == (3,) and np.all((probability >= 0) & (probability <= 1))
    # Features, then the head: the network's own probability.
    crops = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = torch.sigmoid(classifier.network(crops)).numpy()
    np.testing.assert_allclose(classifier.target_probability(classifier(crops)), expected, rtol=1e-5)
    description = classifier.describe()
    assert description["file"] == str(classifier_file) and len(description["sha256"]) == 64


def test_training_is_deterministic(tiny_world, tmp_path):
    def train(name: str):
        return train_domain_classifier(
            tiny_world / "source_train",
            tiny_world / "target_train",
            out=tmp_path / name,
            view=TINY_VIEW,
            steps=3,
            batch_size=8,
            progress=False,
            **TINY_NETWORK,
        )

    # Bit-identical with one thread; with several, parallel reductions may differ in the last bits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, second = load_tensors(train("a.safetensors")), load_tensors(train("b.safetensors"))
    finally:
        torch.set_num_threads(threads)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_explicit_held_out_sets_and_errors(tiny_world, tmp_path):
    path = train_domain_classifier(
        tiny_world / "source_train",
        tiny_world / "target_train",
        out=tmp_path / "c.safetensors",
        val_source=tiny_world / "source_test",
        val_target=tiny_world / "target_test",
        view=TINY_VIEW,
        steps=2,
        batch_size=8,
        progress=False,
        **TINY_NETWORK,
    )
    meta = read_metadata(path)
    assert meta["training"]["source_images"] == 8 and meta["held_out"]["target_images"] == 8
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train_domain_classifier(
            tmp_path / "nowhere", tiny_world / "target_train", out=tmp_path / "x.safetensors"
        )
    with pytest.raises(ValueError, match="val_source and val_target"):
        train_domain_classifier(
            tiny_world / "source_train",
            tiny_world / "target_train",
            out=tmp_path / "x.safetensors",
            val_source="a",
        )


def test_loading_refuses_other_files(tmp_path):
    from semst.segmentation.loading import save_segmenter
    from semst.segmentation.network import SegmentationUNet

    segmenter = save_segmenter(SegmentationUNet(3, width=4, depth=1), tmp_path / "segmenter.safetensors")
    with pytest.raises(
        CheckpointError, match=r"segmenter.safetensors is a semst segmenter checkpoint, not a domain"
    ):
        load_domain_classifier(segmenter)
    with pytest.raises(CheckpointError, match="missing.safetensors does not exist"):
        load_domain_classifier(tmp_path / "missing.safetensors")
