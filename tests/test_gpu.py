"""CUDA and mixed-precision paths. Marked ``gpu``: run with ``pytest -m gpu`` on a machine with a GPU."""

from __future__ import annotations

import pytest
import torch

from semst import checkpoint as ckpt
from semst.training.loop import train
from semst.translators import Translator

from .conftest import TINY_MULTISCALE

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("multiscale", [False, True], ids=["single-scale", "multi-scale"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_and_resume_on_cuda(tmp_path, image_folders, make_config, precision, multiscale):
    source, target = image_folders
    overrides = {
        "train.device": "cuda",
        "train.precision": precision,
        **(TINY_MULTISCALE if multiscale else {}),
    }
    config = make_config("semst", source, target, **overrides, **{"train.max_steps": 2})
    first = train(config, tmp_path / "run", progress=False)
    assert ckpt.read_metadata(first)["step"] == 2
    resumed = train(
        make_config("semst", source, target, **overrides, **{"train.max_steps": 3}),
        tmp_path / "run",
        resume=True,
        progress=False,
    )
    tensors = ckpt.load_tensors(resumed)
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point())


@pytest.mark.parametrize("multiscale", [False, True], ids=["single-scale", "multi-scale"])
def test_translate_on_cuda_matches_cpu(tmp_path, image_folders, make_config, multiscale):
    source, target = image_folders
    extra = TINY_MULTISCALE if multiscale else {}
    path = train(
        make_config("semst", source, target, **{"train.max_steps": 1, **extra}),
        tmp_path / "run",
        progress=False,
    )
    x = torch.rand(1, 3, 137, 229)  # several local tiles and a global window for the multi-scale model
    cpu = Translator.from_checkpoint(path, device="cpu").translate(x)
    gpu = Translator.from_checkpoint(path, device="cuda").translate(x.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("multiscale", [False, True], ids=["single-scale", "multi-scale"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_translation_precisions_on_cuda(make_config, multiscale, precision):
    """bf16 and fp16 translation on the GPU: float32 output within the CPU test's bf16 tolerance of fp32
    (tests/translators/test_precision.py), with several tiles and global windows 4 at a time."""
    from dataclasses import replace

    torch.manual_seed(0)
    extra = TINY_MULTISCALE if multiscale else {}
    model = (
        Translator.from_config(make_config("semst", **{"generator.init_gain": 1.0}, **extra)).cuda().eval()
    )
    tiling = replace(model.default_tiling(), tile=48, overlap=12, batch=4)
    if multiscale:
        tiling = replace(tiling, global_window=32)
    x = torch.rand(1, 3, 97, 141, generator=torch.Generator().manual_seed(1)).cuda()
    fp32 = model.translate(x, tiling)
    low = model.translate(x, replace(tiling, precision=precision))
    assert low.dtype == torch.float32 and low.device.type == "cuda"
    levels = ((low - fp32).abs() * 255).flatten().cpu()
    assert 0 < levels.mean() <= 2.0 and torch.quantile(levels, 0.99) <= 8.0
