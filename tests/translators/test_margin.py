"""The translation margin (``Tiling.margin``, ``--margin``): the image is mirrored on every side before the
passes and cut back after them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from semst.refine import _identity_key
from semst.tiling import Tiling
from semst.translators import Translator

from ..conftest import TINY_MULTISCALE


@pytest.fixture(params=["single-scale", "multi-scale"])
def model(request, make_config) -> Translator:
    torch.manual_seed(0)
    extra = TINY_MULTISCALE if request.param == "multi-scale" else {}
    return Translator.from_config(make_config("semst", **{"generator.init_gain": 1.0}, **extra)).eval()


def test_a_margin_translates_the_mirrored_image_and_cuts_it_back(model):
    x = torch.rand(1, 3, 52, 76, generator=torch.Generator().manual_seed(1)) * 2 - 1
    tiling = replace(model.default_tiling(), tile=None, global_window=None)
    margined = model.translate_tensor(x, replace(tiling, margin=12))
    assert margined.shape == x.shape
    # the same as translating the mirrored image by hand and cropping it
    mirrored = model.translate_tensor(F.pad(x, (12, 12, 12, 12), mode="reflect"), tiling)
    assert torch.equal(margined, mirrored[..., 12:-12, 12:-12])
    plain = model.translate_tensor(x, tiling)
    assert not torch.allclose(margined, plain)  # the borders see other context
    assert torch.equal(model.translate_tensor(x, replace(tiling, margin=0)), plain)


def test_bad_margins_are_refused(model):
    with pytest.raises(ValueError, match="margin must be >= 0 pixels"):
        Tiling(margin=-1)
    with pytest.raises(
        ValueError, match=r"margin \(40 px\) must be smaller than the image's shorter side \(40 px\)"
    ):
        model.translate_tensor(torch.zeros(1, 3, 40, 64), replace(model.default_tiling(), margin=40))


def test_refine_keeps_margins_apart_and_reads_older_manifests_as_without(tmp_path, make_config):
    from semst.refine import RefineError, refine_dataset

    from ..test_refine import _dataset

    torch.manual_seed(0)
    model = Translator.from_config(make_config("semst")).eval()
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root, count=2)
    refine_dataset(model, samples, out, root=root, progress=False, tiling=Tiling(margin=8))
    producer = json.loads((out / "refine.json").read_text())
    assert producer["tiling"]["margin"] == 8
    with pytest.raises(RefineError, match="Outputs of two producers would mix"):
        refine_dataset(model, samples, out, root=root, progress=False, tiling=Tiling())
    older = {**producer, "tiling": {k: v for k, v in producer["tiling"].items() if k != "margin"}}
    assert _identity_key(older) == _identity_key({**producer, "tiling": {**producer["tiling"], "margin": 0}})
