"""The multi-scale training step (paper Eq. 4-6): the losses it reports equal an independent computation,
every network learns, and the step is repeatable."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from semst.data.transforms import multiscale_train_transform
from semst.losses import discriminator_loss, generator_loss, hdce_loss
from semst.model import SemST
from semst.multiscale.fusion import upsample_to
from semst.networks import sample_locations
from semst.training.multiscale_step import multiscale_preview, multiscale_train_step
from semst.training.state import make_optimizers, training_networks
from semst.training.step import derive_seed

from ..conftest import TINY_MULTISCALE


def _batch(seed: int = 0, count: int = 2) -> dict[str, torch.Tensor]:
    """A collated multi-scale batch cut from random images by the real data transform."""
    rng = np.random.default_rng(seed)
    from PIL import Image

    items = []
    for _ in range(count):
        item = {}
        for domain in ("source", "target"):
            pixels = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
            crops = multiscale_train_transform(
                Image.fromarray(pixels), rng, global_size=32, scale=2, local_size=32
            )
            item.update({f"{domain}_{k}": v for k, v in crops.items()})
        items.append(item)
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def _setup(make_config, **overrides):
    config = make_config("semst", **{**TINY_MULTISCALE, **overrides})
    torch.manual_seed(0)
    model = SemST(config, training=True)
    networks = training_networks(model)
    return config, networks, make_optimizers(networks, config.train)


def _step(config, networks, optimizers, batch, step=0):
    return multiscale_train_step(
        networks,
        optimizers,
        batch,
        loss_cfg=config.loss,
        projection_cfg=config.projection,
        multiscale_cfg=config.multiscale,
        seed=0,
        step=step,
    )


def test_every_network_learns_and_losses_are_named(make_config):
    config, networks, optimizers = _setup(make_config)
    assert set(networks) == {
        "generator_global",
        "generator_local",
        "attention",
        "discriminator",
        "projector_global",
        "projector_local",
    }
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in networks.items()}
    losses = _step(config, networks, optimizers, _batch())
    for branch in ("global", "local"):
        assert {f"G/hdce_{branch}", f"G/hdce_identity_{branch}", f"G/ts_{branch}"} <= set(losses)
    assert {"D/loss", "G/adversarial", "G/hdce", "G/ts", "G/total", "M_s/mean"} <= set(losses)
    assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    for name, module in networks.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
        assert all(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize("weight", [0.1, 0.0])
def test_reported_losses_equal_an_independent_computation(make_config, weight):
    """Recompute Eq. 6 and the weighted adversarial terms by hand from copies of the networks taken before
    the step (the D loss) and the discriminator after its update (the G loss), and the per-branch hDCE with
    the same patch locations."""
    config, networks, optimizers = _setup(make_config, **{"multiscale.local_adversarial_weight": weight})
    batch = _batch(1)
    before = copy.deepcopy(networks)
    losses = _step(config, networks, optimizers, batch)
    d_after = networks["discriminator"]
    taps = config.projection.taps
    with torch.no_grad():
        g_g, g_l, head = before["generator_global"], before["generator_local"], before["attention"]
        y_g, feats = g_g.forward_with_taps(batch["source_global"], ["res2"])
        y_l = g_l(batch["source_local"])
        m = upsample_to(head(feats["res2"]), (32, 32))  # (B, 1, 32, 32) over the global crop
        fused = []
        for b in range(2):
            top, left, h, w = batch["source_box"][b].tolist()
            up = upsample_to(torch.cat([y_g[b : b + 1], m[b : b + 1]], 1), (64, 64))[
                ..., 2 * top : 2 * top + 32, 2 * left : 2 * left + 32
            ]
            fused.append(up[:, 3:] * y_l[b : b + 1] + (1 - up[:, 3:]) * up[:, :3])
        fused = torch.cat(fused)
        d0 = before["discriminator"]
        real = d0(batch["target_local"])
        expected_d = (1 - weight) * discriminator_loss(real, d0(fused)) + weight * discriminator_loss(
            real, d0(y_l)
        )
        expected_g = (1 - weight) * generator_loss(d_after(fused)) + weight * generator_loss(d_after(y_l))
        # hDCE of the local branch, source half, with the step's patch locations.
        real_local = torch.cat([batch["source_local"], batch["target_local"]])
        keys_f = g_l.encode(real_local, taps)
        query_f = g_l.encode(g_l(real_local), taps)
        locations = {}
        for t, tap in enumerate(taps):
            h, w = keys_f[tap].shape[-2:]
            seeds = [derive_seed(0, 0, 2, t, i // 2, i % 2) for i in range(4)]  # stream (2,) = local
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            locations[tap] = sample_locations(h * w, config.projection.num_patches, gens)
        projector = before["projector_local"]
        keys, queries = projector(keys_f, locations), projector(query_f, locations)
        expected_hdce_local = torch.stack([hdce_loss(queries[t][:2], keys[t][:2]) for t in taps]).mean()
    torch.testing.assert_close(losses["D/loss"], expected_d)
    torch.testing.assert_close(losses["G/adversarial"], expected_g)
    torch.testing.assert_close(losses["G/hdce_local"], expected_hdce_local)
    expected_total = expected_g + 0.5 * sum(
        0.5 * (losses[f"G/hdce_{b}"] + losses[f"G/hdce_identity_{b}"]) + 2.0 * losses[f"G/ts_{b}"]
        for b in ("global", "local")
    )
    torch.testing.assert_close(losses["G/total"], expected_total)


def test_steps_are_repeatable_and_the_preview_has_every_column(make_config):
    runs = []
    for _ in range(2):
        config, networks, optimizers = _setup(make_config)
        runs.append([_step(config, networks, optimizers, _batch(s), step=s) for s in range(2)])
    for a, b in zip(*runs):
        assert all(torch.equal(a[k], b[k]) for k in a)
    grid = multiscale_preview(networks, _batch())
    assert list(grid) == ["source (local)", "global", "local", "M_s (white=local)", "fused", "target (local)"]
    assert all(v.shape == (2, 3, 32, 32) for v in grid.values())


def test_flip_equivariance_is_refused(make_config):
    config, networks, optimizers = _setup(make_config, **{"loss.flip_equivariance": True})
    with pytest.raises(ValueError, match="single-scale only"):
        _step(config, networks, optimizers, _batch())
