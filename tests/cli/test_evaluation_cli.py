"""The scoring commands end to end on a tiny procedural world: world -> segmenter train -> evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from semst.checkpoint import read_metadata
from semst.cli import main
from semst.evaluation.pictures import distortion_map, distortion_panel


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    assert (
        main(
            [
                "world",
                "--out",
                str(out),
                "--train",
                "6",
                "--test",
                "2",
                "--size",
                "64x32",
                "--aerial-size",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def segmenter(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "segmenter.safetensors"
    street = world / "street"
    args = [
        "segmenter",
        "train",
        "--images",
        str(street / "trainB"),
        "--labels",
        str(street / "trainB_labels"),
        "--val-images",
        str(street / "testB"),
        "--val-labels",
        str(street / "testB_labels"),
        "--out",
        str(path),
        "--steps",
        "30",
        "--crop-size",
        "32",
        "--width",
        "8",
        "--depth",
        "2",
        "--photometric",
        "--no-progress",
    ]
    assert main(args) == 0
    return path


def test_segmenter_reports_its_own_accuracy(segmenter, capsys):
    meta = read_metadata(segmenter)
    assert meta["kind"] == "segmenter" and meta["num_classes"] == 19 and meta["class_names"][10] == "sky"
    assert 0 <= meta["val"]["pixel_accuracy"] <= 1 and meta["val"]["pairs"] == 2
    assert meta["config"]["photometric"] is True  # --photometric reached the training


def test_evaluate_segmentation_writes_scores_and_pictures(world, segmenter, tmp_path, capsys):
    street = world / "street"
    scores_path, pictures = tmp_path / "scores.json", tmp_path / "pictures"
    args = [
        "evaluate",
        "segmentation",
        "--segmenter",
        str(segmenter),
        "--images",
        str(street / "testA"),
        "--labels",
        str(street / "testA_labels"),
        "--output",
        str(scores_path),
        "--pictures",
        str(pictures),
        "--sources",
        str(street / "testA"),
        "--max-pictures",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 images: pixel accuracy" in out and "1 distortion picture(s)" in out
    scores = json.loads(scores_path.read_text())
    assert scores["num_images"] == 2 and scores["num_pixels"] == 2 * 64 * 32
    assert {"pixel_accuracy", "class_accuracy", "mean_iou", "per_class_iou", "confusion_matrix"} <= set(
        scores
    )
    assert np.array(scores["confusion_matrix"]).sum() == scores["num_pixels"]
    assert scores["class_names"][13] == "car"
    assert len(list(pictures.glob("*.png"))) == 1


def test_evaluate_paired_on_the_aerial_pairs(world, tmp_path, capsys):
    aerial = world / "aerial"
    path = tmp_path / "paired.json"
    assert (
        main(
            [
                "evaluate",
                "paired",
                "--pred",
                str(aerial / "testB"),
                "--gt",
                str(aerial / "testB"),
                "--output",
                str(path),
                "--no-progress",
            ]
        )
        == 0
    )
    same = json.loads(path.read_text())
    assert same["rmse"] == 0 and same["accuracy_delta_5"] == 1 and same["num_images"] == 2
    assert (
        main(
            [
                "evaluate",
                "paired",
                "--pred",
                str(aerial / "testA"),
                "--gt",
                str(aerial / "testB"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2 image pairs: RMSE" in capsys.readouterr().out


def test_missing_labels_are_named(world, segmenter, tmp_path, capsys):
    street = world / "street"
    (tmp_path / "test_00001.png").write_bytes((street / "testA_labels" / "test_00001.png").read_bytes())
    args = [
        "evaluate",
        "segmentation",
        "--segmenter",
        str(segmenter),
        "--images",
        str(street / "testA"),
        "--labels",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "test_00000" in err and "semst evaluate: error:" in err
    assert main([*args[:-2], str(tmp_path / "nowhere"), "--no-progress"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_distortion_map_marks_exactly_the_changed_pixels():
    image = np.full((2, 3, 3), 100, np.uint8)
    label = np.array([[10, 10, 255], [0, 0, 0]], np.uint8)
    prediction = np.array([[10, 8, 8], [0, 13, 0]], np.uint8)
    out = distortion_map(image, prediction, label)
    grey = round(100 * 0.3 + 160)
    assert out[0, 0].tolist() == [grey] * 3 and out[1, 0].tolist() == [grey] * 3  # right: grey
    assert out[0, 1].tolist() == [107, 142, 35]  # sky seen as vegetation: vegetation's colour
    assert out[1, 1].tolist() == [0, 0, 142]  # road seen as car
    assert out[0, 2].tolist() == [25, 25, 25]  # ignored
    panel = distortion_panel(image, prediction, label, source=image, height=20, title="x")
    assert isinstance(panel, Image.Image) and panel.height == 20 + 36
    with pytest.raises(ValueError, match="differ in size"):
        distortion_map(image, prediction[:1], label)


class _UserSegmenter(torch.nn.Module):
    """A user's model: normalised input, torchvision-style dict output at half resolution."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 19, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # torch.jit is deprecated in torch 2.13, still works
def test_exported_and_user_torchscript_segmenters(world, segmenter, tmp_path, capsys):
    street = world / "street"
    exported = tmp_path / "seg.pt"
    assert main(["segmenter", "export", str(segmenter), str(exported)]) == 0
    common = ["--images", str(street / "testA"), "--labels", str(street / "testA_labels"), "--no-progress"]
    ours, theirs = tmp_path / "a.json", tmp_path / "b.json"
    assert (
        main(["evaluate", "segmentation", "--segmenter", str(segmenter), "--output", str(ours), *common]) == 0
    )
    assert (
        main(["evaluate", "segmentation", "--segmenter", str(exported), "--output", str(theirs), *common])
        == 0
    )
    a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"]  # the TorchScript export segments identically
    torch.manual_seed(0)
    user = tmp_path / "user.pt"
    torch.jit.save(torch.jit.script(_UserSegmenter()), str(user))
    args = [
        "evaluate",
        "segmentation",
        "--segmenter",
        str(user),
        "--mean",
        "0.5",
        "0.5",
        "0.5",
        "--std",
        "0.25",
        "0.25",
        "0.25",
        *common,
    ]
    assert main(args) == 0
    assert "2 images: pixel accuracy" in capsys.readouterr().out
    assert main([*args[:4], "--mean", "0.5", "0.5", "0.5", *common]) == 1
    assert "both --mean and --std" in capsys.readouterr().err


@pytest.fixture(scope="module")
def classifier(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "classifier.safetensors"
    street = world / "street"
    args = [
        "evaluate",
        "train-classifier",
        "--source",
        str(street / "trainA"),
        "--target",
        str(street / "trainB"),
    ]
    args += [
        "--out",
        str(path),
        "--steps",
        "20",
        "--batch-size",
        "8",
        "--short-side",
        "32",
        "--crop-size",
        "16",
    ]
    assert main([*args, "--width", "8", "--depth", "2", "--no-progress"]) == 0
    return path


def test_train_classifier_reports_held_out_accuracy(classifier, capsys):
    meta = read_metadata(classifier)
    assert meta["kind"] == "domain-classifier" and meta["view"] == {"short_side": 32, "crop_size": 16}
    assert meta["held_out"]["source_images"] == 1 and meta["training"]["source_images"] == 5


def test_evaluate_realism_scores_and_caches_the_reference(world, classifier, segmenter, tmp_path, capsys):
    street = world / "street"
    cache, output = tmp_path / "reference.safetensors", tmp_path / "realism.json"
    args = [
        "evaluate",
        "realism",
        "--images",
        str(street / "testA"),
        "--labels",
        str(street / "testA_labels"),
    ]
    args += ["--classifier", str(classifier), "--segmenter", str(segmenter), "--reference-cache", str(cache)]
    args += ["--kid-subsets", "5", "--min-class-crops", "2", "--output", str(output), "--no-progress"]
    reference = ["--reference", str(street / "testB"), "--reference-labels", str(street / "testB_labels")]
    assert main([*args, *reference]) == 0
    out = capsys.readouterr().out
    assert "2 images (16 crops) against 2 reference images (16 crops)" in out
    assert (
        "classifier: target share" in out and "segmenter KID" in out and "reference features written" in out
    )
    scores = json.loads(output.read_text())
    assert 0 <= scores["classifier"]["target_share"] <= 1 and scores["view"] == {
        "short_side": 32,
        "crop_size": 16,
    }
    assert (
        scores["classifier"]["held_out"]["accuracy"] is not None
        and "class_matched_kid" in scores["segmenter"]
    )
    assert main(args) == 0  # the cached reference, without --reference
    assert "reference features read from" in capsys.readouterr().out
    assert json.loads(output.read_text())["classifier"] == scores["classifier"]


def test_evaluate_realism_errors_are_one_line(world, classifier, segmenter, tmp_path, capsys):
    street = world / "street"
    base = ["evaluate", "realism", "--images", str(street / "testA"), "--reference", str(street / "testB")]
    assert main([*base, "--no-progress"]) == 1
    assert "give at least one judge: --classifier FILE" in capsys.readouterr().err
    assert main([*base, "--inception", str(tmp_path / "pt_inception.pth"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        "pt_inception.pth do not exist; semst downloads nothing" in err and len(err.strip().splitlines()) == 1
    )
    assert main([*base, "--classifier", str(segmenter), "--no-progress"]) == 1
    assert "is a semst segmenter checkpoint, not a domain classifier" in capsys.readouterr().err
    broken = tmp_path / "images"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    assert main([*base[:3], str(broken), *base[4:], "--classifier", str(classifier), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "bad.png" in err and len(err.strip().splitlines()) == 1
