"""``--weights average|last`` of translate, refine and export on a checkpoint that keeps a weight average."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from semst.cli import main
from semst.export import TORCHSCRIPT_EXTRA_FILE
from semst.training.averaging import PowerAverage
from semst.training.state import save_training_checkpoint
from semst.translators import Translator

from ..conftest import training_setup, write_images
from .test_refine_cli import _gta5


@pytest.fixture
def averaged_checkpoint(tmp_path, make_config):
    """A checkpoint whose weight average differs from its last weights."""
    config = make_config("semst", **{"train.ema_std": 0.1})
    networks, optimizers = training_setup(config)
    average = PowerAverage(networks.translator, config.train.ema_std)
    with torch.no_grad():
        for p in networks.translator.parameters():
            p.mul_(1.5)
    average.update(networks.translator, 2)  # halfway between the two
    return save_training_checkpoint(
        tmp_path / "ck.safetensors",
        config=config,
        networks=networks,
        optimizers=optimizers,
        average=average,
        step=2,
    )


def _pixels(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def test_translate_uses_the_average_unless_told_otherwise(tmp_path, averaged_checkpoint):
    write_images(tmp_path / "in", 2, (40, 32), seed=3)
    common = ["translate", str(averaged_checkpoint), str(tmp_path / "in"), "--no-progress", "--device", "cpu"]
    assert main([*common, "-o", str(tmp_path / "default")]) == 0
    assert main([*common, "-o", str(tmp_path / "average"), "--weights", "average"]) == 0
    assert main([*common, "-o", str(tmp_path / "last"), "--weights", "last"]) == 0
    default, average, last = (_pixels(tmp_path / n) for n in ("default", "average", "last"))
    assert all(np.array_equal(default[k], average[k]) for k in default)
    assert any(not np.array_equal(default[k], last[k]) for k in default)
    # the library call agrees with the command
    translator = Translator.from_checkpoint(averaged_checkpoint, device="cpu")
    image = Image.open(sorted((tmp_path / "in").iterdir())[0])
    ours = translator.translate(image, translator.tiling())
    assert np.array_equal(np.asarray(ours), default[sorted(default)[0]])


def test_refine_records_the_weights_and_refuses_to_mix_them(tmp_path, averaged_checkpoint, capsys):
    root = _gta5(tmp_path / "GTA5", count=2)
    out = tmp_path / "refined"
    args = [
        "refine",
        str(averaged_checkpoint),
        "--dataset",
        f"gta5:{root}",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    assert json.loads((out / "refine.json").read_text())["producer"]["weights"] == "average"
    capsys.readouterr()
    assert main([*args, "--weights", "last"]) == 1
    err = capsys.readouterr().err
    assert "weights average" in err and str(out) in err


def test_export_says_which_weights_it_holds(tmp_path, averaged_checkpoint):
    out = tmp_path / "model.pt"
    assert main(["export", str(averaged_checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra[TORCHSCRIPT_EXTRA_FILE])["weights"] == "average"
    last = tmp_path / "last.pt"
    assert (
        main(
            [
                "export",
                str(averaged_checkpoint),
                "--format",
                "torchscript",
                "--out",
                str(last),
                "--weights",
                "last",
            ]
        )
        == 0
    )
    torch.jit.load(str(last), _extra_files=extra)
    assert json.loads(extra[TORCHSCRIPT_EXTRA_FILE])["weights"] == "last"


def test_info_says_the_checkpoint_keeps_an_average(averaged_checkpoint, capsys):
    assert main(["info", str(averaged_checkpoint)]) == 0
    assert "weights     the run's average (relative std 0.1)" in capsys.readouterr().out
