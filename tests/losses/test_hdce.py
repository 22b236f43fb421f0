"""Tests for semst.losses.hdce against plain-Python loops (SemST Eq. 7-9 and SRC's variant)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semst.losses.hdce import HDCE_DEFAULT_BETA, hdce_loss, hdce_negative_weights


def _unit(rows: list[list[float]]) -> list[list[float]]:
    return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in rows]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(u * v for u, v in zip(a, b))


def _loop_weights(key: list[list[float]], beta: float, weighting: str) -> list[list[float]]:
    num = len(key)
    weights = [[0.0] * num for _ in range(num)]
    for i in range(num):
        others = [j for j in range(num) if j != i]
        if weighting == "importance":
            mean = sum(math.exp(beta * _dot(key[i], key[j])) for j in others) / len(others)
            for j in others:
                weights[i][j] = math.exp(beta * _dot(key[i], key[j])) / mean
        else:
            hardest = max(_dot(key[i], key[j]) for j in others)
            for j in others:
                weights[i][j] = math.exp(beta * (_dot(key[i], key[j]) - hardest))
    return weights


def _loop_hdce(
    query: list[list[float]], key: list[list[float]], tau: float, beta: float, weighting: str
) -> float:
    num = len(query)
    weights = _loop_weights(key, beta, weighting)
    total = 0.0
    for i in range(num):
        negatives = 0.0
        for j in range(num):
            if j == i:
                continue
            s = _dot(query[i], key[j])
            if weighting == "importance":
                negatives += weights[i][j] * math.exp(s / tau)
            else:
                negatives += math.exp(weights[i][j] * s / tau)
        total += -_dot(query[i], key[i]) / tau + math.log(negatives)
    return total / num


QUERY = _unit([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [-0.5, 0.4, 1.0], [0.3, -0.2, 0.8]])
KEY = _unit([[0.9, 0.1, 0.2], [0.3, 0.8, -0.1], [0.0, 0.5, 0.9], [0.7, 0.0, 0.6]])


@pytest.mark.parametrize("weighting", ["importance", "src"])
@pytest.mark.parametrize("beta", [0.0, 0.7, 3.0])
@pytest.mark.parametrize("tau", [0.07, 0.5])
@pytest.mark.parametrize("patches", [2, 4])
def test_exact_value_matches_loop(weighting: str, beta: float, tau: float, patches: int) -> None:
    expected = _loop_hdce(QUERY[:patches], KEY[:patches], tau, beta, weighting)
    q = torch.tensor(QUERY[:patches], dtype=torch.float64)
    k = torch.tensor(KEY[:patches], dtype=torch.float64)
    got = hdce_loss(q, k, temperature=tau, beta=beta, weighting=weighting)
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_beta_zero_is_decoupled_infonce() -> None:
    q, k = torch.tensor(QUERY, dtype=torch.float64), torch.tensor(KEY, dtype=torch.float64)
    tau = 0.2
    total = 0.0
    for i in range(4):
        negatives = sum(math.exp(_dot(QUERY[i], KEY[j]) / tau) for j in range(4) if j != i)
        total += -math.log(math.exp(_dot(QUERY[i], KEY[i]) / tau) / negatives)
    for weighting in ("importance", "src"):
        assert hdce_loss(q, k, tau, beta=0.0, weighting=weighting).item() == pytest.approx(
            total / 4, rel=1e-12
        )


@pytest.mark.parametrize("weighting", ["importance", "src"])
def test_weights_match_brute_force_and_favour_hard_negatives(weighting: str) -> None:
    k = torch.tensor(KEY, dtype=torch.float64)
    for beta in (0.0, 1.0, 5.0):
        expected = torch.tensor(_loop_weights(KEY, beta, weighting), dtype=torch.float64)
        torch.testing.assert_close(hdce_negative_weights(k, beta, weighting), expected)
    g = torch.tensor(KEY, dtype=torch.float64) @ torch.tensor(KEY, dtype=torch.float64).t()
    g.fill_diagonal_(-math.inf)
    hardest = g.argmax(dim=1)  # (P,)
    previous = None
    for beta in (0.0, 1.0, 5.0, 20.0):
        weights = hdce_negative_weights(k, beta, weighting)  # (P, P)
        assert torch.all(weights.diagonal() == 0)
        if weighting == "importance":
            torch.testing.assert_close(weights.sum(dim=1) / 3, torch.ones(4, dtype=torch.float64))
        else:
            torch.testing.assert_close(weights.max(dim=1).values, torch.ones(4, dtype=torch.float64))
        share = weights.gather(1, hardest[:, None]).squeeze(1) / weights.sum(dim=1)  # (P,)
        if beta > 0:
            assert torch.equal(weights.argmax(dim=1), hardest)
            assert torch.all(share > previous)
        previous = share


def test_two_dimensional_input_equals_batch_of_one() -> None:
    q, k = torch.tensor(QUERY), torch.tensor(KEY)
    torch.testing.assert_close(hdce_loss(q, k, beta=2.0), hdce_loss(q[None], k[None], beta=2.0))
    assert hdce_negative_weights(k).shape == (4, 4)


def _random_pair(batch: int, patches: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    key = F.normalize(torch.randn(batch, patches, channels, generator=g), dim=-1)
    query = F.normalize(key + 0.5 * torch.randn(batch, patches, channels, generator=g), dim=-1)
    return query, key


@pytest.mark.parametrize("weighting", ["importance", "src"])
def test_batch_is_mean_of_images(weighting: str) -> None:
    query, key = _random_pair(2, 6, 4, 0)
    separate = 0.5 * (
        hdce_loss(query[0], key[0], weighting=weighting) + hdce_loss(query[1], key[1], weighting=weighting)
    )
    torch.testing.assert_close(hdce_loss(query, key, weighting=weighting), separate)
    pooled = hdce_loss(query.reshape(12, 4), key.reshape(12, 4), weighting=weighting)
    assert not torch.allclose(pooled, separate)


@pytest.mark.parametrize("weighting", ["importance", "src"])
def test_joint_patch_permutation_invariance(weighting: str) -> None:
    query, key = _random_pair(2, 7, 5, 1)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        hdce_loss(query[:, perm], key[:, perm], beta=3.0, weighting=weighting),
        hdce_loss(query, key, beta=3.0, weighting=weighting),
    )


@pytest.mark.parametrize("weighting", ["importance", "src"])
@pytest.mark.parametrize("beta", [0.0, HDCE_DEFAULT_BETA])
def test_gradient_reaches_query_only_and_is_finite(weighting: str, beta: float) -> None:
    query, key = _random_pair(2, 5, 3, 3)
    query.requires_grad_(True)
    key.requires_grad_(True)
    hdce_loss(query, key, beta=beta, weighting=weighting).backward()
    assert key.grad is None
    assert torch.isfinite(query.grad).all() and query.grad.abs().sum() > 0


@pytest.mark.parametrize("weighting", ["importance", "src"])
def test_gradcheck_query(weighting: str) -> None:
    query, key = _random_pair(2, 4, 3, 4)
    query = query.double().requires_grad_(True)
    key = key.double()
    assert torch.autograd.gradcheck(lambda q: hdce_loss(q, key, 0.3, 2.0, weighting), (query,))


def test_autocast_returns_float32_close_to_reference() -> None:
    query, key = _random_pair(2, 16, 8, 5)
    reference = hdce_loss(query, key)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = hdce_loss(query, key)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference)


def test_bad_arguments() -> None:
    query, key = _random_pair(1, 4, 3, 6)
    with pytest.raises(ValueError, match="importance.*src"):
        hdce_loss(query, key, weighting="robinson")
    with pytest.raises(ValueError, match=r"P >= 2.*\(1, 1, 3\)"):
        hdce_loss(query[:, :1], key[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        hdce_loss(query, key[..., :2])
    with pytest.raises(ValueError, match="temperature"):
        hdce_loss(query, key, temperature=-1.0)
    with pytest.raises(ValueError, match="beta"):
        hdce_loss(query, key, beta=math.inf)
