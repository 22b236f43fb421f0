"""Writing the world: the folder layout the loaders read, the manifest, resuming, refusing foreign folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from semst.cli import main
from semst.data import SingleScaleCrops, UnpairedImages
from semst.world.dataset import write_world

SMALL = {"train": 3, "test": 2, "size": (64, 32), "aerial_size": 32, "progress": False}


def test_layout_labels_and_manifest(tmp_path):
    out = tmp_path / "world"
    manifest = write_world(out, seed=1, **SMALL)
    street = out / "street"
    for split, count in (("train", 3), ("test", 2)):
        for letter in "AB":
            images = sorted(p.name for p in (street / f"{split}{letter}").glob("*.png"))
            labels = sorted(p.name for p in (street / f"{split}{letter}_labels").glob("*.png"))
            assert images == labels and len(images) == count
        assert len(list((street / "parsing" / split).glob("*.png"))) == count
        assert len(list((out / "aerial" / f"{split}A").glob("*.png"))) == count
    label = Image.open(street / "trainB_labels" / "train_00000.png")
    assert label.mode == "L" and label.size == (64, 32)
    assert Image.open(street / "trainB" / "train_00000.png").size == (64, 32)
    saved = json.loads((out / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(manifest)) and saved["settings"]["seed"] == 1
    fractions = saved["train_class_pixel_fractions"]
    assert abs(sum(fractions["source"].values()) - 1) < 1e-6
    assert (out / "class_histograms.png").is_file()
    # The unpaired loader reads the street folders as a CUT-style data root.
    dataset = UnpairedImages(
        street / "trainA", street / "trainB", SingleScaleCrops(load_size=36, crop_size=32)
    )
    assert len(dataset) == 3 and dataset[(0, 0)].source.crop.shape == (3, 32, 32)


def test_same_seed_same_files_and_interrupted_runs_are_completed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_world(a, seed=2, **SMALL)
    write_world(b, seed=2, **SMALL)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png") if p.name != "class_histograms.png")
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    victim = a / "street" / "testB" / "test_00001.png"
    original = victim.read_bytes()
    victim.unlink()
    write_world(a, seed=2, **SMALL)
    assert victim.read_bytes() == original


def test_other_settings_and_foreign_folders_are_refused(tmp_path):
    out = tmp_path / "world"
    write_world(out, seed=0, **SMALL)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(ValueError, match="other settings"):
        write_world(out, seed=1, **SMALL)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not empty"):
        write_world(foreign, **SMALL)
    assert (foreign / "mine.txt").read_text() == "keep"


def test_cli(tmp_path, capsys):
    out = tmp_path / "w"
    args = [
        "world",
        "--out",
        str(out),
        "--train",
        "2",
        "--test",
        "1",
        "--size",
        "64x32",
        "--no-aerial",
        "--no-progress",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "source: sky" in text and f"semst train --data {out}/street" in text
    assert not (out / "aerial").exists()
    with pytest.raises(SystemExit):
        main(["world", "--out", str(out), "--size", "64by32"])
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
    labels = np.asarray(Image.open(out / "street" / "trainA_labels" / "train_00000.png"))
    assert labels.max() <= 13


def test_green_and_town_scenes_have_other_class_statistics(tmp_path):
    """The second world: trees and houses in the source, open roads and sky in the target (the opposite
    pressure of the city world), recorded in the manifest's settings; the third: the same source against a
    town that holds every class."""
    manifest = write_world(
        tmp_path / "green",
        seed=3,
        train=6,
        test=1,
        size=(128, 64),
        aerial_size=None,
        scenes="green",
        progress=False,
    )
    assert manifest["settings"]["scenes"] == "green"
    fractions = manifest["train_class_pixel_fractions"]
    assert fractions["source"]["vegetation"] > 2 * fractions["target"]["vegetation"]
    assert fractions["target"]["sky"] > fractions["source"]["sky"] + 0.1
    city = write_world(
        tmp_path / "city", seed=3, train=6, test=1, size=(128, 64), aerial_size=None, progress=False
    )
    assert "scenes" not in city["settings"]  # city worlds keep their settings (and manifests) as before
    assert city["train_class_pixel_fractions"]["target"]["building"] > 0.2
    town = write_world(
        tmp_path / "town",
        seed=3,
        train=6,
        test=1,
        size=(128, 64),
        aerial_size=None,
        scenes="town",
        progress=False,
    )
    fractions = town["train_class_pixel_fractions"]
    assert fractions["source"] == manifest["train_class_pixel_fractions"]["source"]  # the green source
    for name in ("road", "sidewalk", "building", "vegetation", "terrain", "sky", "car"):
        assert fractions["target"][name] > 0.02, name  # the town holds every class
    assert fractions["target"]["building"] > 2 * fractions["source"]["building"]
    assert fractions["source"]["vegetation"] > fractions["target"]["vegetation"] + 0.02
    with pytest.raises(ValueError, match="unknown scenes 'forest'"):
        write_world(tmp_path / "x", scenes="forest", progress=False)
