"""Everything a training run optimises, as one module tree: the translator, the discriminator D and the
projection heads F.

    TrainingNetworks
    ├── translator      SingleScaleTranslator (generator) or MultiScaleTranslator (generator_global,
    │                   generator_local, attention)
    ├── discriminator   CUT's PatchGAN
    └── projectors      one PatchProjector per translator branch ("main", or "global" and "local")

Checkpoint tensor names and optimizers follow this tree (``translator.generator.stem.conv.weight``,
``optimizer.translator.state.0.exp_avg``): nothing is named by hand.
"""

from __future__ import annotations

import torch
from torch import nn

from semst.config import DiscriminatorConfig, ExperimentConfig, TrainConfig
from semst.networks import PatchProjector, build_discriminator
from semst.translators import Translator

__all__ = ["TrainingNetworks", "discriminator_from_config", "make_optimizers"]


def discriminator_from_config(cfg: DiscriminatorConfig) -> nn.Module:
    """The discriminator a config describes (CUT's PatchGAN)."""
    return build_discriminator(
        cfg.architecture,
        base_channels=cfg.base_channels,
        num_layers=cfg.num_layers,
        norm=cfg.norm,
        antialias=cfg.antialias,
        init=cfg.init,
        init_gain=cfg.init_gain,
    )


class TrainingNetworks(nn.Module):
    """The translator, D, and one projection head F per translator branch (see the module docstring).

    Args:
        translator: a `semst.translators.Translator`.
        discriminator: D.
        projectors: branch name -> its projection head; one for each of ``translator.branches()``.
    """

    def __init__(self, translator: Translator, discriminator: nn.Module, projectors: dict[str, nn.Module]):
        super().__init__()
        if set(projectors) != set(translator.branches()):
            raise ValueError(
                f"one projection head per translator branch is needed: branches {sorted(translator.branches())}, "
                f"projectors {sorted(projectors)}"
            )
        self.translator = translator
        self.discriminator = discriminator
        self.projectors = nn.ModuleDict(projectors)

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> TrainingNetworks:
        """Freshly initialised networks of ``config`` (seed torch first for reproducible weights)."""
        translator = Translator.from_config(config)
        discriminator = discriminator_from_config(config.discriminator)
        taps = config.projection.taps
        projectors = {
            name: PatchProjector(generator.tap_channels(taps), dim=config.projection.dim)
            for name, generator in translator.branches().items()
        }
        return cls(translator, discriminator, projectors)

    def parts(self) -> dict[str, nn.Module]:
        """The top-level networks by name (``translator``, ``discriminator``, ``projectors``): each gets an
        optimizer, and their names prefix the checkpoint's tensors."""
        return dict(self.named_children())


def make_scalers(precision: str, device: torch.device) -> dict[str, torch.amp.GradScaler]:
    """The gradient scalers fp16 training needs, one per optimizer (``"discriminator"``, ``"generator"``);
    none for other precisions."""
    if precision != "fp16":
        return {}
    return {name: torch.amp.GradScaler(device.type) for name in ("discriminator", "generator")}


def make_optimizers(networks: TrainingNetworks, train_cfg: TrainConfig) -> dict[str, torch.optim.Adam]:
    """One Adam per part of ``networks`` with the config's learning rate and betas (CUT: 2e-4, (0.5, 0.999)).

    Adam updates every parameter on its own, so one optimizer over the translator's generators is the same as
    one per generator.
    """
    return {
        name: torch.optim.Adam(module.parameters(), lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2))
        for name, module in networks.parts().items()
    }
