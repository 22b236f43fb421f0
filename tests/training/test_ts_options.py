"""Options of the TS loss in the training step: which parts of the projection head F its gradient trains,
which taps it reads, the bandwidth floor; and the multi-scale global adversarial term."""

from __future__ import annotations

import pytest
import torch

from semst.losses import rsmi, ts_loss
from semst.networks import PatchProjector
from semst.training.step import patch_losses

from ..conftest import TINY_MULTISCALE, make_batch, training_setup

TAPS = ("input", "down1")


def _features(seed: int):
    generator = torch.Generator().manual_seed(seed)
    real = {
        "input": torch.randn(2, 3, 8, 8, generator=generator),
        "down1": torch.randn(2, 4, 8, 8, generator=generator),
    }
    fake = {
        t: (f + 0.3 * torch.randn(f.shape, generator=generator)).requires_grad_() for t, f in real.items()
    }
    return real, fake


def _ts_only(make_config, mode: str, **extra):
    config = make_config(
        "semst",
        **{
            "projection.taps": ",".join(TAPS),
            "projection.num_patches": 16,
            "loss.contrastive_weight": 0.0,
            "loss.ts_weight": 1.0,
            "loss.ts_projector_gradient": mode,
            **extra,
        },
    )
    torch.manual_seed(0)
    projector = PatchProjector({"input": 3, "down1": 4}, dim=8)
    real, fake = _features(1)
    total, values = patch_losses(
        projector, real, fake, batch=2, loss_cfg=config.loss, projection_cfg=config.projection, seed=0, step=0
    )
    total.backward()
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in projector.named_parameters()}
    return total.detach(), grads, {t: None if f.grad is None else f.grad.clone() for t, f in fake.items()}


def test_the_ts_gradient_reaches_f_as_asked(make_config):
    both, both_f, both_g = _ts_only(make_config, "both")
    queries, queries_f, queries_g = _ts_only(make_config, "queries")
    none, none_f, none_g = _ts_only(make_config, "none")
    torch.testing.assert_close(both, queries)  # the value is the same in every mode
    torch.testing.assert_close(both, none)
    assert all(g is None for g in none_f.values())  # "none": F gets no TS gradient at all
    assert any(not torch.allclose(both_f[n], queries_f[n]) for n in both_f)  # "both" adds the key side
    for tap in TAPS:  # the generator's gradient comes through the output embeddings only, in every mode
        torch.testing.assert_close(queries_g[tap], none_g[tap])
        torch.testing.assert_close(both_g[tap], none_g[tap])


def test_ts_reads_only_the_chosen_taps(make_config):
    chosen, _, grads = _ts_only(make_config, "queries", **{"loss.ts_taps": "down1"})
    assert grads["input"] is None and grads["down1"].abs().sum() > 0
    everything, _, _ = _ts_only(make_config, "queries")
    assert not torch.equal(chosen, everything)
    with pytest.raises(Exception, match="not projection taps"):
        make_config("semst", **{"loss.ts_taps": "res9"})


def test_ts_tap_weights_reweight_the_taps(make_config):
    only_down1, _, only_down1_g = _ts_only(make_config, "queries", **{"loss.ts_taps": "down1"})
    zero_input, _, zero_input_g = _ts_only(make_config, "queries", **{"loss.ts_tap_weights": "0,1"})
    torch.testing.assert_close(zero_input, only_down1)  # weight 0 on the pixel tap = leaving it out
    assert not zero_input_g["input"].any()
    torch.testing.assert_close(zero_input_g["down1"], only_down1_g["down1"])
    equal, _, _ = _ts_only(make_config, "queries", **{"loss.ts_tap_weights": "3,3"})
    plain, _, _ = _ts_only(make_config, "queries")
    torch.testing.assert_close(equal, plain)
    with pytest.raises(Exception, match="3 weights for the 2 TS taps"):
        make_config("semst", **{"projection.taps": ",".join(TAPS), "loss.ts_tap_weights": "1,1,1"})
    with pytest.raises(Exception, match="not all 0"):
        make_config("semst", **{"loss.ts_taps": "res5", "loss.ts_tap_weights": "0"})
    with pytest.raises(Exception, match="finite, >= 0"):
        make_config("semst", **{"loss.ts_taps": "res1,res5", "loss.ts_tap_weights": "1,-1"})


def test_the_bandwidth_floor_replaces_tiny_median_bandwidths():
    generator = torch.Generator().manual_seed(0)
    flat = 0.01 * torch.randn(2, 32, 8, generator=generator)  # a flat region: tiny distances
    varied = torch.randn(2, 32, 8, generator=generator)
    torch.testing.assert_close(
        rsmi(flat, flat + 1e-3, sigma_min=0.5), rsmi(flat, flat + 1e-3, sigma_x=0.5, sigma_y=0.5)
    )
    torch.testing.assert_close(
        rsmi(varied, varied, sigma_min=1e-6), rsmi(varied, varied)
    )  # above the floor: unchanged
    assert ts_loss([flat], [flat], sigma_min=0.5).isfinite()


def test_the_global_output_can_be_judged_at_its_own_scale(make_config):
    config = make_config("semst", **{**TINY_MULTISCALE, "multiscale.global_adversarial_weight": 0.2})
    networks, optimizers = training_setup(config)
    batch = make_batch(config)
    out = networks.translator.training_forward(batch)
    weights = [w for _, _, w in out.judged]
    assert weights == pytest.approx([0.7, 0.1, 0.2])
    image, real, _ = out.judged[2]
    assert image.shape == batch.source.global_crop.shape and real is batch.target.global_crop
    with pytest.raises(Exception, match="must be <= 1"):
        make_config("semst", **{**TINY_MULTISCALE, "multiscale.global_adversarial_weight": 0.95})
