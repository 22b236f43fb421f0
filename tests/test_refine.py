"""Refining a labelled data set: same layout, labels unchanged, resumable without half-written files, safe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.refine import refine_dataset
from semst.translators import Translator

from .conftest import TINY_MULTISCALE


@dataclass(frozen=True)
class _Sample:  # the fields of semst.data.datasets.Sample that refine uses
    image: Path
    label: Path | None
    relative: Path
    label_relative: Path | None


def _dataset(root: Path, count: int = 3) -> list[_Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        image = root / "images" / f"{i:05d}.png"
        label = root / "labels" / f"{i:05d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30 + i, 45, 3), dtype=np.uint8)).save(image)
        Image.fromarray(rng.integers(0, 19, (30 + i, 45), dtype=np.uint8), mode="L").save(label)
        samples.append(_Sample(image, label, image.relative_to(root), label.relative_to(root)))
    return samples


@pytest.fixture(params=["single-scale", "multi-scale"])
def model(request, make_config):
    torch.manual_seed(0)
    extra = TINY_MULTISCALE if request.param == "multi-scale" else {}
    return Translator.from_config(make_config("semst", **extra)).eval()


def test_same_layout_and_unchanged_labels(tmp_path, model):
    root, out = tmp_path / "GTA5", tmp_path / "GTA5-refined"
    samples = _dataset(root)
    report = refine_dataset(model, samples, out, root=root, progress=False, description={"name": "gta5"})
    assert report.ok and report.written == 3 and report.labels == 3
    for sample in samples:
        refined = Image.open(out / sample.relative)
        assert refined.size == Image.open(sample.image).size
        assert (out / sample.label_relative).read_bytes() == sample.label.read_bytes()
    manifest = json.loads((out / "refine.json").read_text())
    assert manifest["samples"] == 3 and manifest["written"] == 3 and manifest["dataset"]["name"] == "gta5"
    assert manifest["multiscale"] == (model.kind == "multi-scale")


def test_interrupted_runs_leave_no_partial_files_and_resume(tmp_path, model, monkeypatch):
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root, count=4)
    calls = {"n": 0}
    original = Translator.translate

    def flaky(self, image, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user stops the run in the middle of the third image
        return original(self, image, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate", flaky)
    with pytest.raises(KeyboardInterrupt):
        refine_dataset(model, samples, out, root=root, progress=False)
    written = sorted(p.name for p in (out / "images").iterdir())
    assert written == ["00000.png", "00001.png"]  # no temporary or half-written third file
    monkeypatch.setattr(Translator, "translate", original)
    first = (out / "images" / "00000.png").read_bytes()
    report = refine_dataset(model, samples, out, root=root, progress=False)
    assert report.ok and report.skipped == 2 and report.written == 2
    assert (out / "images" / "00000.png").read_bytes() == first
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{i:05d}.png" for i in range(4)]


def test_unreadable_images_are_reported_and_the_rest_refined(tmp_path, model):
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root)
    samples[1].image.write_bytes(b"not an image")
    report = refine_dataset(model, samples, out, root=root, progress=False)
    assert not report.ok and report.written == 2
    assert report.failed[0][0].endswith("00001.png") and "images/00001.png" in report.missing[0]
    assert json.loads((out / "refine.json").read_text())["failed"][0]["image"].endswith("00001.png")


def test_output_inside_the_data_set_is_refused(tmp_path, model):
    root = tmp_path / "data"
    samples = _dataset(root, count=1)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for out in (root, root / "refined"):
        with pytest.raises(ValueError, match="inside it"):
            refine_dataset(model, samples, out, root=root, progress=False)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_labels_can_be_hard_links(tmp_path, model):
    root, out = tmp_path / "data", tmp_path / "out"
    samples = _dataset(root, count=1)
    refine_dataset(model, samples, out, root=root, progress=False, link_labels=True)
    assert (out / samples[0].label_relative).stat().st_ino == samples[0].label.stat().st_ino


def test_refining_in_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(
    tmp_path, model, monkeypatch, caplog
):
    from semst import runtime

    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: False)
    root = tmp_path / "GTA5"
    samples = _dataset(root, count=1)
    with caplog.at_level("WARNING", logger="semst.refine"):
        report = refine_dataset(
            model, samples, tmp_path / "out", root=root, tiling=model.tiling(precision="bf16"), progress=False
        )
    assert report.ok and "--precision bf16 on a CPU without bf16 instructions" in caplog.text
