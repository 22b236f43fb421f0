from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semst import checkpoint as ckpt
from semst.model import SemST, pad_to_multiple
from semst.training.state import make_optimizers, save_training_checkpoint, training_networks


@pytest.fixture
def saved(tmp_path, make_config):
    config = make_config("semst")
    torch.manual_seed(0)
    model = SemST(config, training=True)
    networks = training_networks(model)
    optimizers = make_optimizers(networks, config.train)
    path = save_training_checkpoint(
        tmp_path / "run" / "checkpoints" / ckpt.checkpoint_name(7),
        config=config,
        networks=networks,
        optimizers=optimizers,
        step=7,
    )
    return path, model


def test_from_checkpoint_loads_the_generator_of_a_file_or_run_dir(saved):
    path, trained = saved
    for where in (path, path.parent.parent):
        model = SemST.from_checkpoint(where, device="cpu")
        assert model.step == 7 and model.checkpoint_path == path
        assert not hasattr(model, "discriminator")  # inference loads only what it needs
        for (name, a), b in zip(
            model.generator.state_dict().items(), trained.generator.state_dict().values()
        ):
            assert torch.equal(a, b), name


@pytest.mark.parametrize("size", [(32, 32), (37, 23), (5, 3), (1, 1), (64, 13)])
def test_translate_keeps_any_size(saved, size):
    model = SemST.from_checkpoint(saved[0], device="cpu")
    image = Image.new("RGB", size, (200, 30, 60))
    out = model.translate(image)
    assert out.size == size and out.mode == "RGB"


def test_translate_equals_the_generator_on_the_padded_image(saved):
    model = SemST.from_checkpoint(saved[0], device="cpu")
    x = torch.rand(2, 3, 30, 26) * 2 - 1
    padded, _ = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (32, 28)
    with torch.no_grad():
        expected = model.generator(padded)[..., :30, :26]
    torch.testing.assert_close(model.translate_tensor(x), expected)


def test_translate_tensors_in_unit_range(saved):
    model = SemST.from_checkpoint(saved[0], device="cpu")
    single = torch.rand(3, 20, 24)
    out = model.translate(single)
    assert out.shape == single.shape and out.min() >= 0 and out.max() <= 1
    batch = torch.rand(2, 3, 20, 24)
    torch.testing.assert_close(model.translate(batch)[1], model.translate(batch[1]))
    pil = model.translate(Image.fromarray((single.permute(1, 2, 0).numpy() * 255).round().astype("uint8")))
    assert pil.size == (24, 20)
    with pytest.raises(TypeError, match="PIL image or a torch tensor"):
        model.translate([1, 2, 3])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.translate_tensor(torch.rand(1, 4, 8, 8))


def test_grayscale_and_rgba_images_are_translated(saved):
    model = SemST.from_checkpoint(saved[0], device="cpu")
    for mode in ("L", "RGBA", "P", "I;16"):
        assert model.translate(Image.new(mode, (10, 9))).size == (10, 9)


def test_padding_modes():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert pad_to_multiple(x, 4)[0].shape[-2:] == (8, 8)  # at least 2 pixels at 1/4 scale
    padded, size = pad_to_multiple(x, 4, min_size=0)
    assert size == (2, 3) and padded.shape[-2:] == (4, 4)
    # pads of 2 rows do not fit reflection in a 2-row image: replication is used instead
    assert torch.equal(padded[0, 0, 3], padded[0, 0, 1])
    big = torch.arange(30.0).reshape(1, 1, 5, 6)
    reflected, _ = pad_to_multiple(big, 4)
    assert torch.equal(reflected[0, 0, 5, :6], big[0, 0, 3])  # reflection: row 5 mirrors row 3


def test_checkpoint_of_another_architecture_is_explained(tmp_path, saved, make_config):
    path, model = saved
    meta = ckpt.read_metadata(path)
    meta["config"]["generator"]["num_blocks"] = 3
    tensors = ckpt.load_tensors(path)
    bad = ckpt.save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match="generator weights do not fit"):
        SemST.from_checkpoint(bad, device="cpu")
    meta["config"]["generator"]["num_blocks"] = "many"
    worse = ckpt.save_checkpoint(tmp_path / "worse.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match="config stored in the checkpoint is not usable"):
        SemST.from_checkpoint(worse, device="cpu")


def test_tiled_translation_matches_whole_image_where_it_fits_and_is_close_elsewhere(saved):
    model = SemST.from_checkpoint(saved[0], device="cpu")
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    whole = model.translate_tensor(x)
    # one tile covers the image: identical
    torch.testing.assert_close(model.translate_tensor(x, tile=64, overlap=16), whole)
    tiled = model.translate_tensor(x, tile=32, overlap=16, tile_batch=2)
    assert tiled.shape == whole.shape
    # instance norm sees tile statistics: close, not equal
    assert (tiled - whole).abs().mean() < 0.1
    image = Image.new("RGB", (57, 41), (10, 200, 30))
    assert model.translate(image, tile=32, overlap=8).size == (57, 41)


def test_multiscale_checkpoints_load_all_translation_networks(tmp_path, make_config):
    from .conftest import TINY_MULTISCALE

    config = make_config("semst", **TINY_MULTISCALE)
    torch.manual_seed(0)
    trained = SemST(config, training=True)
    networks = training_networks(trained)
    path = save_training_checkpoint(
        tmp_path / ckpt.checkpoint_name(3),
        config=config,
        networks=networks,
        optimizers=make_optimizers(networks, config.train),
        step=3,
    )
    model = SemST.from_checkpoint(path, device="cpu")
    assert model.multiscale and model.translation_network_names() == (
        "generator_global",
        "generator_local",
        "attention",
    )
    assert not hasattr(model, "discriminator") and not hasattr(model, "generator")
    for name in model.translation_network_names():
        for key, value in getattr(model, name).state_dict().items():
            assert torch.equal(value, getattr(trained, name).state_dict()[key]), f"{name}.{key}"
    image = Image.new("RGB", (70, 41), (200, 30, 90))
    out = model.translate(image)
    assert out.size == (70, 41)
    parts = model.translate_parts(image)
    assert set(parts) == {"global", "local", "fused", "attention"}
    # parts fuse at full size, translate() band by band: equal up to rounding to 8 bits
    diff = np.abs(np.asarray(parts["fused"], dtype=int) - np.asarray(out, dtype=int))
    assert diff.max() <= 1
    assert parts["attention"].shape == (41, 70)


def test_parts_need_a_multiscale_model(saved):
    _, model = saved
    with pytest.raises(ValueError, match="multi-scale"):
        model.translate_tensor(torch.zeros(1, 3, 8, 8), parts=True)
