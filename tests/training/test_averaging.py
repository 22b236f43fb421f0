"""The translator's weight average (EDM2's power-function EMA): its exponent, its weights over the run, and a
training run that keeps one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from semst import checkpoint as ckpt
from semst.config import MAX_EMA_STD, ConfigError
from semst.training.averaging import PowerAverage, gamma_from_std, std_from_gamma
from semst.training.loop import train
from semst.translators import Translator


@pytest.mark.parametrize(("std", "gamma"), [(0.05, 16.97), (0.10, 6.94)])
def test_gamma_of_edm2s_two_settings(std, gamma):
    # EDM2 (Karras et al. 2024, section 3.1) quotes gamma 16.97 for sigma_rel 0.05 and 6.94 for 0.10.
    assert gamma_from_std(std) == pytest.approx(gamma, abs=0.005)
    assert std_from_gamma(gamma_from_std(std)) == pytest.approx(std, rel=1e-9)


@pytest.mark.parametrize("std", [0.0, -0.1, MAX_EMA_STD, 0.5])
def test_gamma_refuses_stds_no_power_function_has(std):
    with pytest.raises(ValueError, match="relative std"):
        gamma_from_std(std)


def test_the_average_weights_step_s_by_its_share_of_s_to_the_gamma_plus_one():
    """After T updates the average is sum_s w_s theta_s with w_s = (s^(g+1) - (s-1)^(g+1)) / T^(g+1): the
    closed form of the recursion, computed here independently of it."""
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    average = PowerAverage(net, std=0.1)
    g, steps = average.gamma, 40
    history = []
    for s in range(1, steps + 1):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
        history.append([p.detach().clone() for p in net.parameters()])
        average.update(net, s)
    weights = [(s ** (g + 1) - (s - 1) ** (g + 1)) / steps ** (g + 1) for s in range(1, steps + 1)]
    assert math.fsum(weights) == pytest.approx(1.0)
    for i, averaged in enumerate(average.module.parameters()):
        expected = sum(w * h[i].double() for w, h in zip(weights, history, strict=True))
        torch.testing.assert_close(averaged.double(), expected, rtol=1e-5, atol=1e-6)
    # and the average is not the last step's weights
    assert not torch.allclose(next(average.module.parameters()), next(net.parameters()))


def test_the_first_update_copies_the_weights_and_the_copy_is_separate():
    net = nn.Linear(3, 2)
    average = PowerAverage(net, std=0.05)
    with torch.no_grad():
        net.weight.add_(1.0)
    average.update(net, 1)  # beta_1 = 0
    torch.testing.assert_close(average.module.weight, net.weight, rtol=0, atol=0)
    assert not average.module.weight.requires_grad
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(average.module.weight, net.weight)


def test_config_refuses_an_std_out_of_range(make_config):
    # the semst preset averages (experiment 16); CUT and FastCUT translate with the last weights, as their code
    assert make_config("semst").train.ema_std == 0.1
    assert make_config("cut").train.ema_std == make_config("fastcut").train.ema_std == 0.0
    with pytest.raises(ConfigError, match="train.ema_std"):
        make_config("semst", **{"train.ema_std": 0.3})
    with pytest.raises(ConfigError, match="train.ema_std"):
        make_config("semst", **{"train.ema_std": -0.1})


def test_averaging_leaves_training_as_it_was_and_translators_load_the_average(
    tmp_path, image_folders, make_config
):
    source, target = image_folders
    plain = train(
        make_config("semst", source, target, **{"train.max_steps": 3, "train.ema_std": 0.0}),
        tmp_path / "a",
        progress=False,
    )
    averaged = train(
        make_config("semst", source, target, **{"train.max_steps": 3, "train.ema_std": 0.1}),
        tmp_path / "b",
        progress=False,
    )
    a, b = ckpt.load_tensors(plain), ckpt.load_tensors(averaged)
    assert not any(k.startswith("ema.") for k in a)
    ema = {k: v for k, v in b.items() if k.startswith("ema.translator.")}
    assert ema and {k.removeprefix("ema.") for k in ema} == {k for k in b if k.startswith("translator.")}
    for name in a:  # the average is kept beside training, which it does not touch
        if not name.startswith("rng."):
            assert torch.equal(a[name], b[name]), name

    last = Translator.from_checkpoint(averaged, device="cpu", weights="last")
    mean = Translator.from_checkpoint(tmp_path / "b", device="cpu")
    assert (mean.weights, last.weights) == ("average", "last")
    assert Translator.from_checkpoint(plain, device="cpu").weights == "last"  # no average kept
    for name, tensor in mean.state_dict().items():
        torch.testing.assert_close(tensor, b["ema.translator." + name], rtol=0, atol=0)
    for name, tensor in last.state_dict().items():
        torch.testing.assert_close(tensor, b["translator." + name], rtol=0, atol=0)
    assert any(not torch.equal(v, b[k.removeprefix("ema.")]) for k, v in ema.items())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(mean(x), last(x))
    with pytest.raises(ValueError, match="weights"):
        Translator.from_checkpoint(averaged, device="cpu", weights="newest")
