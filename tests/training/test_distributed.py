"""Multi-process training (torchrun, gloo on CPU) computes what one process computes on the global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from semst import checkpoint as ckpt
from semst.runtime import Distributed
from semst.training.loop import train

from ..conftest import TINY_MULTISCALE, TINY_OVERRIDES, training_setup


@pytest.mark.parametrize("multiscale", [False, True], ids=["single-scale", "multi-scale"])
def test_two_processes_average_to_the_gradient_of_the_global_batch(
    tmp_path, image_folders, make_config, multiscale
):
    """One step with 2 processes x batch 1 vs 1 process x batch 2: Adam's first moment after one step is
    (1 - beta1) * gradient, so comparing it compares the all-reduced gradient with the full-batch one.
    (Weights are not compared: Adam's first step is lr * sign(g), and for conv biases right before an
    instance norm g is rounding noise whose sign no two runs agree on.)"""
    source, target = image_folders
    scale = TINY_MULTISCALE if multiscale else {}
    single = train(
        make_config("semst", source, target, **{"train.max_steps": 1, "train.batch_size": 2, **scale}),
        tmp_path / "single",
        progress=False,
    )
    overrides = {
        **TINY_OVERRIDES,
        **scale,
        "train.max_steps": 1,
        "train.batch_size": 1,
        "data.source": source,
        "data.target": target,
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "semst",
        "train",
        "--out",
        str(tmp_path / "ddp"),
        "--no-progress",
        "--set",
        *[f"{k}={v}" for k, v in overrides.items()],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x2 processes" in result.stderr
    distributed = ckpt.resolve_checkpoint(tmp_path / "ddp")
    assert ckpt.read_metadata(distributed)["step"] == 1
    a, b = ckpt.load_tensors(single), ckpt.load_tensors(distributed)
    networks, _ = training_setup(make_config("semst", **scale))
    # Compare network by network (G_g, G_l, attention, D, each F), each on the scale of its own moments.
    groups: dict[str, list[tuple[str, str]]] = {}
    for part, module in networks.parts().items():
        for i, (name, _) in enumerate(module.named_parameters()):
            network = f"{part}.{name.split('.')[0]}" if part != "discriminator" else part
            groups.setdefault(network, []).append((name, f"optimizer.{part}.state.{i}.exp_avg"))
    assert len(groups) == (6 if multiscale else 3)
    for network, moments in groups.items():
        scale = max(a[m].abs().max().item() for _, m in moments)
        assert scale > 0
        for name, m in moments:
            torch.testing.assert_close(
                b[m], a[m], rtol=1e-3, atol=1e-5 * scale, msg=f"{network}: {name} gradient"
            )


def test_gradient_averaging_is_a_noop_for_one_process():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    Distributed().average_gradients([p])
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 3.0]))
