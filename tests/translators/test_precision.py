"""Translation precision (``Tiling.precision``, ``--precision``): the networks' passes run under autocast, the
output stays float32 and close to fp32's; fp16 is refused off CUDA; tile batches apply to the multi-scale
global windows too."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from semst.cli import main
from semst.tiling import Tiling, tile_grid
from semst.translators import Translator

from ..conftest import TINY_MULTISCALE

# A network initialised with gain 1 (not CUT's 0.02) translates into the whole range [0, 1] (standard deviation
# about 0.27 here), so that rounding in bf16 shows at the scale of 8-bit levels. Measured on a 97 x 141 image
# (tiny networks: 8 channels, 2 residual blocks): mean absolute difference to fp32 1.17 levels single-scale and
# 0.63 multi-scale; 99th percentile 4.9 and 2.4 levels; largest 9.2 and 4.6 levels.
MEAN_LEVELS = 2.0
P99_LEVELS = 8.0


@pytest.fixture(params=["single-scale", "multi-scale"])
def wide(request, make_config) -> Translator:
    torch.manual_seed(0)
    extra = TINY_MULTISCALE if request.param == "multi-scale" else {}
    return Translator.from_config(make_config("semst", **{"generator.init_gain": 1.0}, **extra)).eval()


def _tiling(model: Translator) -> Tiling:
    if model.kind == "multi-scale":  # several local tiles and global windows
        return replace(model.default_tiling(), tile=48, overlap=12, global_window=32, batch=2)
    return model.default_tiling()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figures above were measured with one thread
    yield
    torch.set_num_threads(threads)


def test_bf16_is_within_the_stated_tolerance_of_fp32(wide, one_thread):
    x = torch.rand(1, 3, 97, 141, generator=torch.Generator().manual_seed(1))
    fp32 = wide.translate(x, _tiling(wide))
    bf16 = wide.translate(x, replace(_tiling(wide), precision="bf16"))
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    levels = ((bf16 - fp32).abs() * 255).flatten()
    assert fp32.std() > 0.1  # the output spans the range, so the comparison means something
    assert 0.05 < levels.mean() <= MEAN_LEVELS  # > 0: the passes did run in bf16
    assert torch.quantile(levels, 0.99) <= P99_LEVELS


def test_tiling_precision_is_checked(make_config):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        Tiling(precision="fp8")
    model = Translator.from_config(make_config("semst")).eval()
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        model.translate_tensor(torch.zeros(1, 3, 8, 8), Tiling(precision="fp16"))


def test_fp16_on_the_cpu_is_refused_in_one_line(tmp_path, image_folders, make_config, capsys):
    from semst.training.state import save_training_checkpoint

    from ..conftest import training_setup

    config = make_config("semst")
    networks, optimizers = training_setup(config)
    checkpoint = save_training_checkpoint(
        tmp_path / "ck.safetensors", config=config, networks=networks, optimizers=optimizers, step=1
    )
    source, _ = image_folders
    out = tmp_path / "out"
    args = [
        "translate",
        str(checkpoint),
        str(source),
        "-o",
        str(out),
        "--device",
        "cpu",
        "--precision",
        "fp16",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "semst translate: error: --precision fp16 needs a CUDA device, but the translator runs on cpu; "
        "use bf16 or fp32"
    )
    assert not out.exists()


def test_refine_records_the_precision_and_keeps_precisions_apart(tmp_path, make_config):
    from semst.refine import RefineError, refine_dataset

    from ..test_refine import _dataset

    torch.manual_seed(0)
    model = Translator.from_config(make_config("semst")).eval()
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root, count=2)
    refine_dataset(model, samples, out, root=root, progress=False, tiling=Tiling(precision="bf16"))
    import json

    assert json.loads((out / "refine.json").read_text())["tiling"]["precision"] == "bf16"
    with pytest.raises(RefineError, match="Outputs of two producers would mix"):
        refine_dataset(model, samples, out, root=root, progress=False, tiling=Tiling(precision="fp32"))


def test_global_windows_and_local_tiles_honour_the_tile_batch(make_config, monkeypatch):
    torch.manual_seed(0)
    model = Translator.from_config(make_config("semst", **TINY_MULTISCALE)).eval()
    x = torch.rand(1, 3, 120, 200, generator=torch.Generator().manual_seed(2)) * 2 - 1
    tiling = Tiling(tile=48, overlap=12, batch=1, global_window=32)
    one_at_a_time = model.translate_tensor(x, tiling)
    sizes: dict[str, list[int]] = {"global": [], "local": []}
    predict_global, local = model.predict_global, model.generator_local.forward

    def counted_global(crops, *args, **kwargs):
        sizes["global"].append(crops.shape[0])
        return predict_global(crops, *args, **kwargs)

    def counted_local(crops):
        sizes["local"].append(crops.shape[0])
        return local(crops)

    monkeypatch.setattr(model, "predict_global", counted_global)
    monkeypatch.setattr(model.generator_local, "forward", counted_local)
    batched = model.translate_tensor(x, replace(tiling, batch=4))
    # 60 x 100 downsampled pixels in windows of at most 32 x 32 overlapping by 4 (multiples of 4): 2 x 4 = 8
    # windows of 32 x 28; 120 x 200 pixels in tiles of at most 48 x 48 overlapping by 12: 3 x 6 = 18 tiles.
    assert len(tile_grid(60, 100, 32, 4, 4)) == 8 and len(tile_grid(120, 200, 48, 12, 4)) == 18
    assert sizes["global"] == [4, 4] and sizes["local"] == [4, 4, 4, 4, 2]
    torch.testing.assert_close(batched, one_at_a_time, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("whole", [False, True], ids=["tiles", "whole image"])
def test_cpu_passes_run_channels_last_and_equal_the_nchw_result(wide, whole, monkeypatch):
    # On the CPU the networks get NHWC batches (`Translator.pass_memory_format`, faster there); the result
    # equals the NCHW translation up to summation order and comes back as a plain NCHW tensor.
    x = torch.rand(1, 3, 97, 141, generator=torch.Generator().manual_seed(3)) * 2 - 1
    tiling = replace(_tiling(wide), tile=None, global_window=None) if whole else _tiling(wide)
    layouts = []
    generator = wide.generator_local if wide.kind == "multi-scale" else wide.generator
    forward = generator.forward

    def recording(crops):
        layouts.append(crops.is_contiguous(memory_format=torch.channels_last) and crops.shape[1] > 1)
        return forward(crops)

    monkeypatch.setattr(generator, "forward", recording)
    assert wide.pass_memory_format == torch.channels_last
    nhwc = wide.translate_tensor(x, tiling)
    assert layouts and all(layouts)
    assert nhwc.is_contiguous()
    monkeypatch.setattr(type(wide), "pass_memory_format", property(lambda self: torch.contiguous_format))
    layouts.clear()
    nchw = wide.translate_tensor(x, tiling)
    assert layouts and not any(layouts)
    # The same sums in another order: at most 1e-4 of the [-1, 1] range (1/80 of an 8-bit level); measured
    # 1.5e-5 with these gain-1 networks.
    torch.testing.assert_close(nhwc, nchw, rtol=0, atol=1e-4)
