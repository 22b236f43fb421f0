"""`semst refine` end to end on a GTA5-layout fixture: same layout, labels unchanged, resume, errors."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from semst.cli import main
from semst.training.state import save_training_checkpoint

from ..conftest import training_setup


def _gta5(root, count=3):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(
            root / "images" / f"{i:05d}.png"
        )
        Image.fromarray(rng.choice([7, 8, 26, 0], size=(40, 70)).astype(np.uint8), mode="L").save(
            root / "labels" / f"{i:05d}.png"
        )
    return root


def _checkpoint(path, make_config):
    config = make_config("semst")
    networks, optimizers = training_setup(config)
    return save_training_checkpoint(path, config=config, networks=networks, optimizers=optimizers, step=5)


def test_refine_gta5(tmp_path, make_config, capsys):
    root = _gta5(tmp_path / "GTA5")
    checkpoint = _checkpoint(tmp_path / "ck.safetensors", make_config)
    out = tmp_path / "GTA5-semst"
    args = ["refine", str(checkpoint), "--dataset", f"gta5:{root}", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "3 written, 0 already there, 3 label maps" in capsys.readouterr().out
    for i in range(3):
        assert Image.open(out / "images" / f"{i:05d}.png").size == (70, 40)
        assert (out / "labels" / f"{i:05d}.png").read_bytes() == (
            root / "labels" / f"{i:05d}.png"
        ).read_bytes()
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["dataset"]["name"] == "gta5" and manifest["checkpoint_step"] == 5
    (out / "images" / "00001.png").unlink()
    assert main(args) == 0
    assert "1 written, 2 already there" in capsys.readouterr().out
    # Errors: an unknown data set name, a wrong root, an output inside the data set.
    assert main(["refine", str(checkpoint), "--dataset", f"gta6:{root}", "--out", str(out)]) == 1
    assert "gta5" in capsys.readouterr().err
    assert (
        main(["refine", str(checkpoint), "--dataset", f"gta5:{tmp_path / 'nowhere'}", "--out", str(out)]) == 1
    )
    assert "nowhere" in capsys.readouterr().err
    assert main(["refine", str(checkpoint), "--dataset", f"gta5:{root}", "--out", str(root / "x")]) == 1
    assert "inside it" in capsys.readouterr().err


def test_train_on_a_named_data_set(tmp_path, image_folders, capsys):
    from ..conftest import TINY_OVERRIDES

    root = _gta5(tmp_path / "GTA5")
    _, target = image_folders
    sets = [f"{k}={v}" for k, v in TINY_OVERRIDES.items()]
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        f"gta5:{root}",
        "--target",
        str(target),
        "--out",
        str(run),
        "--max-steps",
        "1",
        "--no-progress",
        "--set",
        *sets,
    ]
    assert main(args) == 0
    assert f"source: gta5:{root}" in (run / "config.yaml").read_text()
    assert "3 images per epoch" in (run / "train.log").read_text()  # max(3 GTA5 frames, the target's 3)
    assert main(["train", "--data", f"gta5:{root}", "--out", str(tmp_path / "r2"), "--dry-run"]) == 1
    assert "give the target with --target" in capsys.readouterr().err
    bad = [
        "train",
        "--source",
        f"gta5:{tmp_path / 'nope'}",
        "--target",
        str(target),
        "--out",
        str(tmp_path / "r3"),
        "--max-steps",
        "1",
        "--no-progress",
        "--set",
        *sets,
    ]
    assert main(bad) == 1
    assert "nope" in capsys.readouterr().err


def test_prepare_maps_then_score_paired(tmp_path, capsys):
    root = tmp_path / "maps"
    rng = np.random.default_rng(1)
    for split, names in (("train", ("1", "2")), ("val", ("3",))):
        (root / split).mkdir(parents=True)
        for name in names:
            Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(
                root / split / f"{name}.png"
            )
    out = tmp_path / "maps-unaligned"
    assert main(["prepare", f"maps:{root}", "--out", str(out)]) == 0
    assert "train: 2 pairs" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "valB").iterdir()) == ["3_B.png"]
    # A perfect "translation" (the true map under the photo's name) scores RMSE 0 with the suffix options.
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "3_A.png").write_bytes((out / "valB" / "3_B.png").read_bytes())
    args = [
        "evaluate",
        "paired",
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        str(out / "valB"),
        "--pred-suffix",
        "_A",
        "--gt-suffix",
        "_B",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "RMSE 0.000" in capsys.readouterr().out
    gta = _gta5(tmp_path / "GTA5", count=1)
    assert main(["prepare", f"gta5:{gta}", "--out", str(tmp_path / "x")]) == 1
    assert "only maps:PATH needs preparing" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
