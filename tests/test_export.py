"""Deployment exports: DeployableTranslator equals semst's own translation; ONNX and TorchScript files
equal it at sizes other than the traced example's, odd and tiny ones included; metadata; atomic writes;
the CLI."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import torch

import semst
from semst import checkpoint as ckpt
from semst.cli import export as export_cli
from semst.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_EXTRA_FILE,
    DeployableTranslator,
    export_checkpoint,
    export_onnx,
    export_torchscript,
)
from semst.tiling import Tiling
from semst.training.state import save_training_checkpoint
from semst.translators import Translator

from .conftest import TINY_MULTISCALE, training_setup

# torch.jit.trace/save/load are deprecated in recent torch (DeprecationWarning or FutureWarning).
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit\..* is deprecated")

KINDS = {"single-scale": {}, "multi-scale": TINY_MULTISCALE}
EXAMPLE_SIZE = (48, 40)  # traced with; every check below runs other sizes
WHOLE_IMAGE = Tiling(tile=None, global_window=None)  # one pass, no tiling


@pytest.fixture(params=list(KINDS))
def model(request, make_config) -> Translator:
    torch.manual_seed(0)
    return Translator.from_config(make_config("semst", **KINDS[request.param])).eval()


def reference(model: Translator, images: torch.Tensor) -> torch.Tensor:
    """semst's own (tiled) translation of (B, 3, H, W) in [0, 1] with tiles larger than the image: the result
    an export must reproduce."""
    return model.translate(images, WHOLE_IMAGE)


def images(batch: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [(2, 32, 32), (1, 37, 45), (2, 77, 45), (1, 5, 6), (1, 3, 2), (1, 1, 1)])
def test_deployable_translator_equals_semst_translation(model, size):
    x = images(*size)
    with torch.no_grad():
        out = DeployableTranslator(model).eval()(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    # semst's translation feeds the CPU networks NHWC tiles, the exported graph NCHW: the same operations
    # summed in another order. A 1x1 image's feature planes are copies of one pixel, whose near-zero variance
    # instance norm divides the rounding by, so that case gets a wider tolerance (still 1/40 of a grey level).
    atol = 1e-4 if size[1:] == (1, 1) else 1e-5
    torch.testing.assert_close(out, reference(model, x), atol=atol, rtol=0)
    assert out.min() >= 0 and out.max() <= 1


def test_multiscale_translator_fuses_both_generators(make_config):
    """The multi-scale form is not G_l alone: changing G_g changes the output, as Eq. 6 says it must."""
    torch.manual_seed(0)
    model = Translator.from_config(make_config("semst", **TINY_MULTISCALE)).eval()
    translator = DeployableTranslator(model)
    x = images(1, 40, 36)
    with torch.no_grad():
        before = translator(x)
        model.generator_global.head.conv.bias.add_(0.5)
        after = translator(x)  # the translator shares the model's networks
    assert (before - after).abs().max() > 1e-3


def test_deployable_translator_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        DeployableTranslator(model)(torch.rand(3, 16, 16))


def test_torchscript_export_equals_semst_translation(model, tmp_path):
    path = export_torchscript(model, tmp_path / "translator.pt", example_size=EXAMPLE_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["translator.pt"]  # no temporary file left
    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    info = json.loads(extra[TORCHSCRIPT_EXTRA_FILE])
    assert info["semst_version"] == semst.__version__
    assert info["multiscale"] == (model.kind == "multi-scale") and info["config"] == model.config.to_dict()
    assert info["size_multiple"] == 4 and info["tiling"].startswith("none")
    for size in [(2, 64, 56), (1, 77, 45)]:
        x = images(*size)
        with torch.no_grad():
            out = loaded(x)
        torch.testing.assert_close(out, reference(model, x), atol=1e-5, rtol=0)


def test_onnx_export_equals_semst_translation(model, tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = export_onnx(model, tmp_path / "translator.onnx", example_size=EXAMPLE_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["translator.onnx"]

    proto = onnx.load(str(path))
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    assert meta["semst_version"] == semst.__version__
    assert json.loads(meta["semst_config"]) == model.config.to_dict()
    assert json.loads(meta["semst_multiscale"]) == (model.kind == "multi-scale")
    assert "semst_checkpoint" not in meta  # unknown for a model not loaded from a checkpoint: left out
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # batch, height and width are symbolic

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    for size in [(1, 200, 136), (2, 77, 45), (1, 5, 7)]:
        x = images(*size)
        (out,) = session.run(None, {INPUT_NAME: x.numpy()})
        assert out.shape == tuple(x.shape)
        torch.testing.assert_close(torch.from_numpy(out), reference(model, x), atol=1e-4, rtol=0)


def test_failed_export_keeps_the_previous_file(model, tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "translator.onnx"
    path.write_bytes(b"previous")

    def fail(proto):
        raise RuntimeError("invalid model")

    monkeypatch.setattr(
        onnx.checker, "check_model", fail
    )  # fails after the exporter wrote the temporary file
    with pytest.raises(RuntimeError, match="invalid model"):
        export_onnx(model, path, example_size=EXAMPLE_SIZE)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["translator.onnx"]


def test_onnx_export_refuses_opsets_without_the_needed_operators(model, tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="opset 9 is too old"):
        export_onnx(model, tmp_path / "translator.onnx", opset=9)
    assert not list(tmp_path.iterdir())


def test_onnx_export_without_onnx_says_how_to_install_it(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'semst\[onnx\]'"):
        export_onnx(model, tmp_path / "translator.onnx")
    assert not list(tmp_path.iterdir())


def test_export_checkpoint_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="onnx, torchscript"):
        export_checkpoint(tmp_path, tmp_path / "model.tflite", format="tflite")


@pytest.fixture
def run_dir(tmp_path, make_config):
    """A run directory whose checkpoint holds a multi-scale model (the semst preset's kind)."""
    config = make_config("semst", **TINY_MULTISCALE)
    networks, optimizers = training_setup(config)
    save_training_checkpoint(
        tmp_path / "run" / "checkpoints" / ckpt.checkpoint_name(5),
        config=config,
        networks=networks,
        optimizers=optimizers,
        step=5,
    )
    return tmp_path / "run"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="semst")
    export_cli.add_parser(parser.add_subparsers(dest="command"))
    return export_cli.run(parser.parse_args(argv))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_cli_exports_a_run_directory(run_dir, tmp_path, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "exported" / f"translator.{'onnx' if fmt == 'onnx' else 'pt'}"
    argv = ["export", str(run_dir), "--format", fmt, "--out", str(out), "--example-size", "40", "48"]
    assert run_cli(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out

    model = Translator.from_checkpoint(run_dir, device="cpu")
    x = images(1, 45, 39)
    if fmt == "onnx":
        import onnx
        import onnxruntime

        meta = {entry.key: entry.value for entry in onnx.load(str(out)).metadata_props}
        assert json.loads(meta["semst_step"]) == 5 and meta["semst_checkpoint"].endswith(".safetensors")
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        result = torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
        atol = 1e-4
    else:
        extra = {TORCHSCRIPT_EXTRA_FILE: ""}
        loaded = torch.jit.load(str(out), _extra_files=extra)
        assert json.loads(extra[TORCHSCRIPT_EXTRA_FILE])["step"] == 5
        with torch.no_grad():
            result = loaded(x)
        atol = 1e-5
    torch.testing.assert_close(result, reference(model, x), atol=atol, rtol=0)


def test_cli_requires_a_known_format(run_dir, tmp_path):
    with pytest.raises(SystemExit):
        run_cli(["export", str(run_dir), "--format", "tflite", "--out", str(tmp_path / "m")])
