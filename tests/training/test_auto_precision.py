"""train.precision=auto: decided once at the start, stored resolved in the run's config and checkpoints, and
kept when the run is resumed."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from safetensors.torch import load_file

from semst import checkpoint as ckpt
from semst import runtime
from semst.training import loop
from semst.training.loop import _training_step_probe, train


@pytest.mark.parametrize("bf16_instructions", [False, True])
def test_auto_precision_is_stored_resolved_and_kept_on_resume(
    tmp_path, image_folders, make_config, monkeypatch, caplog, bf16_instructions
):
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: bf16_instructions)
    timed = []
    real_resolve = runtime.resolve_precision

    def resolve(requested, device, probe=None):
        def counted(precision):
            timed.append(precision)
            return probe(precision)  # the real probe: whole training steps at the run's sizes

        return real_resolve(requested, device, counted)

    monkeypatch.setattr("semst.training.loop.resolve_precision", resolve)
    source, target = image_folders
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        first = train(
            make_config("semst", source, target, **{"train.max_steps": 1, "train.precision": "auto"}),
            run,
            progress=False,
        )
    chosen = ckpt.read_metadata(first)["config"]["train"]["precision"]
    assert chosen in ("fp32", "bf16")
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["precision"] == chosen
    assert f"precision auto: {chosen} (" in caplog.text
    assert timed == (["fp32", "bf16"] if bf16_instructions else [])  # without bf16 instructions: no timing
    if not bf16_instructions:
        assert chosen == "fp32"
    timed.clear()
    last = train(
        make_config("semst", source, target, **{"train.max_steps": 2, "train.precision": "auto"}),
        run,
        resume=True,
        progress=False,
    )
    assert ckpt.read_metadata(last)["config"]["train"]["precision"] == chosen and timed == []


@pytest.mark.parametrize("preset", ["cut", "semst"])  # single-scale and multi-scale crops
def test_the_probe_times_whole_training_steps_and_leaves_the_random_state_alone(
    tmp_path, image_folders, make_config, preset
):
    source, target = image_folders
    config = make_config(preset, source, target)
    state = torch.get_rng_state()
    probe = _training_step_probe(config, torch.device("cpu"))
    steps = []
    real_step = loop.train_step

    def counted(*args, **kwargs):
        steps.append(kwargs["precision"])
        return real_step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "train_step", counted)
        assert probe("fp32") > 0 and probe("bf16") > 0
    assert steps == ["fp32"] * 3 + ["bf16"] * 3  # a warm-up and two timed steps each
    assert torch.equal(torch.get_rng_state(), state)


def test_an_auto_run_that_settles_on_fp32_trains_exactly_like_an_fp32_run(
    tmp_path, image_folders, make_config, monkeypatch
):
    # The probe builds and trains networks of its own: the run's weights must not feel it.
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: True)

    def probe_then_fp32(requested, device, probe=None):
        if requested == "auto":
            probe("fp32"), probe("bf16")
            return "fp32", "chosen by the test"
        return runtime.resolve_precision(requested, device, probe)

    monkeypatch.setattr("semst.training.loop.resolve_precision", probe_then_fp32)
    source, target = image_folders
    weights = {}
    for precision in ("auto", "fp32"):
        config = make_config("semst", source, target, **{"train.max_steps": 2, "train.precision": precision})
        weights[precision] = load_file(train(config, tmp_path / precision, progress=False))
    assert weights["auto"].keys() == weights["fp32"].keys()
    for name, tensor in weights["fp32"].items():
        assert torch.equal(weights["auto"][name], tensor), name


@pytest.mark.parametrize("bf16_instructions", [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(
    tmp_path, image_folders, make_config, monkeypatch, caplog, bf16_instructions
):
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: bf16_instructions)
    source, target = image_folders
    config = make_config("cut", source, target, **{"train.max_steps": 1, "train.precision": "bf16"})
    with caplog.at_level(logging.WARNING):
        train(config, tmp_path / "run", progress=False)
    warned = "train.precision=bf16: bf16 on a CPU without bf16 instructions" in caplog.text
    assert warned is not bf16_instructions
    assert warned is ("bf16 on a CPU without" in (tmp_path / "run" / "train.log").read_text())
