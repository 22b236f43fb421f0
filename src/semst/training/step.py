"""One optimisation step of SemST (or CUT/FastCUT), for any translator: a discriminator update, then G and F.

The order and the loss wiring follow CUT's ``optimize_parameters``; the losses are SemST's. With the
translator's training forward pass (`semst.translators.Translator.training_forward`) giving the images D
judges as translations, ``(Y_k, w_k)`` with weights summing to 1, the target crops ``y`` and one branch per
generator b (its inputs x_b, outputs G_b(x_b) and encoder features):

    L_D = sum_k w_k * 0.5 * (GAN(D(y), real) + GAN(D(Y_k), fake))
    L_G = lambda_GAN * sum_k w_k GAN(D(Y_k), real)
        + mean over branches b of
          [lambda_hDCE * 0.5 * (hDCE(x_b, G_b(x_b)) + hDCE(y_b, G_b(y_b)))     (identity term as CUT's nce_idt)
           + lambda_TS * TS(x_b, G_b(x_b))],   TS = -mean_taps rSMI(z, w_hat)  (paper Eq. 1)

A single-scale translator has one branch and judges its translation with weight 1, which is CUT's step;
the multi-scale translator has a global and a local branch and judges the fused output and, with a small
weight, the local generator's own (semst.translators.multi_scale).

Two things differ from CUT's code, without changing the losses' values:

* The keys (embeddings of the real images) come from the feature taps of the generator's own forward
  pass, instead of a second encoder pass over the real images: same weights, same input, same values,
  and keys carry no gradient either way. (FastCUT's flip-equivariance needs keys of the *unflipped*
  image, so there the extra encoder pass remains.)
* Random patch locations are drawn from generators seeded by (seed, step, branch, tap, global image
  index), so a step's randomness does not depend on the batch split across processes or on resuming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from semst.config import LossConfig, ProjectionConfig
from semst.data.batch import Batch
from semst.losses import discriminator_loss, generator_loss, hdce_loss, patchnce_loss, ts_loss
from semst.networks import sample_locations
from semst.runtime import Distributed, autocast, frozen
from semst.training.networks import TrainingNetworks
from semst.translators import Branch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of the integer ``parts`` (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def contrastive_loss(queries: torch.Tensor, keys: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """The configured patch-contrastive loss (hDCE or PatchNCE) of one tap; (B, P, C) each."""
    if cfg.contrastive == "hdce":
        return hdce_loss(
            queries, keys, temperature=cfg.temperature, beta=cfg.hdce_beta, weighting=cfg.hdce_weighting
        )
    return patchnce_loss(queries, keys, temperature=cfg.temperature)


def structure_texture_loss(
    inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], cfg: LossConfig, seed: int
) -> torch.Tensor:
    """The TS loss (minus the mean rSMI over taps and images) with the config's estimator settings and
    tap weights."""
    kwargs: dict = {"alpha": cfg.rsmi_alpha}
    if cfg.rsmi_lambda is not None:
        kwargs["lam"] = cfg.rsmi_lambda
    if cfg.ts_estimator == "kernel":
        if cfg.rsmi_sigma is not None:
            kwargs["sigma_x"] = kwargs["sigma_y"] = cfg.rsmi_sigma
        if cfg.rsmi_sigma_min > 0:
            kwargs["sigma_min"] = cfg.rsmi_sigma_min
        if cfg.rsmi_num_centers is not None:
            kwargs["num_centers"] = cfg.rsmi_num_centers
            kwargs["generator"] = _generator(seed)
    elif cfg.rsmi_sigma is not None:
        kwargs["sigma"] = cfg.rsmi_sigma
    weights = cfg.ts_tap_weights or None
    return ts_loss(inputs, outputs, estimator=cfg.ts_estimator, tap_weights=weights, **kwargs)


def backward_and_step(
    loss: torch.Tensor,
    optimizers: Sequence[torch.optim.Optimizer],
    modules: Sequence[nn.Module],
    dist: Distributed,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Backward (scaled for fp16), average gradients across processes, step the optimizers."""
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    for module in modules:
        dist.average_gradients(module.parameters())
    for optimizer in optimizers:
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
    if scaler is not None:
        scaler.update()


def patch_losses(
    projector: nn.Module,
    real_features: Mapping[str, torch.Tensor],
    fake_features: Mapping[str, torch.Tensor],
    *,
    batch: int,
    loss_cfg: LossConfig,
    projection_cfg: ProjectionConfig,
    seed: int,
    step: int,
    image_offset: int = 0,
    stream: tuple[int, ...] = (),
    suffix: str = "",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted contrastive (hDCE/PatchNCE, with the identity half) and TS losses of one generator.

    Args:
        projector: the projection head F of this generator.
        real_features, fake_features: tap -> (B', C, h, w) encoder features of the real images and of
            their translations; B' = ``batch`` (source only) or ``2 * batch`` (source, then target images
            for the identity term). Keys are detached here.
        batch: number of source images.
        stream: extra seed words that separate the patch locations of several generators in one step.
        suffix: appended to the loss names (``"_global"``, ``"_local"``).

    Returns:
        ``(lambda_c * L_contrastive + lambda_TS * L_TS, {name: detached loss})``.
    """
    taps = projection_cfg.taps
    total_images = next(iter(real_features.values())).shape[0]
    use_identity = loss_cfg.identity and loss_cfg.contrastive_weight > 0 and total_images > batch
    locations = {}
    for t, tap in enumerate(taps):
        height, width = real_features[tap].shape[-2:]
        seeds = [
            derive_seed(seed, step, *stream, t, b // batch, image_offset + b % batch)
            for b in range(total_images)
        ]
        # Kept on the CPU: the projector validates them there (no device sync) and moves them.
        locations[tap] = sample_locations(
            height * width, projection_cfg.num_patches, [_generator(s) for s in seeds]
        )
    keys = projector({tap: real_features[tap].detach() for tap in taps}, locations)  # tap -> (B', P, dim)
    queries = projector({tap: fake_features[tap] for tap in taps}, locations)  # tap -> (B', P, dim)

    losses: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=next(iter(queries.values())).device)
    if loss_cfg.contrastive_weight > 0:
        name = f"G/{loss_cfg.contrastive}{suffix}"
        loss_c = torch.stack([contrastive_loss(queries[t][:batch], keys[t][:batch], loss_cfg) for t in taps])
        loss_c = loss_c.mean()
        losses[name] = loss_c.detach()
        if use_identity:
            loss_idt = torch.stack(
                [contrastive_loss(queries[t][batch:], keys[t][batch:], loss_cfg) for t in taps]
            ).mean()
            losses[f"G/{loss_cfg.contrastive}_identity{suffix}"] = loss_idt.detach()
            loss_c = 0.5 * (loss_c + loss_idt)
        total = total + loss_cfg.contrastive_weight * loss_c
    if loss_cfg.ts_weight > 0:
        ts_taps = loss_cfg.ts_taps or taps
        ts_keys, ts_queries = _ts_embeddings(
            projector, keys, queries, fake_features, locations, ts_taps, loss_cfg
        )
        loss_ts = structure_texture_loss(
            [ts_keys[t][:batch] for t in ts_taps],
            [ts_queries[t][:batch] for t in ts_taps],
            loss_cfg,
            seed=derive_seed(seed, step, 2, image_offset, *stream),
        )
        losses[f"G/ts{suffix}"] = loss_ts.detach()
        total = total + loss_cfg.ts_weight * loss_ts
    return total, losses


def _ts_embeddings(
    projector: nn.Module,
    keys: Mapping[str, torch.Tensor],
    queries: Mapping[str, torch.Tensor],
    fake_features: Mapping[str, torch.Tensor],
    locations: Mapping[str, torch.Tensor],
    taps: Sequence[str],
    loss_cfg: LossConfig,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The input (key) and output (query) embeddings the TS loss compares, with the gradient paths of
    ``loss.ts_projector_gradient``: ``both`` lets TS train F through both embeddings (F can then raise the
    mutual information on its own), ``queries`` through the output's only (the input's embedding is a fixed
    target, as the keys of the contrastive losses are), ``none`` not at all (F as the contrastive losses
    trained it; the TS gradient reaches only the generator, through F's output embedding)."""
    mode = loss_cfg.ts_projector_gradient
    if mode == "both":
        return dict(keys), dict(queries)
    fixed_keys = {t: keys[t].detach() for t in taps}
    if mode == "queries":
        return fixed_keys, dict(queries)
    frozen_parameters = {name: p.detach() for name, p in projector.named_parameters()}
    fixed_queries = torch.func.functional_call(
        projector, frozen_parameters, ({t: fake_features[t] for t in taps}, locations)
    )  # tap -> (B', P, dim): gradient to the features (the generator), none to F
    return fixed_keys, fixed_queries


def train_step(
    networks: TrainingNetworks,
    optimizers: Mapping[str, torch.optim.Optimizer],
    batch: Batch,
    *,
    loss_cfg: LossConfig,
    projection_cfg: ProjectionConfig,
    seed: int,
    step: int,
    image_offset: int = 0,
    dist: Distributed | None = None,
    precision: str = "fp32",
    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
) -> dict[str, torch.Tensor]:
    """Run one D update and one update of the translator and F on a batch; returns the named losses (detached).

    Args:
        networks: the translator, D and the projection heads.
        optimizers: their Adam optimizers, under the names of ``networks.parts()``.
        batch: crops of both domains on the training device, images in [-1, 1].
        loss_cfg, projection_cfg: loss weights and settings; taps and patch count of F.
        seed, step: the run's seed and this step's index (they seed the patch locations).
        image_offset: global index of this process's first image in the global batch (DDP).
        dist: process group helper (gradient averaging); None for a single process.
        precision: autocast precision, ``fp32``, ``bf16`` or ``fp16`` (then ``scalers`` are needed).
        scalers: GradScalers for fp16 under ``"discriminator"`` and ``"generator"``.
    """
    translator, discriminator = networks.translator, networks.discriminator
    dist = dist or Distributed()
    scalers = scalers or {}
    device = batch.source.crop.device
    count = batch.size
    taps = projection_cfg.taps
    use_patches = loss_cfg.contrastive_weight > 0 or loss_cfg.ts_weight > 0
    use_identity = loss_cfg.identity and loss_cfg.contrastive_weight > 0
    flipped = loss_cfg.flip_equivariance and bool(
        np.random.default_rng(derive_seed(seed, step, 1)).random() < 0.5
    )

    with autocast(device, precision):
        out = translator.training_forward(
            batch, taps=taps if use_patches and not flipped else (), identity=use_identity, flip=flipped
        )

    # Discriminator: real target crops against the (detached) translations it judges.
    optimizers["discriminator"].zero_grad(set_to_none=True)
    with autocast(device, precision):
        real_logits: dict[int, torch.Tensor] = {}  # one pass per real batch, however many translations
        loss_d = 0.0
        for image, real, weight in out.judged:
            if id(real) not in real_logits:
                real_logits[id(real)] = discriminator(real)
            fake_logits = discriminator(image.detach())
            loss_d = loss_d + weight * discriminator_loss(
                real_logits[id(real)], fake_logits, loss_cfg.adversarial
            )
    backward_and_step(
        loss_d, [optimizers["discriminator"]], [discriminator], dist, scalers.get("discriminator")
    )

    # Translator and projection heads.
    optimizers["translator"].zero_grad(set_to_none=True)
    optimizers["projectors"].zero_grad(set_to_none=True)
    losses: dict[str, torch.Tensor] = {"D/loss": loss_d.detach()}
    with frozen(discriminator), autocast(device, precision):
        loss_gan = sum(
            weight * generator_loss(discriminator(image), loss_cfg.adversarial)
            for image, _, weight in out.judged
        )
        losses["G/adversarial"] = loss_gan.detach()
        total = loss_cfg.adversarial_weight * loss_gan
        if use_patches:
            loss_patches, patch_values = branch_patch_losses(
                networks,
                out.branches,
                batch=count,
                flipped=flipped,
                loss_cfg=loss_cfg,
                projection_cfg=projection_cfg,
                seed=seed,
                step=step,
                image_offset=image_offset,
            )
            total = total + loss_patches
            losses.update(patch_values)
        losses.update(out.scalars)
        losses["G/total"] = total.detach()
    backward_and_step(
        total,
        [optimizers["translator"], optimizers["projectors"]],
        [translator, networks.projectors],
        dist,
        scalers.get("generator"),
    )
    return losses


def branch_patch_losses(
    networks: TrainingNetworks,
    branches: Sequence[Branch],
    *,
    batch: int,
    flipped: bool,
    loss_cfg: LossConfig,
    projection_cfg: ProjectionConfig,
    seed: int,
    step: int,
    image_offset: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The mean over branches of each branch's weighted patch losses (`patch_losses`), weighted by the
    branches' ``weight`` (1 each: the plain mean), and their values.

    With several branches, values are logged per branch (``G/hdce_global``, ...) and as their weighted mean
    under the single-branch names (``G/hdce``, ``G/ts``).
    """
    taps = projection_cfg.taps
    several = len(branches) > 1
    totals, losses = [], {}
    for index, branch in enumerate(branches):
        if flipped:  # flip-equivariance: keys of the unflipped images, queries flipped back
            with torch.no_grad():
                keys = branch.generator.encode(branch.inputs.flip(-1), taps)
            queries = {tap: f.flip(-1) for tap, f in branch.generator.encode(branch.outputs, taps).items()}
        else:
            keys, queries = branch.features, branch.generator.encode(branch.outputs, taps)
        total, values = patch_losses(
            networks.projectors[branch.projector or branch.name],
            keys,
            queries,
            batch=batch,
            loss_cfg=loss_cfg,
            projection_cfg=projection_cfg,
            seed=seed,
            step=step,
            image_offset=image_offset,
            stream=(index + 1,) if several else (),
            suffix=f"_{branch.name}" if several else "",
        )
        totals.append(branch.weight * total)
        losses.update(values)
    weight = sum(branch.weight for branch in branches)
    if several:
        for name in (loss_cfg.contrastive, "ts"):
            per_branch = [
                b.weight * losses[f"G/{name}_{b.name}"] for b in branches if f"G/{name}_{b.name}" in losses
            ]
            if per_branch:
                losses[f"G/{name}"] = sum(per_branch) / weight
    return sum(totals) / weight, losses


@torch.no_grad()
def preview(networks: TrainingNetworks, batch: Batch, *, identity: bool) -> dict[str, torch.Tensor]:
    """The columns of a training sample grid (the translator's own choice: source, translation, ...)."""
    return networks.translator.training_forward(batch, identity=identity).preview
