"""The training step: named losses per preset, and keys taken from the forward pass equal CUT's re-encoding."""

from __future__ import annotations

import pytest
import torch

from semst.data.batch import Batch, DomainCrops
from semst.losses import hdce_loss, ts_loss
from semst.networks import sample_locations
from semst.training.step import derive_seed, train_step

from ..conftest import training_setup


def _setup(config, seed=0):
    networks, optimizers = training_setup(config, seed)
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    target = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    return networks, optimizers, Batch(DomainCrops(source), DomainCrops(target))


def _step(config, networks, optimizers, batch, step=0):
    return train_step(
        networks, optimizers, batch, loss_cfg=config.loss, projection_cfg=config.projection, seed=0, step=step
    )


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("semst", {"D/loss", "G/adversarial", "G/hdce", "G/hdce_identity", "G/ts", "G/total"}),
        ("cut", {"D/loss", "G/adversarial", "G/patchnce", "G/patchnce_identity", "G/total"}),
        ("fastcut", {"D/loss", "G/adversarial", "G/patchnce", "G/total"}),
    ],
)
def test_named_losses_and_every_network_learns(make_config, preset, expected):
    config = make_config(preset)
    networks, optimizers, batch = _setup(config)
    assert list(networks.parts()) == ["translator", "discriminator", "projectors"]
    assert list(networks.projectors) == ["main"]  # one branch: the single generator
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in networks.parts().items()}
    losses = _step(config, networks, optimizers, batch)
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.requires_grad is False for v in losses.values())
    for name, module in networks.parts().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), (
            f"{name} did not change"
        )
        assert all(p.requires_grad for p in module.parameters())  # the discriminator is unfrozen again


def test_keys_from_the_forward_pass_equal_cuts_separate_encoding(make_config):
    """The step takes the keys from the translation pass's taps; recompute the losses CUT's way (a separate
    encoder pass over the real images) with the same patch locations and compare the reported values."""
    config = make_config("semst")
    networks, optimizers, batch = _setup(config)
    generator, projector = networks.translator.generator, networks.projectors["main"]
    taps = config.projection.taps
    with torch.no_grad():
        real = torch.cat([batch.source.crop, batch.target.crop])
        fake = generator(real)
        keys_features = generator.encode(real, taps)  # CUT: netG(real, nce_layers, encode_only=True)
        query_features = generator.encode(fake, taps)
        locations = {}
        for t, tap in enumerate(taps):
            h, w = keys_features[tap].shape[-2:]
            seeds = [derive_seed(0, 0, t, b // 2, b % 2) for b in range(4)]
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            locations[tap] = sample_locations(h * w, config.projection.num_patches, gens)
        keys = projector(keys_features, locations)
        queries = projector(query_features, locations)
        expected_hdce = torch.stack([hdce_loss(queries[t][:2], keys[t][:2]) for t in taps]).mean()
        expected_identity = torch.stack([hdce_loss(queries[t][2:], keys[t][2:]) for t in taps]).mean()
        expected_ts = ts_loss([keys[t][:2] for t in taps], [queries[t][:2] for t in taps])
    losses = _step(config, networks, optimizers, batch)
    torch.testing.assert_close(losses["G/hdce"], expected_hdce)
    torch.testing.assert_close(losses["G/hdce_identity"], expected_identity)
    torch.testing.assert_close(losses["G/ts"], expected_ts)
    total = losses["G/adversarial"] + 0.5 * (expected_hdce + expected_identity) + 2.0 * expected_ts
    torch.testing.assert_close(losses["G/total"], total)


def test_the_translator_forward_equals_what_the_step_trained_on(make_config):
    """Training and inference share one forward path: the translator's ``forward`` on a training crop is
    the translation the step's discriminator judged (checked by recomputing D's loss on it)."""
    from semst.losses import discriminator_loss

    config = make_config("semst")
    networks, optimizers, batch = _setup(config)
    with torch.no_grad():
        out = networks.translator.training_forward(batch, identity=True)
        ((judged, real, weight),) = out.judged
        assert real is batch.target.crop
        torch.testing.assert_close(networks.translator(batch.source.crop), judged, rtol=0, atol=0)
        d = networks.discriminator
        expected_d = discriminator_loss(d(batch.target.crop), d(networks.translator(batch.source.crop)))
    assert weight == 1.0
    losses = _step(config, networks, optimizers, batch)
    torch.testing.assert_close(losses["D/loss"], expected_d)


def test_steps_are_repeatable(make_config):
    config = make_config("fastcut")  # includes the flip-equivariance coin
    runs = []
    for _ in range(2):
        networks, optimizers, batch = _setup(config)
        runs.append([_step(config, networks, optimizers, batch, step=s) for s in range(3)])
    for a, b in zip(*runs):
        assert all(torch.equal(a[k], b[k]) for k in a)
