"""Adversarial (GAN) losses for the PatchGAN discriminator: the SemST objective's adversarial term.

SemST keeps CUT's adversarial term (the ``L_GAN`` of the total objective; the paper builds on CUT's code,
section 4.1) and so do these functions:

- ``discriminator_loss`` returns ``0.5 * (loss(D(real), real) + loss(D(fake), fake))`` as in CUT's
  ``compute_D_loss``, each part averaged over every element of the logit map;
- ``generator_loss`` returns the generator's loss on ``D(G(x))``, averaged over every element.

Three modes (``ADVERSARIAL_MODES``):

- ``"lsgan"`` (CUT's default): least squares to the targets 1 (real) and 0 (fake).
- ``"vanilla"``: Goodfellow et al.'s original minimax game. D minimises the binary cross-entropy with logits,
  ``softplus(-real) + softplus(fake)``; G *minimises* ``log(1 - sigmoid(fake)) = -softplus(fake)``, the
  saturating form whose gradient vanishes when D confidently rejects the fakes.
- ``"nonsaturating"``: same D loss; G minimises ``-log sigmoid(fake) = softplus(-fake)``.

Note on names: CUT's ``--gan_mode vanilla`` trains G with ``BCEWithLogits(fake, target=1)`` and CUT's
``nonsaturating`` uses ``softplus(-fake)``; both are the non-saturating generator loss, i.e. this module's
``"nonsaturating"``. This module's ``"vanilla"`` is the textbook saturating loss, kept for completeness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ADVERSARIAL_MODES = ("lsgan", "vanilla", "nonsaturating")


def _check_mode(mode: str) -> None:
    if mode not in ADVERSARIAL_MODES:
        raise ValueError(f"unknown adversarial mode {mode!r}; expected one of {ADVERSARIAL_MODES}")


def _as_float(logits: Tensor, name: str) -> Tensor:
    """Returns ``logits`` in at least float32 (float16/bfloat16 from autocast are upcast)."""
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(logits.shape)}")
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, mode: str = "lsgan") -> Tensor:
    """Discriminator loss ``0.5 * (loss(real, target real) + loss(fake, target fake))``.

    Args:
        real_logits: Discriminator outputs (raw logits, no sigmoid) on real target-domain images, any shape.
        fake_logits: Discriminator outputs on translated images (detach them from the generator), any shape.
        mode: One of ``ADVERSARIAL_MODES``.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs).

    Raises:
        ValueError: If ``mode`` is unknown or a logit tensor is empty.
    """
    _check_mode(mode)
    real = _as_float(real_logits, "real_logits")
    fake = _as_float(fake_logits, "fake_logits")
    with torch.autocast(device_type=real.device.type, enabled=False):
        if mode == "lsgan":
            loss_real = (real - 1.0).square().mean()
            loss_fake = fake.square().mean()
        else:
            # BCE with logits: -log sigmoid(r) = softplus(-r) and -log(1 - sigmoid(f)) = softplus(f).
            loss_real = F.softplus(-real).mean()
            loss_fake = F.softplus(fake).mean()
        return 0.5 * (loss_real + loss_fake)


def generator_loss(fake_logits: Tensor, mode: str = "lsgan") -> Tensor:
    """Generator loss on the discriminator's logits for translated images.

    Args:
        fake_logits: Discriminator outputs (raw logits) on translated images, any shape; keep the graph to G.
        mode: One of ``ADVERSARIAL_MODES``. ``"lsgan"``: ``mean((fake - 1)^2)``; ``"vanilla"``:
            ``mean(log(1 - sigmoid(fake))) = mean(-softplus(fake))`` (saturating, Goodfellow's minimax);
            ``"nonsaturating"``: ``mean(softplus(-fake))``, which equals CUT's ``vanilla`` and
            ``nonsaturating`` generator losses.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs).

    Raises:
        ValueError: If ``mode`` is unknown or ``fake_logits`` is empty.
    """
    _check_mode(mode)
    fake = _as_float(fake_logits, "fake_logits")
    with torch.autocast(device_type=fake.device.type, enabled=False):
        if mode == "lsgan":
            return (fake - 1.0).square().mean()
        if mode == "vanilla":
            return (-F.softplus(fake)).mean()
        return F.softplus(-fake).mean()
