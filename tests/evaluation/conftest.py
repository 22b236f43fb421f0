"""Fixtures of the realism tests: one tiny two-domain world and one domain classifier trained on it."""

from __future__ import annotations

import pytest

from semst.evaluation.crops import CropView
from semst.evaluation.domain_classifier import load_domain_classifier, train_domain_classifier
from tests.evaluation.tiny_world import write_tiny_world

# 128x64 scenes seen at their own size in 32-pixel crops: 8 crops per image.
TINY_VIEW = CropView(short_side=64, crop_size=32)
TINY_NETWORK = {"width": 8, "depth": 3, "max_width": 32}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    return write_tiny_world(tmp_path_factory.mktemp("tiny_world"), train=8, test=8, size=(128, 64))


@pytest.fixture(scope="session")
def classifier_file(tiny_world, tmp_path_factory):
    return train_domain_classifier(
        tiny_world / "source_train",
        tiny_world / "target_train",
        out=tmp_path_factory.mktemp("classifier") / "classifier.safetensors",
        view=TINY_VIEW,
        steps=50,
        batch_size=16,
        progress=False,
        **TINY_NETWORK,
    )


@pytest.fixture(scope="session")
def classifier(classifier_file):
    return load_domain_classifier(classifier_file)
