"""One optimisation step of multi-scale SemST (paper section 3.3, Figure 2): a D update, then all of G's side.

Per source image: a global crop X_g (a large region downsampled by ``s``) and a local crop X_l at full
resolution inside it (Eq. 4-5); per target image the same pair Y_g, Y_l.

    Y_g = G_g(X_g),  Y_l = G_l(X_l),  M_s = A(bottleneck features of G_g(X_g))
    Y   = M_s * Y_l + (1 - M_s) * Y_g          (Y_g, M_s upsampled and cut to the local crop; Eq. 6)

    L_D = 0.5 * (GAN(D(Y_l^target), real) + (1 - w) GAN(D(Y), fake) + w GAN(D(Y_l), fake))
    L_G = lambda_GAN * ((1 - w) GAN(D(Y), real) + w GAN(D(Y_l), real))
        + 1/2 * sum over the branches b in {global, local} of
          [lambda_hDCE * 1/2 (hDCE(x_b, G_b(x_b)) + hDCE(y_b, G_b(y_b))) + lambda_TS * TS(x_b, G_b(x_b))]

with ``w = multiscale.local_adversarial_weight`` (0.1). The discriminator judges what the user gets, the
fused prediction, against real target crops at the same (full) resolution; ``w`` adds G_l's own output,
as HRDA adds its high-resolution prediction with weight 0.1. The global output is not judged on its own:
it reaches the user only through the fusion (upsampled, where M_s is low), HRDA puts no loss on its
low-resolution branch either, and judging it would make one discriminator learn two scales of target
statistics. Each generator has its own hDCE and TS losses on its own input/output pairs, through its own
projection head F (the branches' embedding spaces differ, paper section 3.3); their mean keeps the
weights lambda on the scale of the single-scale objective. docs/design.md discusses these choices.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from semst.config import LossConfig, MultiScaleConfig, ProjectionConfig
from semst.losses import discriminator_loss, generator_loss
from semst.multiscale.fusion import attention_tap, fuse_predictions
from semst.runtime import Distributed, autocast, frozen
from semst.training.step import backward_and_step, patch_losses

GENERATOR_SIDE = ("generator_global", "generator_local", "attention", "projector_global", "projector_local")
BRANCH_STREAMS = {"global": (1,), "local": (2,)}  # seed words separating the branches' patch locations


def multiscale_forward(
    networks: Mapping[str, nn.Module],
    batch: Mapping[str, torch.Tensor],
    *,
    taps: tuple[str, ...] = (),
    identity: bool = False,
) -> dict[str, torch.Tensor | dict]:
    """Both generators, the attention and the fusion on a batch of aligned crops.

    Args:
        networks: ``generator_global``, ``generator_local``, ``attention``.
        batch: ``source_global`` (B, 3, hg, wg), ``source_local`` (B, 3, hl, wl), ``source_box`` (B, 4);
            with ``identity`` also ``target_global`` and ``target_local``.
        taps: encoder taps to return for the patch losses (from the same forward passes).
        identity: also translate the target crops (for the contrastive identity term).

    Returns:
        ``fake_global`` (B' , 3, hg, wg), ``fake_local`` (B', 3, hl, wl) (B' = 2B with identity: source then
        target), ``features_global``/``features_local`` (tap -> features of the real inputs),
        ``attention`` (B, 1, hg/4, wg/4), ``fused``, ``global_on_local``, ``attention_on_local``
        (B, ., hl, wl).
    """
    generator_global, generator_local = networks["generator_global"], networks["generator_local"]
    source_global, source_local = batch["source_global"], batch["source_local"]
    count = source_global.shape[0]
    real_global = torch.cat([source_global, batch["target_global"]]) if identity else source_global
    real_local = torch.cat([source_local, batch["target_local"]]) if identity else source_local
    bottleneck = attention_tap(generator_global)
    global_taps = tuple(taps) + ((bottleneck,) if bottleneck not in taps else ())
    fake_global, features_global = generator_global.forward_with_taps(real_global, global_taps)
    fake_local, features_local = generator_local.forward_with_taps(real_local, tuple(taps))
    attention = networks["attention"](features_global[bottleneck][:count])  # (B, 1, hg/4, wg/4)
    fused, global_on_local, attention_on_local = fuse_predictions(
        fake_local[:count], fake_global[:count], attention, batch["source_box"]
    )
    return {
        "fake_global": fake_global,
        "fake_local": fake_local,
        "features_global": {tap: features_global[tap] for tap in taps},
        "features_local": features_local,
        "attention": attention,
        "fused": fused,
        "global_on_local": global_on_local,
        "attention_on_local": attention_on_local,
    }


def multiscale_train_step(
    networks: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    batch: Mapping[str, torch.Tensor],
    *,
    loss_cfg: LossConfig,
    projection_cfg: ProjectionConfig,
    multiscale_cfg: MultiScaleConfig,
    seed: int,
    step: int,
    image_offset: int = 0,
    dist: Distributed | None = None,
    precision: str = "fp32",
    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
) -> dict[str, torch.Tensor]:
    """Run one D update and one update of G_g, G_l, the attention head and both F; returns detached losses.

    Args:
        networks, optimizers: under the names of ``SemST.training_network_names()`` (multi-scale).
        batch: a collated multi-scale batch (``source_global``, ``source_local``, ``source_box``,
            ``target_global``, ``target_local``, ...) on the training device, images in [-1, 1].
        multiscale_cfg: ``local_adversarial_weight`` (w above).
        Others: as `semst.training.step.train_step`.
    """
    if loss_cfg.flip_equivariance:
        raise ValueError("flip_equivariance (FastCUT) is single-scale only; set multiscale.enabled=false")
    discriminator = networks["discriminator"]
    dist = dist or Distributed()
    scalers = scalers or {}
    source_local, target_local = batch["source_local"], batch["target_local"]
    device = source_local.device
    count = source_local.shape[0]
    taps = projection_cfg.taps
    use_patches = loss_cfg.contrastive_weight > 0 or loss_cfg.ts_weight > 0
    use_identity = loss_cfg.identity and loss_cfg.contrastive_weight > 0
    w = multiscale_cfg.local_adversarial_weight

    with autocast(device, precision):
        out = multiscale_forward(networks, batch, taps=taps if use_patches else (), identity=use_identity)
    fused, local = out["fused"], out["fake_local"][:count]

    # Discriminator: real target crops vs the fused output (and, with weight w, G_l's own output).
    optimizers["discriminator"].zero_grad(set_to_none=True)
    with autocast(device, precision):
        real_logits = discriminator(target_local)
        loss_d = (1 - w) * discriminator_loss(
            real_logits, discriminator(fused.detach()), loss_cfg.adversarial
        )
        if w > 0:
            loss_d = loss_d + w * discriminator_loss(
                real_logits, discriminator(local.detach()), loss_cfg.adversarial
            )
    backward_and_step(
        loss_d, [optimizers["discriminator"]], [discriminator], dist, scalers.get("discriminator")
    )

    for name in GENERATOR_SIDE:
        optimizers[name].zero_grad(set_to_none=True)
    losses: dict[str, torch.Tensor] = {"D/loss": loss_d.detach()}
    with frozen(discriminator), autocast(device, precision):
        loss_gan = (1 - w) * generator_loss(discriminator(fused), loss_cfg.adversarial)
        if w > 0:
            loss_gan = loss_gan + w * generator_loss(discriminator(local), loss_cfg.adversarial)
        losses["G/adversarial"] = loss_gan.detach()
        total = loss_cfg.adversarial_weight * loss_gan
        if use_patches:
            branch_totals = []
            for branch, stream in BRANCH_STREAMS.items():
                generator = networks[f"generator_{branch}"]
                fake = out[f"fake_{branch}"]
                branch_total, values = patch_losses(
                    networks[f"projector_{branch}"],
                    out[f"features_{branch}"],
                    generator.encode(fake, taps),
                    batch=count,
                    loss_cfg=loss_cfg,
                    projection_cfg=projection_cfg,
                    seed=seed,
                    step=step,
                    image_offset=image_offset,
                    stream=stream,
                    suffix=f"_{branch}",
                )
                branch_totals.append(branch_total)
                losses.update(values)
            total = total + 0.5 * (branch_totals[0] + branch_totals[1])
            for name in (loss_cfg.contrastive, "ts"):  # branch means, under the single-scale names
                if f"G/{name}_global" in losses:
                    losses[f"G/{name}"] = 0.5 * (losses[f"G/{name}_global"] + losses[f"G/{name}_local"])
        losses["G/total"] = total.detach()
        losses["M_s/mean"] = out["attention_on_local"].detach().float().mean()
    backward_and_step(
        total,
        [optimizers[name] for name in GENERATOR_SIDE],
        [networks[name] for name in GENERATOR_SIDE],
        dist,
        scalers.get("generator"),
    )
    return losses


@torch.no_grad()
def multiscale_preview(networks: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor]) -> dict:
    """Columns of the training sample grid: local source crop, Y_g on it, Y_l, M_s, fused Y, target crop."""
    out = multiscale_forward(networks, batch)
    return {
        "source (local)": batch["source_local"],
        "global": out["global_on_local"],
        "local": out["fake_local"],
        "M_s (white=local)": out["attention_on_local"].expand(-1, 3, -1, -1) * 2 - 1,
        "fused": out["fused"],
        "target (local)": batch["target_local"],
    }
