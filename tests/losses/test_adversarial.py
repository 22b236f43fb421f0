"""Tests for semst.losses.adversarial: exact values, CUT equivalences, errors, dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from semst.losses.adversarial import ADVERSARIAL_MODES, discriminator_loss, generator_loss

REAL = [[0.5, -1.0], [2.0, 0.0]]
FAKE = [-0.3, 1.5, 0.2]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _flat(nested: list) -> list[float]:
    return [v for row in nested for v in row] if isinstance(nested[0], list) else list(nested)


def test_lsgan_exact_values() -> None:
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    expected_d = 0.5 * (_mean([(v - 1.0) ** 2 for v in _flat(REAL)]) + _mean([v**2 for v in FAKE]))
    expected_g = _mean([(v - 1.0) ** 2 for v in FAKE])
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(expected_d, abs=1e-12)
    assert generator_loss(fake, "lsgan").item() == pytest.approx(expected_g, abs=1e-12)


@pytest.mark.parametrize("mode", ["vanilla", "nonsaturating"])
def test_bce_discriminator_exact_values(mode: str) -> None:
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    loss_real = _mean([-math.log(_sigmoid(v)) for v in _flat(REAL)])
    loss_fake = _mean([-math.log(1.0 - _sigmoid(v)) for v in FAKE])
    assert discriminator_loss(real, fake, mode).item() == pytest.approx(
        0.5 * (loss_real + loss_fake), abs=1e-12
    )


def test_generator_vanilla_is_saturating_minimax() -> None:
    fake = torch.tensor(FAKE, dtype=torch.float64)
    expected = _mean([math.log(1.0 - _sigmoid(v)) for v in FAKE])
    assert generator_loss(fake, "vanilla").item() == pytest.approx(expected, abs=1e-12)
    # Saturation: for a confidently rejected fake the vanilla gradient is far below the non-saturating one.
    rejected = torch.tensor([-6.0], requires_grad=True)
    generator_loss(rejected, "vanilla").backward()
    vanilla_grad = rejected.grad.abs().item()
    rejected.grad = None
    generator_loss(rejected, "nonsaturating").backward()
    assert vanilla_grad < 0.01 * rejected.grad.abs().item()


def test_generator_nonsaturating_exact_value() -> None:
    fake = torch.tensor(FAKE, dtype=torch.float64)
    expected = _mean([-math.log(_sigmoid(v)) for v in FAKE])
    assert generator_loss(fake, "nonsaturating").item() == pytest.approx(expected, abs=1e-12)


def test_cut_vanilla_and_nonsaturating_equal_our_nonsaturating() -> None:
    """CUT's vanilla GANLoss is BCEWithLogits with target labels; its G loss uses the 'real' label."""
    torch.manual_seed(0)
    real, fake = torch.randn(2, 1, 5, 5), torch.randn(2, 1, 5, 5)
    bce = torch.nn.BCEWithLogitsLoss()
    cut_g = bce(fake, torch.ones_like(fake))
    cut_d = 0.5 * (bce(fake, torch.zeros_like(fake)) + bce(real, torch.ones_like(real)))
    torch.testing.assert_close(generator_loss(fake, "nonsaturating"), cut_g)
    for mode in ("vanilla", "nonsaturating"):
        torch.testing.assert_close(discriminator_loss(real, fake, mode), cut_d)
    # And the lsgan form equals CUT's MSE-to-constant-target GANLoss.
    mse = torch.nn.MSELoss()
    torch.testing.assert_close(generator_loss(fake, "lsgan"), mse(fake, torch.ones_like(fake)))
    torch.testing.assert_close(
        discriminator_loss(real, fake, "lsgan"),
        0.5 * (mse(real, torch.ones_like(real)) + mse(fake, torch.zeros_like(fake))),
    )


def test_unknown_mode_lists_valid_modes() -> None:
    logits = torch.zeros(3)
    with pytest.raises(ValueError, match="wgangp.*lsgan.*vanilla.*nonsaturating"):
        generator_loss(logits, "wgangp")
    with pytest.raises(ValueError, match="expected one of"):
        discriminator_loss(logits, logits, "hinge")


def test_empty_logits_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        generator_loss(torch.zeros(0))


@pytest.mark.parametrize("mode", ADVERSARIAL_MODES)
def test_low_precision_and_autocast_give_float32(mode: str) -> None:
    torch.manual_seed(1)
    real, fake = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)
    reference_d, reference_g = discriminator_loss(real, fake, mode), generator_loss(fake, mode)
    d_half = discriminator_loss(real.bfloat16(), fake.bfloat16(), mode)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        g_auto = generator_loss(fake, mode)
    assert d_half.dtype == torch.float32 and g_auto.dtype == torch.float32
    torch.testing.assert_close(d_half, reference_d, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(g_auto, reference_g)
