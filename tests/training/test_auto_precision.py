"""train.precision=auto: decided once at the start, stored resolved in the run's config and checkpoints, and
kept when the run is resumed."""

from __future__ import annotations

import logging

import pytest
import yaml

from semst import checkpoint as ckpt
from semst import runtime
from semst.training.loop import train


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
            return probe(precision)  # the real probe: a generator's forward and backward at the crop size

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
