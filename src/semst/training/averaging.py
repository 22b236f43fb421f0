"""An exponential moving average of the translator's weights, the weights that translate after training.

GAN generators oscillate around an equilibrium instead of settling in it, so the weights of the last step
are one draw from that oscillation; averaging the weights over the end of training is the field's standard
remedy (Yazici et al. 2019, "The unusual effectiveness of averaging in GAN training"; StyleGAN, EDM).
semst uses EDM2's power-function average (Karras et al. 2024, "Analyzing and improving the training
dynamics of diffusion models", section 3.1): after step t the average is

    theta_avg <- beta_t * theta_avg + (1 - beta_t) * theta,    beta_t = (1 - 1/t) ** (gamma + 1),

which weights the weights of step s by s ** gamma up to the normalisation (exactly, by
(s ** (gamma + 1) - (s - 1) ** (gamma + 1)) / t ** (gamma + 1)). Its length is relative to the run: the
profile's standard deviation is ``std`` times the run's length at any length (EDM2's sigma_rel), so one
setting means the same at 500 steps and at 500,000, and no warm-up is needed (beta_1 = 0: the average
starts as the first step's weights). Training never reads the average: the run's trajectory is the same
with and without it.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from semst.config import MAX_EMA_STD

__all__ = ["PowerAverage", "gamma_from_std", "std_from_gamma"]


def std_from_gamma(gamma: float) -> float:
    """Relative standard deviation of the averaging profile t ** gamma on [0, 1] (EDM2's Eq. 3)."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def gamma_from_std(std: float) -> float:
    """The exponent gamma whose profile has relative standard deviation ``std`` (0 < std < sqrt(1/12)).

    ``std ** -2 = (gamma + 2) ** 2 (gamma + 3) / (gamma + 1)`` is a cubic in gamma,
    ``gamma ** 3 + 7 gamma ** 2 + (16 - s) gamma + (12 - s) = 0`` with ``s = std ** -2``; gamma is its largest
    real root, found by bisection (the cubic rises through zero once for gamma >= 0).
    """
    if not 0 < std < MAX_EMA_STD:
        raise ValueError(f"the average's relative std must be in (0, {MAX_EMA_STD:.4f}) (got {std})")
    s = std**-2

    def cubic(g: float) -> float:
        return ((g + 7) * g + 16 - s) * g + 12 - s

    low, high = 0.0, 1.0
    while cubic(high) < 0:
        high *= 2
    for _ in range(200):  # far below float resolution
        mid = (low + high) / 2
        if cubic(mid) < 0:
            low = mid
        else:
            high = mid
    return (low + high) / 2


class PowerAverage:
    """The power-function moving average of a module's parameters (see the module docstring).

    Args:
        module: the network whose weights are averaged (the translator); it is copied, and the copy holds the
            average. Buffers are copied from the module at each update, not averaged.
        std: the profile's relative standard deviation (EDM2's sigma_rel; 0.05-0.1 are its usual values).
    """

    def __init__(self, module: nn.Module, std: float):
        self.std = std
        self.gamma = gamma_from_std(std)
        self.module = copy.deepcopy(module).requires_grad_(False).eval()

    def beta(self, step: int) -> float:
        """The weight the average keeps at the update after ``step`` optimisation steps (step >= 1)."""
        return (1 - 1 / step) ** (self.gamma + 1)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Fold ``module``'s weights after ``step`` optimisation steps (1, 2, ...) into the average."""
        averaged = list(self.module.parameters())
        current = [p.detach() for p in module.parameters()]
        torch._foreach_lerp_(averaged, current, 1 - self.beta(step))
        for mine, theirs in zip(self.module.buffers(), module.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
