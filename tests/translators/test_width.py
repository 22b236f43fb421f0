"""Translating at the width a model trained at (``Tiling.width``, ``--width``): a model trained on images resized
to a width translates at that width and returns the input's size; 0 translates at the size given."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from semst.cli import main
from semst.tiling import Tiling
from semst.translators import Translator

from ..conftest import TINY_MULTISCALE


@pytest.fixture(params=["single-scale", "multi-scale"])
def resized(request, make_config) -> Translator:
    """A model whose training images were resized to 64 pixels wide."""
    torch.manual_seed(0)
    if request.param == "multi-scale":
        extra = {**TINY_MULTISCALE, "multiscale.image_width": 64}
    else:
        extra = {"data.preprocess": "scale_width", "data.load_size": 64, "data.crop_size": 32}
    return Translator.from_config(make_config("semst", **{"generator.init_gain": 1.0}, **extra)).eval()


def test_the_default_is_the_training_width(resized, make_config):
    assert resized.default_tiling().width == 64
    assert Translator.from_config(make_config("semst")).default_tiling().width == 0


def test_translating_at_a_width_resizes_there_and_back(resized):
    x = torch.rand(1, 3, 80, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tiling = replace(resized.default_tiling(), tile=None, global_window=None)
    out = resized.translate_tensor(x, tiling)
    assert out.shape == x.shape
    small = F.interpolate(x, size=(40, 64), mode="bilinear", antialias=True)  # (1, 3, 40, 64)
    expected = F.interpolate(
        resized.translate_tensor(small, replace(tiling, width=0)),
        size=(80, 128),
        mode="bilinear",
        antialias=True,
    ).clamp(-1, 1)
    torch.testing.assert_close(out, expected)
    native = resized.translate_tensor(x, replace(tiling, width=0))
    assert native.shape == x.shape and (native - out).abs().mean() > 1e-3  # the width does change the result


def test_an_image_already_at_the_width_is_not_resized(resized):
    x = torch.rand(1, 3, 40, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    tiling = replace(resized.default_tiling(), tile=None, global_window=None)
    torch.testing.assert_close(
        resized.translate_tensor(x, tiling), resized.translate_tensor(x, replace(tiling, width=0))
    )


@pytest.mark.parametrize("width", [-1, 1.5, True])
def test_a_bad_width_is_refused(width):
    with pytest.raises(ValueError, match="width must be a number of pixels"):
        Tiling(width=width)


def test_the_width_option(tmp_path, capsys):
    from PIL import Image

    from ..cli.bad_input import save_tiny_translator

    tiny_checkpoint = save_tiny_translator(tmp_path / "model.safetensors", multiscale=True)
    image = tmp_path / "in.png"
    Image.new("RGB", (96, 64), (40, 90, 200)).save(image)
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                str(tiny_checkpoint),
                str(image),
                "--out",
                str(out),
                "--width",
                "48",
                "--no-progress",
            ]
        )
        == 0
    )
    assert Image.open(out / "in.png").size == (96, 64)
    assert (
        main(["translate", str(tiny_checkpoint), str(image), "--out", str(tmp_path / "bad"), "--width", "-3"])
        != 0
    )
    assert "--width" in capsys.readouterr().err
