"""Tests for semst.losses.patchnce against a loop implementation of CUT's PatchNCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semst.losses.patchnce import patchnce_loss


def _unit(rows: list[list[float]]) -> list[list[float]]:
    return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in rows]


def _loop_patchnce(query: list[list[float]], key: list[list[float]], tau: float) -> float:
    """Plain-Python CUT PatchNCE for one image, including the e^{-10/tau} term of the masked diagonal."""
    num = len(query)
    total = 0.0
    for i in range(num):
        positive = math.exp(sum(a * b for a, b in zip(query[i], key[i])) / tau)
        denominator = positive
        for j in range(num):
            if j == i:
                denominator += math.exp(-10.0 / tau)
            else:
                denominator += math.exp(sum(a * b for a, b in zip(query[i], key[j])) / tau)
        total += -math.log(positive / denominator)
    return total / num


QUERY = _unit([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [-0.5, 0.4, 1.0]])
KEY = _unit([[0.9, 0.1, 0.2], [0.3, 0.8, -0.1], [0.0, 0.5, 0.9]])


@pytest.mark.parametrize("tau", [0.07, 0.5, 2.0])
def test_exact_value_matches_loop(tau: float) -> None:
    expected = _loop_patchnce(QUERY, KEY, tau)
    got = patchnce_loss(torch.tensor(QUERY, dtype=torch.float64), torch.tensor(KEY, dtype=torch.float64), tau)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_masked_diagonal_term_is_included() -> None:
    """At tau = 2 the e^{-10/tau} term is large enough to be visible: dropping it changes the value."""
    tau = 2.0
    q, k = torch.tensor(QUERY, dtype=torch.float64), torch.tensor(KEY, dtype=torch.float64)
    logits = q @ k.t() / tau  # (P, P)
    without = (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean().item()
    got = patchnce_loss(q, k, tau).item()
    assert got - without > 1e-3
    assert got == pytest.approx(_loop_patchnce(QUERY, KEY, tau), rel=1e-12)


def _random_pair(batch: int, patches: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    key = F.normalize(torch.randn(batch, patches, channels, generator=g), dim=-1)
    query = F.normalize(key + 0.5 * torch.randn(batch, patches, channels, generator=g), dim=-1)
    return query, key


def test_two_dimensional_input_equals_batch_of_one() -> None:
    query, key = _random_pair(1, 6, 4, 0)
    torch.testing.assert_close(patchnce_loss(query[0], key[0]), patchnce_loss(query, key))


def test_batch_is_mean_of_images_and_negatives_stay_within_image() -> None:
    query, key = _random_pair(2, 5, 4, 1)
    separate = 0.5 * (patchnce_loss(query[0], key[0]) + patchnce_loss(query[1], key[1]))
    torch.testing.assert_close(patchnce_loss(query, key), separate)
    # Pooling all 10 patches as one image (negatives across images) gives a different value.
    pooled = patchnce_loss(query.reshape(10, 4), key.reshape(10, 4))
    assert not torch.allclose(pooled, separate)


def test_joint_patch_permutation_invariance() -> None:
    query, key = _random_pair(2, 7, 5, 2)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(patchnce_loss(query[:, perm], key[:, perm]), patchnce_loss(query, key))


def test_gradient_reaches_query_only() -> None:
    query, key = _random_pair(2, 4, 3, 4)
    query.requires_grad_(True)
    key.requires_grad_(True)
    patchnce_loss(query, key).backward()
    assert key.grad is None
    assert query.grad is not None and query.grad.abs().sum() > 0


def test_gradcheck_query() -> None:
    query, key = _random_pair(1, 4, 3, 5)
    query = query.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: patchnce_loss(q, key.double(), 0.5), (query,))


def test_autocast_returns_float32_close_to_reference() -> None:
    query, key = _random_pair(2, 16, 8, 6)
    reference = patchnce_loss(query, key)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = patchnce_loss(query, key)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference)
    half = patchnce_loss(query.bfloat16(), key.bfloat16())
    assert half.dtype == torch.float32


def test_bad_arguments() -> None:
    query, key = _random_pair(1, 4, 3, 7)
    with pytest.raises(ValueError, match=r"same shape.*\(1, 4, 3\).*\(1, 3, 3\)"):
        patchnce_loss(query, key[:, :3])
    with pytest.raises(ValueError, match="4-D"):
        patchnce_loss(query[None], key[None])
    with pytest.raises(ValueError, match="temperature"):
        patchnce_loss(query, key, temperature=0.0)
