"""The multi-scale training step (paper Eq. 4-6): the losses it reports equal an independent computation of
both branches, every network learns, the step is repeatable, and the translator's forward pass is what the
step trained."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from semst.losses import discriminator_loss, generator_loss, hdce_loss, ts_loss
from semst.networks import sample_locations
from semst.training.step import derive_seed, preview, train_step

from ..conftest import TINY_MULTISCALE, make_batch, training_setup


def _setup(make_config, **overrides):
    config = make_config("semst", **{**TINY_MULTISCALE, **overrides})
    networks, optimizers = training_setup(config)
    return config, networks, optimizers


def _step(config, networks, optimizers, batch, step=0):
    return train_step(
        networks, optimizers, batch, loss_cfg=config.loss, projection_cfg=config.projection, seed=0, step=step
    )


def _attention_moves(config, networks, optimizers, batch) -> bool:
    """Whether one training step changes the scale-attention head's parameters."""
    attention = networks.translator.attention
    before = [p.detach().clone() for p in attention.parameters()]
    _step(config, networks, optimizers, batch)
    return any(not torch.equal(a, b) for a, b in zip(before, attention.parameters()))


def test_every_network_learns_and_losses_are_named(make_config):
    config, networks, optimizers = _setup(make_config)
    assert [name for name, _ in networks.translator.named_children()] == [
        "generator_global",
        "generator_local",
        "attention",
    ]
    assert list(networks.projectors) == ["global", "local"]
    modules = {
        **{f"translator.{n}": m for n, m in networks.translator.named_children()},
        "discriminator": networks.discriminator,
        **{f"projectors.{n}": m for n, m in networks.projectors.items()},
    }
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in modules.items()}
    losses = _step(config, networks, optimizers, make_batch(config))
    for branch in ("global", "local"):
        assert {f"G/hdce_{branch}", f"G/hdce_identity_{branch}", f"G/ts_{branch}"} <= set(losses)
    assert {"D/loss", "G/adversarial", "G/hdce", "G/ts", "G/total", "M_s/mean"} <= set(losses)
    assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    for name, module in modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
        assert all(p.requires_grad for p in module.parameters())


def _branch_losses(generator, projector, inputs, taps, num_patches, stream, outputs=None):
    """hDCE (source half), its identity half and TS of one branch, recomputed CUT's way: a separate encoder
    pass over the real inputs and one over the translations (``outputs``, default the generator's own),
    patch locations seeded as the step seeds them (seed 0, step 0, the branch's stream word, tap index,
    domain half, image index)."""
    keys_f = generator.encode(inputs, taps)
    query_f = generator.encode(generator(inputs) if outputs is None else outputs, taps)
    locations = {}
    for t, tap in enumerate(taps):
        h, w = keys_f[tap].shape[-2:]
        seeds = [derive_seed(0, 0, stream, t, i // 2, i % 2) for i in range(4)]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        locations[tap] = sample_locations(h * w, num_patches, gens)
    keys, queries = projector(keys_f, locations), projector(query_f, locations)
    return {
        "hdce": torch.stack([hdce_loss(queries[t][:2], keys[t][:2]) for t in taps]).mean(),
        "hdce_identity": torch.stack([hdce_loss(queries[t][2:], keys[t][2:]) for t in taps]).mean(),
        "ts": ts_loss([keys[t][:2] for t in taps], [queries[t][:2] for t in taps]),
    }


@pytest.mark.parametrize(
    ("weight", "compared"), [(0.1, "local"), (0.0, "local"), (0.1, "fused"), (0.1, "both")]
)
def test_reported_losses_equal_an_independent_computation(make_config, weight, compared):
    """Recompute Eq. 4-6 and the weighted adversarial terms by hand from copies of the networks taken before
    the step (the D loss) and the discriminator after its update (the G loss), and every branch's hDCE, its
    identity term and TS with the step's patch locations (the local branch's on G_l's own output, on the
    fused one, or half on each, ``multiscale.local_patch_losses``); the total then follows from these values
    alone."""
    config, networks, optimizers = _setup(
        make_config,
        **{"multiscale.local_adversarial_weight": weight, "multiscale.local_patch_losses": compared},
    )
    batch = make_batch(config, seed=1)
    before = copy.deepcopy(networks)
    losses = _step(config, networks, optimizers, batch)
    d_after = networks.discriminator
    taps, patches = config.projection.taps, config.projection.num_patches
    src, tgt = batch.source, batch.target
    with torch.no_grad():
        t = before.translator
        y_g, feats = t.generator_global.forward_with_taps(src.global_crop, ["res2"])  # (B, 3, 32, 32)
        y_l = t.generator_local(src.crop)  # (B, 3, 32, 32)
        m = F.interpolate(t.attention(feats["res2"]), size=(32, 32), mode="bilinear")  # over the global crop
        fused = []
        for b in range(2):
            top, left, h, w = src.box[b].tolist()
            up = F.interpolate(torch.cat([y_g[b : b + 1], m[b : b + 1]], 1), size=(64, 64), mode="bilinear")
            up = up[..., 2 * top : 2 * top + 2 * h, 2 * left : 2 * left + 2 * w]
            fused.append(up[:, 3:] * y_l[b : b + 1] + (1 - up[:, 3:]) * up[:, :3])
        fused = torch.cat(fused)
        d0 = before.discriminator
        real = d0(tgt.crop)
        expected_d = (1 - weight) * discriminator_loss(real, d0(fused)) + weight * discriminator_loss(
            real, d0(y_l)
        )
        expected_g = (1 - weight) * generator_loss(d_after(fused)) + weight * generator_loss(d_after(y_l))
        local_losses = functools.partial(  # G_l's patch losses on its local crops (source, then target)
            _branch_losses, t.generator_local, before.projectors["local"], torch.cat([src.crop, tgt.crop]), taps,
            patches,
        )  # fmt: skip
        branches = {
            "global": _branch_losses(
                t.generator_global,
                before.projectors["global"],
                torch.cat([src.global_crop, tgt.global_crop]),
                taps,
                patches,
                stream=1,
            ),
            "local": local_losses(
                stream=2,
                outputs=torch.cat([fused, t.generator_local(tgt.crop)]) if compared != "local" else None,
            ),
        }
        weights = {"global": 1.0, "local": 1.0}
        if compared == "both":  # G_l's own output too, with the local projection head: half the share each
            branches["local_own"] = local_losses(stream=3)
            weights.update(local=0.5, local_own=0.5)
    torch.testing.assert_close(losses["D/loss"], expected_d)
    torch.testing.assert_close(losses["G/adversarial"], expected_g)
    for branch, values in branches.items():
        for name, value in values.items():
            torch.testing.assert_close(losses[f"G/{name}_{branch}"], value, msg=f"G/{name}_{branch}")
    expected_total = expected_g + 0.5 * sum(
        weights[b] * (0.5 * (v["hdce"] + v["hdce_identity"]) + 2.0 * v["ts"]) for b, v in branches.items()
    )
    torch.testing.assert_close(losses["G/total"], expected_total)
    expected_ts = 0.5 * sum(weights[b] * v["ts"] for b, v in branches.items())
    torch.testing.assert_close(losses["G/ts"], expected_ts)


def test_the_translator_forward_equals_what_the_step_trained_on(make_config):
    """With the local crop covering the whole global region (local_size = global_size * scale), the
    translator's whole-image ``forward`` on that region is exactly the fused image the step judged."""
    config, networks, optimizers = _setup(make_config, **{"multiscale.local_size": 64})
    batch = make_batch(config, count=1, size=(64, 64))  # the image is the global region
    assert batch.source.box.tolist() == [[0, 0, 32, 32]]
    translator = networks.translator
    with torch.no_grad():
        out = translator.training_forward(batch)
        (fused, _, weight_fused), (local, _, _) = out.judged
        whole = translator(batch.source.crop)  # the full-resolution image, (1, 3, 64, 64)
    assert weight_fused == pytest.approx(0.9)
    torch.testing.assert_close(whole, fused, rtol=0, atol=1e-6)
    with torch.no_grad():
        d = networks.discriminator
        real = d(batch.target.crop)
        expected = 0.9 * discriminator_loss(real, d(whole)) + 0.1 * discriminator_loss(real, d(local))
    losses = _step(config, networks, optimizers, batch)
    torch.testing.assert_close(losses["D/loss"], expected)


def test_steps_are_repeatable_and_the_preview_has_every_column(make_config):
    runs = []
    for _ in range(2):
        config, networks, optimizers = _setup(make_config)
        runs.append(
            [_step(config, networks, optimizers, make_batch(config, seed=s), step=s) for s in range(2)]
        )
    for a, b in zip(*runs):
        assert all(torch.equal(a[k], b[k]) for k in a)
    grid = preview(networks, make_batch(config), identity=True)
    assert list(grid) == ["source (local)", "global", "local", "M_s (white=local)", "fused", "target (local)"]
    assert all(v.shape == (2, 3, 32, 32) for v in grid.values())


def test_flip_equivariance_is_refused(make_config):
    config, networks, optimizers = _setup(make_config, **{"loss.flip_equivariance": True})
    with pytest.raises(ValueError, match="single-scale only"):
        _step(config, networks, optimizers, make_batch(config))


@pytest.mark.parametrize("compared", ["local", "fused", "both"])
def test_the_local_patch_losses_reach_the_scale_attention_only_from_the_fused_output(make_config, compared):
    """``multiscale.local_patch_losses``: with ``local`` the local branch's hDCE/TS compare X_l with G_l's own
    output, so no patch loss reaches M_s through the fusion; with ``fused`` they compare it with the fused Y
    (Eq. 6), so they train the scale attention; ``both`` does both, in two branches of G_l that share its
    projection head. The adversarial loss is off, so whatever moves the attention head in a step is the
    patch losses."""
    config, networks, optimizers = _setup(
        make_config, **{"multiscale.local_patch_losses": compared, "loss.adversarial_weight": 0.0}
    )
    translator = networks.translator
    batch = make_batch(config)
    out = translator.training_forward(batch, taps=config.projection.taps, identity=True)
    local_branch = next(b for b in out.branches if b.name == "local")
    fused, count = out.judged[0][0], batch.size
    assert torch.equal(local_branch.outputs[:count], fused) == (compared != "local")
    expected = {"local": [1.0, 1.0], "fused": [1.0, 1.0], "both": [1.0, 0.5, 0.5]}[compared]
    assert [b.weight for b in out.branches] == expected
    if compared == "both":
        own = out.branches[2]
        assert (own.name, own.projector, own.generator) == ("local_own", "local", translator.generator_local)
        assert torch.equal(own.outputs[:count], out.judged[1][0])  # G_l's own output, as D's 0.1 judges it
    # the identity rows are G_l's own output on the target crops either way
    torch.testing.assert_close(local_branch.outputs[count:], translator.generator_local(batch.target.crop))

    assert _attention_moves(config, networks, optimizers, batch) == (compared != "local")


@pytest.mark.parametrize("adversarial", [True, False])
def test_attention_adversarial_decides_whether_the_gan_loss_trains_the_scale_attention(
    make_config, adversarial
):
    """``multiscale.attention_adversarial=false``: D judges the same fused image, built with M_s detached, so
    that the adversarial loss still trains both generators through the fusion but not the scale attention.
    The patch losses are off, so whatever moves the attention head in a step is the adversarial loss."""
    config, networks, optimizers = _setup(
        make_config,
        **{
            "multiscale.attention_adversarial": adversarial,
            "loss.contrastive_weight": 0.0,
            "loss.ts_weight": 0.0,
        },
    )
    translator = networks.translator
    batch = make_batch(config)
    out = translator.training_forward(batch, taps=config.projection.taps, identity=True)
    judged = out.judged[0][0]
    torch.testing.assert_close(judged, out.preview["fused"], rtol=0, atol=0)  # the same image either way
    judged.sum().backward()
    attention_grads = [p.grad for p in translator.attention.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in attention_grads) == adversarial
    assert all(g is None or not g.any() for g in attention_grads) == (not adversarial)
    for generator in (translator.generator_global, translator.generator_local):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    translator.zero_grad(set_to_none=True)

    assert _attention_moves(config, networks, optimizers, batch) == adversarial


@pytest.mark.parametrize("split", [False, True])
def test_split_adversarial_judges_the_local_generator_on_its_own_output_only(make_config, split):
    """``multiscale.split_adversarial=true``: D judges the same fused image, built with G_l's output detached,
    so that the GAN loss on Y trains G_g and the scale attention but not G_l, which learns realism from its
    own output (the second judged image) alone. The patch losses are off, so the gradients are the GAN's."""
    config, networks, optimizers = _setup(
        make_config,
        **{
            "multiscale.split_adversarial": split,
            "multiscale.local_adversarial_weight": 0.5,
            "loss.contrastive_weight": 0.0,
            "loss.ts_weight": 0.0,
        },
    )
    translator = networks.translator
    out = translator.training_forward(make_batch(config), taps=config.projection.taps, identity=True)
    (fused, _, w_fused), (local, _, w_local) = out.judged
    assert (w_fused, w_local) == (0.5, 0.5)
    torch.testing.assert_close(fused, out.preview["fused"], rtol=0, atol=0)  # the same image either way
    torch.testing.assert_close(local, out.preview["local"], rtol=0, atol=0)

    def moved(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    fused.sum().backward(retain_graph=True)
    assert moved(translator.generator_global) and moved(translator.attention)
    assert moved(translator.generator_local) == (not split)
    translator.zero_grad(set_to_none=True)
    local.sum().backward()
    assert moved(translator.generator_local)
    assert not moved(translator.generator_global) and not moved(translator.attention)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"multiscale.local_adversarial_weight": 0.0}, "needs multiscale.local_adversarial_weight > 0"),
        ({"multiscale.attention_adversarial": False}, "needs multiscale.attention_adversarial=true"),
    ],
)
def test_split_adversarial_refuses_settings_that_leave_a_network_unjudged(make_config, overrides, message):
    from semst.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config("semst", **{**TINY_MULTISCALE, "multiscale.split_adversarial": True, **overrides})


def test_attention_adversarial_false_needs_a_patch_loss_on_the_fused_output(make_config):
    from semst.config import ConfigError

    with pytest.raises(ConfigError, match="attention_adversarial=false needs"):
        make_config(
            "semst",
            **{
                **TINY_MULTISCALE,
                "multiscale.attention_adversarial": False,
                "multiscale.local_patch_losses": "local",
            },
        )
