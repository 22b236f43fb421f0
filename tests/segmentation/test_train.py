"""Training the segmenter on a tiny synthetic labelled set: sky, building, road and thin vertical poles."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.checkpoint import load_tensors, read_metadata
from semst.data.images import load_rgb
from semst.evaluation.metrics import confusion_counts, segmentation_scores
from semst.segmentation import load_segmenter
from semst.segmentation import train as train_module
from semst.segmentation.train import SegmenterTrainConfig, train_segmenter

CLASS_NAMES = ("road", "sky", "building", "pole")
POLE = 3
# Each class has its own colour; noise makes the network look at more than one pixel value.
_COLOURS = {0: (90, 90, 90), 1: (120, 170, 230), 2: (150, 90, 60), 3: (230, 200, 40)}


def write_labelled_images(
    folder: Path, count: int, seed: int, size: tuple[int, int] = (96, 48)
) -> list[tuple[Path, Path]]:
    """``count`` (image, label map) PNG pairs of ``size`` (W, H).

    Labels are mode L class ids with 255 = ignore: sky on top, road at the bottom, building between, and
    1-2 pixel wide vertical poles.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    pairs = []
    for i in range(count):
        label = np.full((height, width), 2, dtype=np.uint8)  # building
        sky_end = int(rng.integers(height // 6, height // 3))
        road_start = int(rng.integers(2 * height // 3, 5 * height // 6))
        label[:sky_end] = 1
        label[road_start:] = 0
        for _ in range(int(rng.integers(2, 5))):  # 1-2 pixel wide poles from above the sky line to the road
            left, thickness = int(rng.integers(2, width - 4)), int(rng.integers(1, 3))
            top = int(rng.integers(0, sky_end + 2))
            label[top:road_start, left : left + thickness] = POLE
        image = np.zeros((height, width, 3), dtype=np.float64)
        for class_id, colour in _COLOURS.items():
            image[label == class_id] = colour
        image += rng.normal(0.0, 12.0, size=image.shape)
        top, left = int(rng.integers(0, height - 4)), int(rng.integers(0, width - 4))
        label[top : top + 4, left : left + 4] = 255  # an unlabelled patch
        image_path, label_path = folder / f"img_{i:02d}.png", folder / f"img_{i:02d}_labels.png"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(image_path)
        Image.fromarray(label).save(label_path)
        pairs.append((image_path, label_path))
    return pairs


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory) -> dict[str, list[tuple[Path, Path]]]:
    root = tmp_path_factory.mktemp("segmentation_data")
    return {
        "train": write_labelled_images(root / "train", 6, seed=0),
        "val": write_labelled_images(root / "val", 2, seed=1),
    }


# Small enough to train to near-perfect scores on the synthetic set in a few seconds on 2 CPU threads.
TINY = {"width": 12, "depth": 3, "batch_size": 4, "crop_size": 48, "lr": 5e-3}


@pytest.fixture(scope="module")
def trained(labelled_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("segmenter") / "segmenter.safetensors"
    path = train_segmenter(
        labelled_data["train"],
        SegmenterTrainConfig(num_classes=4, steps=80, seed=0, **TINY),
        out=out,
        class_names=CLASS_NAMES,
        val_pairs=labelled_data["val"],
        progress=False,
    )
    return path


def test_training_learns_the_synthetic_classes_thin_poles_included(trained):
    val = read_metadata(trained)["val"]
    assert val["pixel_accuracy"] > 0.9
    assert val["class_iou"][POLE] > 0.5
    assert val["mean_iou"] == pytest.approx(np.mean(val["class_iou"]))


def test_loaded_segmenter_reproduces_the_validation_scores(trained, labelled_data):
    """What load_segmenter returns is the network that was validated: same confusion matrix, same scores."""
    segmenter = load_segmenter(trained)
    confusion = np.zeros((4, 5), dtype=np.int64)
    for image_path, label_path in labelled_data["val"]:
        x = torch.from_numpy(np.array(load_rgb(image_path))).permute(2, 0, 1)[None].float() / 255
        label = np.asarray(Image.open(label_path))
        pred = segmenter(x).argmax(1)[0].numpy()
        confusion += confusion_counts(pred, label, 4)
    scores = segmentation_scores(confusion)
    val = read_metadata(trained)["val"]
    assert scores["pixel_accuracy"] == pytest.approx(val["pixel_accuracy"], abs=1e-12)
    assert scores["mean_iou"] == pytest.approx(val["mean_iou"], abs=1e-12)


def test_checkpoint_metadata_is_complete(trained, labelled_data):
    meta = read_metadata(trained)
    assert meta["kind"] == "segmenter"
    assert meta["architecture"] == {"name": "unet", "num_classes": 4, "width": 12, "depth": 3} | {
        "norm": "group",
        "max_width": 256,
    }
    assert meta["num_classes"] == 4 and meta["class_names"] == list(CLASS_NAMES)
    config = meta["config"]
    assert config["steps"] == 80 and meta["train_pairs"] == 6 and config["seed"] == 0
    assert config["crop_size"] == [48, 48] and config["batch_size"] == 4 and meta["ignore_index"] == 255
    assert SegmenterTrainConfig.from_checkpoint_meta(meta) == SegmenterTrainConfig(
        num_classes=4, steps=80, seed=0, **TINY
    )
    assert set(meta["val"]) >= {"pixel_accuracy", "mean_iou", "class_iou"} and meta["val"]["pairs"] == 2
    tensors = load_tensors(trained)
    assert tensors and all(name.startswith("segmenter.") for name in tensors)


def _train_briefly(pairs, out, seed, class_names=None, **kwargs):
    options = TINY | {"width": 4, "depth": 2, "crop_size": (24, 40)} | kwargs
    config = SegmenterTrainConfig(num_classes=4, steps=3, seed=seed, **options)
    return train_segmenter(pairs, config, out=out, class_names=class_names, progress=False)


def test_same_seed_gives_identical_weights(labelled_data, tmp_path):
    a = load_tensors(_train_briefly(labelled_data["train"], tmp_path / "a.safetensors", seed=5))
    b = load_tensors(_train_briefly(labelled_data["train"], tmp_path / "b.safetensors", seed=5))
    c = load_tensors(_train_briefly(labelled_data["train"], tmp_path / "c.safetensors", seed=6))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_progress_is_logged(labelled_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="semst.segmenter"):
        _train_briefly(labelled_data["train"], tmp_path / "s.safetensors", seed=0, log_every=1)
    messages = [r.getMessage() for r in caplog.records if r.name == "semst.segmenter"]
    assert sum("loss" in m for m in messages) == 3 and "saved" in messages[-1]


def test_config_lists_every_problem_in_one_error():
    with pytest.raises(ValueError, match=r"steps must be >= 1, got 0; .*lr must be > 0, got -1") as error:
        SegmenterTrainConfig(steps=0, lr=-1, crop_size=(8, 0))
    assert "crop_size" in str(error.value) and "invalid segmenter training config" in str(error.value)
    with pytest.raises(ValueError, match="scale_range"):
        SegmenterTrainConfig(scale_range=(1.5, 1.0))


def test_config_round_trips_through_json_data():
    config = SegmenterTrainConfig(crop_size=64, scale_range=[0.5, 2.0], warmup_steps=3)
    assert config.crop_size == (64, 64) and config.scale_range == (0.5, 2.0)
    assert SegmenterTrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown segmenter training settings \['stepz'\]"):
        SegmenterTrainConfig.from_dict({"stepz": 3})


def test_config_of_checkpoints_written_before_the_config_was_saved():
    old_meta = {
        "kind": "segmenter",
        "architecture": {"name": "unet", "num_classes": 4, "width": 12, "depth": 3, "norm": "group"},
        "num_classes": 4,
        "steps": 80,
        "train_pairs": 6,
        "crop_size": [48, 40],
        "batch_size": 4,
        "lr": 0.005,
        "weight_decay": 0.0001,
        "scale_range": [0.75, 1.25],
        "seed": 0,
        "ignore_index": 255,
    }
    config = SegmenterTrainConfig.from_checkpoint_meta(old_meta)
    assert config == SegmenterTrainConfig(
        num_classes=4, steps=80, crop_size=(48, 40), batch_size=4, lr=0.005, seed=0, width=12, depth=3
    )
    assert SegmenterTrainConfig.from_checkpoint_meta({"kind": "segmenter", "num_classes": 4}) is None


def test_augmentation_resizes_labels_with_nearest_only():
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 3, 7, 255], dtype=np.uint8), size=(30, 50))
    image = Image.fromarray(rng.integers(0, 256, size=(30, 50, 3), dtype=np.uint8))
    for i in range(20):
        crop, crop_label = train_module._augment(image, label, (40, 64), (0.6, 1.6), np.random.default_rng(i))
        assert crop.shape == (40, 64, 3) and crop.dtype == np.uint8
        assert crop_label.shape == (40, 64)
        # No interpolated values such as 1, 5 or 131 between class ids; outside the image is ignored.
        assert set(np.unique(crop_label).tolist()) <= {0, 3, 7, 255}


def _write_label(path, values):
    Image.fromarray(values).save(path)
    return path


def test_bad_label_maps_are_explained(labelled_data, tmp_path):
    image_path = labelled_data["train"][0][0]
    width, height = Image.open(image_path).size
    wrong_values = _write_label(tmp_path / "ids.png", np.full((height, width), 9, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"ids\.png contains values \[9\]"):
        _train_briefly([(image_path, wrong_values)], tmp_path / "x.safetensors", seed=0)
    colour = tmp_path / "colour.png"
    Image.new("RGB", (width, height)).save(colour)
    with pytest.raises(ValueError, match=r"colour\.png' is a RGB colour image"):
        _train_briefly([(image_path, colour)], tmp_path / "x.safetensors", seed=0)
    small = _write_label(tmp_path / "small.png", np.zeros((height, width - 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"small\.png is .* same size"):
        _train_briefly([(image_path, small)], tmp_path / "x.safetensors", seed=0)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        _train_briefly([(image_path, tmp_path / "missing.png")], tmp_path / "x.safetensors", seed=0)
    with pytest.raises(ValueError, match="class_names"):
        _train_briefly(labelled_data["train"], tmp_path / "x.safetensors", seed=0, class_names=["a"])


def test_palette_label_maps_use_the_index_not_the_colour(tmp_path):
    values = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    image = Image.fromarray(values).convert("P")
    image.putpalette([200, 10, 10] * 256)  # every index displays the same colour
    image.save(tmp_path / "p.png")
    assert train_module._load_label_map(tmp_path / "p.png", num_classes=3).tolist() == values.tolist()


def test_photometric_augmentation_changes_the_images_only(labelled_data):
    order = train_module._SampleOrder(len(labelled_data["train"]), seed=0)
    plain = SegmenterTrainConfig(num_classes=4, steps=4, seed=0, **TINY)
    coloured = SegmenterTrainConfig(num_classes=4, steps=4, seed=0, photometric=True, **TINY)
    x, y = train_module._training_batch(labelled_data["train"], order, 2, plain)
    xc, yc = train_module._training_batch(labelled_data["train"], order, 2, coloured)
    assert torch.equal(y, yc)  # the same crops and flips: the colour draws come after them
    assert not torch.equal(x, xc) and xc.shape == x.shape
    assert SegmenterTrainConfig.from_dict(coloured.to_dict()).photometric
