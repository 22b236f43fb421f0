from __future__ import annotations

import importlib.util
import pickle

import pytest
import torch
from torch import nn

from semst.checkpoint import CheckpointError, save_checkpoint
from semst.segmentation import (
    SegmentationUNet,
    export_segmenter_torchscript,
    load_segmenter,
    load_segmenter_network,
    save_segmenter,
)

# torch.jit.* is deprecated in recent torch versions, but TorchScript is what users export their models to.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")

CLASSES = ["road", "sky", "building", "pole"]


@pytest.fixture(scope="module")
def trained_network() -> SegmentationUNet:
    """A small network after a few optimizer steps (so its weights and norm parameters are not the init)."""
    torch.manual_seed(0)
    net = SegmentationUNet(4, width=6, depth=3)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        x, y = torch.rand(2, 3, 24, 32), torch.randint(0, 4, (2, 24, 32))
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def checkpoint(trained_network, tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "segmenter.safetensors"
    return save_segmenter(trained_network, path, class_names=CLASSES, extra_meta={"steps": 3})


def test_checkpoint_round_trip_gives_the_same_logits(trained_network, checkpoint):
    segmenter = load_segmenter(checkpoint)
    assert segmenter.num_classes == 4 and segmenter.class_names == CLASSES
    x = torch.rand(2, 3, 29, 43)
    with torch.no_grad():
        expected = trained_network(x)
    logits = segmenter(x)
    assert torch.equal(logits, expected)
    assert not logits.requires_grad
    network, meta = load_segmenter_network(checkpoint)
    assert meta["steps"] == 3 and meta["kind"] == "segmenter" and not network.training


def test_torchscript_export_loads_and_matches(trained_network, checkpoint, tmp_path):
    exported = export_segmenter_torchscript(checkpoint, tmp_path / "deep" / "segmenter.pt")
    segmenter = load_segmenter(exported)
    # The class count and names travel inside the archive.
    assert segmenter.num_classes == 4 and segmenter.class_names == CLASSES
    for size in [(29, 43), (8, 8), (3, 5)]:
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(segmenter(x), trained_network(x), rtol=0, atol=1e-5)
    assert not list(tmp_path.glob("deep/.*.tmp"))


class _DictModel(nn.Module):
    """A torchvision-style user model: returns {"out": logits, "aux": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.conv(x)
        return {"out": logits, "aux": logits * 0}


class _Identity(nn.Module):
    """Returns its input as 3-class 'logits', so the normalisation the loader applies is visible."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def _script(module: nn.Module, path):
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_dict_returning_user_model_works(tmp_path):
    torch.manual_seed(0)
    model = _DictModel().eval()
    segmenter = load_segmenter(_script(model, tmp_path / "user.pt"))
    assert segmenter.num_classes is None and segmenter.class_names is None
    x = torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        torch.testing.assert_close(segmenter(x), model(x)["out"], rtol=0, atol=1e-6)


def test_imagenet_and_explicit_normalisation_are_applied(tmp_path):
    path = _script(_Identity(), tmp_path / "identity.pt")
    x = torch.rand(1, 3, 4, 6)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(load_segmenter(path, normalize="imagenet")(x), (x - mean) / std)
    torch.testing.assert_close(load_segmenter(path)(x), x)
    explicit = load_segmenter(path, mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.125])
    torch.testing.assert_close(explicit(x), (x - 0.5) / torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1))
    with pytest.raises(ValueError, match="contradict"):
        load_segmenter(path, normalize="imagenet", mean=[0.5] * 3, std=[0.5] * 3)
    with pytest.raises(ValueError, match="normalize"):
        load_segmenter(path, normalize="zscore")


def test_semst_segmenters_refuse_a_second_normalisation(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="normalises inside the network"):
        load_segmenter(checkpoint, normalize="imagenet")
    exported = export_segmenter_torchscript(checkpoint, tmp_path / "s.pt")
    with pytest.raises(ValueError, match="normalises inside the network"):
        load_segmenter(exported, normalize="imagenet")


class _Boom:
    """Unpickling this creates a marker file: proof that the loader never unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["torch.save", "legacy torch.save", "pickle"])
def test_pickles_are_refused_without_being_unpickled(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    payload = {"model": _Boom(str(marker))}
    if kind == "torch.save":
        torch.save(payload, path)
    elif kind == "legacy torch.save":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=r"model\.pth .*never unpickles"):
        load_segmenter(path)
    assert not marker.exists()


def test_other_files_are_refused_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_segmenter(tmp_path / "nothing.safetensors")
    translator = save_checkpoint(tmp_path / "g.safetensors", {"generator.w": torch.zeros(2)}, {"step": 1})
    with pytest.raises(CheckpointError, match="not a segmenter"):
        load_segmenter(translator)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt is not a semst segmenter checkpoint"):
        load_segmenter(text)


def test_wrong_inputs_and_outputs_are_explained(checkpoint):
    segmenter = load_segmenter(checkpoint)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        segmenter(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        segmenter(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is not None, reason="onnxruntime is installed")
def test_onnx_without_onnxruntime_says_what_to_install(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        load_segmenter(path)


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="needs onnxruntime and onnx",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_model_matches(trained_network, tmp_path):
    path = tmp_path / "segmenter.onnx"
    x = torch.rand(1, 3, 32, 48)
    torch.onnx.export(
        trained_network, (x,), str(path), input_names=["image"], output_names=["out"], dynamo=False
    )
    segmenter = load_segmenter(path)
    assert segmenter.num_classes == 4
    with torch.no_grad():
        torch.testing.assert_close(segmenter(x), trained_network(x), rtol=0, atol=1e-4)
