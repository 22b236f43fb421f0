"""Translators: loading from checkpoints (today's and semst 0.1's), provenance, translation of any size,
tiling, and the whole-image forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from semst import checkpoint as ckpt
from semst.networks.padding import pad_to_multiple
from semst.tiling import Tiling
from semst.training.state import save_training_checkpoint
from semst.translators import MultiScaleTranslator, SingleScaleTranslator, Translator

from ..conftest import TINY_MULTISCALE, training_setup


def _save(tmp_path, config, step=7):
    networks, optimizers = training_setup(config)
    path = save_training_checkpoint(
        tmp_path / "run" / "checkpoints" / ckpt.checkpoint_name(step),
        config=config,
        networks=networks,
        optimizers=optimizers,
        step=step,
    )
    return path, networks


@pytest.fixture
def saved(tmp_path, make_config):
    return _save(tmp_path, make_config("semst"))


def test_from_checkpoint_loads_the_translator_of_a_file_or_run_dir(saved):
    path, trained = saved
    for where in (path, path.parent.parent):
        translator = Translator.from_checkpoint(where, device="cpu")
        assert isinstance(translator, SingleScaleTranslator)
        assert translator.step == 7 and translator.checkpoint_path == path  # provenance
        assert [name for name, _ in translator.named_children()] == ["generator"]  # no D, no F
        for (name, a), b in zip(translator.state_dict().items(), trained.translator.state_dict().values()):
            assert torch.equal(a, b), name


def test_a_fresh_translator_has_no_provenance(make_config):
    translator = Translator.from_config(make_config("semst"))
    assert translator.checkpoint_path is None and translator.step is None
    with pytest.raises(Exception, match="describes a single-scale translator"):
        MultiScaleTranslator.from_config(make_config("semst"))


@pytest.mark.parametrize("size", [(32, 32), (37, 23), (5, 3), (1, 1), (64, 13)])
def test_translate_keeps_any_size(saved, size):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    image = Image.new("RGB", size, (200, 30, 60))
    out = translator.translate(image)
    assert out.size == size and out.mode == "RGB"


def test_translate_equals_the_generator_on_the_padded_image(saved):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    x = torch.rand(2, 3, 30, 26) * 2 - 1
    padded = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (32, 28)
    with torch.no_grad():
        expected = translator.generator(padded)[..., :30, :26]
        torch.testing.assert_close(translator(x), expected)
    torch.testing.assert_close(translator.translate_tensor(x), expected)


def test_translate_tensors_in_unit_range(saved):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    single = torch.rand(3, 20, 24)
    out = translator.translate(single)
    assert out.shape == single.shape and out.min() >= 0 and out.max() <= 1
    batch = torch.rand(2, 3, 20, 24)
    torch.testing.assert_close(translator.translate(batch)[1], translator.translate(batch[1]))
    pil = translator.translate(
        Image.fromarray((single.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
    )
    assert pil.size == (24, 20)
    with pytest.raises(TypeError, match="PIL image or a torch tensor"):
        translator.translate([1, 2, 3])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        translator.translate_tensor(torch.rand(1, 4, 8, 8))


def test_grayscale_and_rgba_images_are_translated(saved):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    for mode in ("L", "RGBA", "P", "I;16"):
        assert translator.translate(Image.new(mode, (10, 9))).size == (10, 9)


def test_checkpoint_of_another_architecture_is_explained(tmp_path, saved):
    path, _ = saved
    meta = ckpt.read_metadata(path)
    meta["config"]["generator"]["num_blocks"] = 3
    tensors = ckpt.load_tensors(path)
    bad = ckpt.save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match="translator weights do not fit"):
        Translator.from_checkpoint(bad, device="cpu")
    meta["config"]["generator"]["num_blocks"] = "many"
    worse = ckpt.save_checkpoint(tmp_path / "worse.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match="config stored in the checkpoint is not usable"):
        Translator.from_checkpoint(worse, device="cpu")
    del meta["config"]
    none = ckpt.save_checkpoint(tmp_path / "none.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match="holds no config"):
        Translator.from_checkpoint(none, device="cpu")


def test_tiling_settings_are_checked_on_construction(saved):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    assert translator.default_tiling() == Tiling(tile=None, overlap=64, batch=4, global_window=None)
    assert translator.tiling(tile=128) == Tiling(tile=128, overlap=64, batch=4)
    for bad, message in (
        ({"tile": 0}, "tile must be a positive"),
        ({"tile": 32, "overlap": 32}, r"overlap \(32 px\) must be smaller than the tile \(32 px\)"),
        ({"overlap": -1}, "overlap must be >= 0"),
        ({"batch": 0}, "batch must be a positive"),
        ({"global_window": -4}, "global_window must be a positive"),
    ):
        with pytest.raises(ValueError, match=message):
            translator.tiling(**bad)
    with pytest.raises(ValueError, match="global window needs a multi-scale translator"):
        translator.translate_tensor(torch.zeros(1, 3, 8, 8), Tiling(global_window=64))


def test_tiled_translation_matches_whole_image_where_it_fits_and_is_close_elsewhere(saved):
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    whole = translator.translate_tensor(x)
    # one tile covers the image: identical
    torch.testing.assert_close(translator.translate_tensor(x, Tiling(tile=64, overlap=16)), whole)
    tiled = translator.translate_tensor(x, Tiling(tile=32, overlap=16, batch=2))
    assert tiled.shape == whole.shape
    # instance norm sees tile statistics: close, not equal
    assert (tiled - whole).abs().mean() < 0.1
    image = Image.new("RGB", (57, 41), (10, 200, 30))
    assert translator.translate(image, Tiling(tile=32, overlap=8)).size == (57, 41)


def test_large_single_scale_images_are_tiled_automatically(saved, monkeypatch):
    """Above AUTO_TILE_PIXELS a whole-image tiling becomes AUTO_TILING (here both shrunk to a test's size);
    an explicit tile is kept, and smaller images still get one whole-image pass."""
    from semst.cli.translate import AUTO_TILE_SIDE
    from semst.translators import single_scale

    assert single_scale.AUTO_TILE_PIXELS == AUTO_TILE_SIDE**2  # what `semst translate --help` says
    translator = Translator.from_checkpoint(saved[0], device="cpu")
    small, large = torch.rand(1, 3, 24, 32) * 2 - 1, torch.rand(1, 3, 40, 56) * 2 - 1
    whole_small, whole_large = translator(small), translator(large)
    auto = Tiling(tile=32, overlap=8, batch=1)
    monkeypatch.setattr(single_scale, "AUTO_TILE_PIXELS", 24 * 32)
    monkeypatch.setattr(single_scale, "AUTO_TILING", auto)
    torch.testing.assert_close(translator.translate_tensor(small), whole_small)
    tiled = translator.translate_tensor(large)
    torch.testing.assert_close(tiled, translator.translate_tensor(large, auto))
    assert not torch.allclose(tiled, whole_large)
    # A tile at least the image's side is one whole-image pass, whatever the size.
    torch.testing.assert_close(translator.translate_tensor(large, Tiling(tile=56, overlap=8)), whole_large)


def test_multiscale_checkpoints_load_all_translation_networks(tmp_path, make_config):
    path, trained = _save(tmp_path, make_config("semst", **TINY_MULTISCALE), step=3)
    translator = Translator.from_checkpoint(path, device="cpu")
    assert isinstance(translator, MultiScaleTranslator) and translator.scale == 2
    assert [name for name, _ in translator.named_children()] == [
        "generator_global",
        "generator_local",
        "attention",
    ]
    for key, value in translator.state_dict().items():
        assert torch.equal(value, trained.translator.state_dict()[key]), key
    image = Image.new("RGB", (70, 41), (200, 30, 90))
    out = translator.translate(image)
    assert out.size == (70, 41)
    parts = translator.translate_parts(image)
    assert set(parts) == {"global", "local", "fused", "attention"}
    # parts fuse at full size, translate() band by band: equal up to rounding to 8 bits
    diff = np.abs(np.asarray(parts["fused"], dtype=int) - np.asarray(out, dtype=int))
    assert diff.max() <= 1
    assert parts["attention"].shape == (41, 70)


def _as_version_1(path, out):
    """Rewrite a checkpoint as semst 0.1 wrote it: format version 1, networks named by hand."""
    version_1 = {
        "translator.generator.": "generator.",
        "translator.generator_global.": "generator_global.",
        "translator.generator_local.": "generator_local.",
        "translator.attention.": "attention.",
        "projectors.main.": "projector.",
        "projectors.global.": "projector_global.",
        "projectors.local.": "projector_local.",
    }
    tensors = {}
    for name, tensor in ckpt.load_tensors(path).items():
        for new, old in version_1.items():
            if name.startswith(new):
                name = old + name[len(new) :]
                break
        tensors[name] = tensor.contiguous()
    header = {"format": ckpt.FORMAT, "format_version": "1", "meta": json.dumps(ckpt.read_metadata(path))}
    save_file(tensors, str(out), metadata=header)
    return out


@pytest.mark.parametrize("multiscale", [False, True], ids=["single-scale", "multi-scale"])
def test_checkpoints_of_semst_0_1_still_translate(tmp_path, make_config, multiscale):
    config = make_config("semst", **(TINY_MULTISCALE if multiscale else {}))
    path, trained = _save(tmp_path, config)
    old = _as_version_1(path, tmp_path / "old.safetensors")
    assert ckpt.read_header(old)[0] == 1
    translator = Translator.from_checkpoint(old, device="cpu")
    for key, value in translator.state_dict().items():
        assert torch.equal(value, trained.translator.state_dict()[key]), key
    x = torch.rand(1, 3, 40, 36)
    torch.testing.assert_close(translator.translate(x), Translator.from_checkpoint(path).translate(x))


def test_training_states_of_semst_0_1_are_refused_by_name(tmp_path, make_config, image_folders):
    from semst.training.loop import train

    source, target = image_folders
    config = make_config("semst", source, target, **{"train.max_steps": 1})
    path = train(config, tmp_path / "run", progress=False)
    _as_version_1(path, path)  # the run's latest checkpoint, as semst 0.1 wrote it
    with pytest.raises(ckpt.CheckpointError, match="format version 1 .*cannot resume"):
        train(config.replace({"train.max_steps": 2}), tmp_path / "run", resume=True, progress=False)
