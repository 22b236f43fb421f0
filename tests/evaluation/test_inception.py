"""The FID Inception network: semst's features equal torch-fidelity's for the same weights file; loading."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from semst.checkpoint import CheckpointError
from semst.evaluation.inception import (
    FIDInceptionV3,
    InceptionExtractor,
    load_inception_weights,
    resize_bilinear_tf1,
)
from tests.evaluation.references import reference_module


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A complete weights file's state dict (with ``fc`` and batch counters) of random, well-scaled values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    with torch.device("meta"):
        shapes = FIDInceptionV3().state_dict()
    for name, tensor in shapes.items():
        if name.endswith("conv.weight"):
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight"):
            value = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif name.endswith(("bn.bias", "running_mean")):
            value = 0.1 * torch.randn(tensor.shape, generator=generator)
        elif name.endswith("running_var"):
            value = 0.5 + 1.5 * torch.rand(tensor.shape, generator=generator)
        else:  # num_batches_tracked
            value = torch.tensor(0)
        state[name] = value
    state["fc.weight"] = 0.01 * torch.randn(1008, 2048, generator=generator)
    state["fc.bias"] = torch.zeros(1008)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(random_inception_state(), path)
    return path


def images_uint8(count: int = 2, height: int = 45, width: int = 70) -> torch.Tensor:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(count, 3, 6, 8)).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(small), size=(height, width), mode="bicubic", align_corners=False)
    noise = torch.from_numpy(rng.normal(0, 20, size=smooth.shape).astype(np.float32))
    return (smooth + noise).clamp(0, 255).round().to(torch.uint8)  # (B, 3, H, W)


def test_tf1_resize_samples_at_i_times_in_over_out():
    x = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4)  # 0 1 2 3
    # out = 8: positions 0, .5, 1, ..., 3.5 -> the last one clamps to the border value 3
    expected = torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    torch.testing.assert_close(resize_bilinear_tf1(x, (1, 8))[0, 0, 0], expected)
    # same size: identity
    image = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(resize_bilinear_tf1(image, (5, 7)), image)


def torch_fidelity_features(weights_file, images: torch.Tensor, dtype: str) -> torch.Tensor:
    reference = reference_module("fidelity_inception")
    if reference is None:
        pytest.skip("torch-fidelity is not installed (make test installs it with --no-deps)")
    network = reference.FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048"],
        feature_extractor_weights_path=str(weights_file),  # our own file: its pickle is safe to load
        feature_extractor_internal_dtype=dtype,
    )
    with torch.no_grad():
        (features,) = network(images)
    return features


def test_features_equal_torch_fidelity(weights_file):
    """torch-fidelity's extractor and semst's, one weights file, one image of another size than 299."""
    images = images_uint8(count=1)
    theirs = torch_fidelity_features(weights_file, images, "float32")
    ours = InceptionExtractor(weights_file)(images.float() / 255.0)
    assert ours.shape == (1, 2048) and ours.dtype == torch.float32
    assert theirs.abs().mean() > 0.01  # the random network passes a signal through
    # Bit-identical on the development machine; the tolerance allows other convolution kernels.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


@pytest.mark.slow
def test_features_equal_torch_fidelity_in_float64(weights_file):
    images = images_uint8(count=2, height=300, width=420)
    theirs = torch_fidelity_features(weights_file, images, "float64")
    ours = InceptionExtractor(weights_file, dtype=torch.float64)(images.double() / 255.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))


def test_loads_legacy_and_safetensors_files_and_skips_unused_tensors(weights_file, tmp_path):
    state = load_inception_weights(weights_file)
    assert "fc.weight" not in state and not any(k.endswith("num_batches_tracked") for k in state)
    legacy = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    full = random_inception_state()
    without_counters = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    torch.save(without_counters, legacy, _use_new_zipfile_serialization=False)
    converted = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in full.items()}, str(converted))
    for path in (legacy, converted):
        loaded = load_inception_weights(path)
        assert loaded.keys() == state.keys()
        torch.testing.assert_close(
            loaded["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"]
        )


def test_a_missing_or_wrong_file_is_one_line_naming_it(weights_file, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.pth do not exist; semst downloads nothing"):
        load_inception_weights(tmp_path / "nothing.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match=r"notes.pth is not a readable Inception weights file") as info:
        load_inception_weights(text)
    assert "\n" not in str(info.value)
    partial = tmp_path / "partial.pth"
    state = random_inception_state()
    del state["Mixed_5b.branch1x1.conv.weight"]
    state["Mixed_5b.branch1x1.bn.weight"] = torch.ones(3)
    torch.save(state, partial)
    with pytest.raises(
        CheckpointError,
        match=r"partial.pth is not the FID Inception-v3 .*missing 1 tensors.*shape mismatches",
    ):
        load_inception_weights(partial)


def test_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"options": argparse.Namespace(lr=1.0)}, path)  # not a tensor: weights_only refuses it
    with pytest.raises(CheckpointError, match="object.pth is not a readable"):
        load_inception_weights(path)


def test_pytorch_fid_convention_takes_any_size(weights_file):
    # (the torch-fidelity convention is checked against torch-fidelity above)
    extractor = InceptionExtractor(weights_file, preprocessing="pytorch-fid")
    assert extractor(torch.rand(1, 3, 40, 90)).shape == (1, 2048)
    assert extractor.describe()["preprocessing"] == "pytorch-fid"
    with pytest.raises(ValueError, match="unknown Inception preprocessing"):
        InceptionExtractor(weights_file, preprocessing="clean-fid")
