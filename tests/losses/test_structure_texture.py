"""Tests for semst.losses.structure_texture (rsmi, rsmi_grid, ts_loss): brute-force and densratio references, ordering, invariances, gradients."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semst.losses.structure_texture import (
    RSMI_SIGMA_SCALE,
    _gaussian_features,
    _joint_over_product,
    _rulsif_from_moments,
    _solve_positive_definite,
    rsmi,
    rsmi_grid,
    ts_loss,
)

# ----------------------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------------------


def _gauss(a: np.ndarray, c: np.ndarray, sigma: float) -> float:
    return math.exp(-float(np.sum((a - c) ** 2)) / (2.0 * sigma**2))


def _brute_force_rsmi(
    x: np.ndarray, y: np.ndarray, sigma_x: float, sigma_y: float, lam: float, alpha: float, centres: list[int]
) -> float:
    """Joint numerator, explicit n^2 cross-pair denominator sample, plain loops."""
    n = x.shape[0]
    b = len(centres)
    numerator = np.array(
        [[_gauss(x[i], x[c], sigma_x) * _gauss(y[i], y[c], sigma_y) for i in range(n)] for c in centres]
    )
    denominator = np.array(
        [
            [_gauss(x[i], x[c], sigma_x) * _gauss(y[j], y[c], sigma_y) for i in range(n) for j in range(n)]
            for c in centres
        ]
    )  # (b, n^2)
    h = numerator.mean(axis=1)
    big_h = alpha * numerator @ numerator.T / n + (1 - alpha) * denominator @ denominator.T / n**2
    theta = np.linalg.solve(big_h + lam * np.eye(b), h)
    return float(2 * theta @ h - theta @ big_h @ theta - 1)


def _rulsif_from_features(
    numerator_features: torch.Tensor, denominator_features: torch.Tensor, lam: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RuLSIF from basis values at explicit numerator samples (B, b, n1) and denominator samples (B, b, n2).

    A reference for the library's closed-form moments (it solves with the library's ``_rulsif_from_moments``).
    Returns ``(2 PE_alpha(numerator || denominator), theta)`` as (B,) and (B, b); see
    :func:`_rulsif_from_moments`.
    """
    num_numerator = numerator_features.shape[-1]
    num_denominator = denominator_features.shape[-1]
    h = numerator_features.mean(dim=-1)  # (B, b)
    second_numerator = (
        torch.bmm(numerator_features, numerator_features.transpose(1, 2)) / num_numerator
    )  # (B, b, b)
    second_denominator = (
        torch.bmm(denominator_features, denominator_features.transpose(1, 2)) / num_denominator
    )  # (B, b, b)
    return _rulsif_from_moments(h, second_numerator, second_denominator, lam, alpha)


def _pairs(n: int, dx: int, dy: int, seed: int, strength: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=g, dtype=torch.float64)
    mix = torch.randn(dx, dy, generator=g, dtype=torch.float64)
    y = strength * torch.tanh(x @ mix) + (1 - strength) * torch.randn(n, dy, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_matches_brute_force_with_explicit_cross_pairs(alpha: float) -> None:
    x, y = _pairs(6, 2, 3, 0)
    expected = _brute_force_rsmi(x.numpy(), y.numpy(), 0.9, 1.4, 0.05, alpha, list(range(6)))
    got = rsmi(x, y, sigma_x=0.9, sigma_y=1.4, lam=0.05, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # The explicit-sample reference agrees as well (n^2 denominator sample built from features).
    kx = _gaussian_features(x[None], x[None], torch.tensor([0.9], dtype=torch.float64))  # (1, n, n)
    ky = _gaussian_features(y[None], y[None], torch.tensor([1.4], dtype=torch.float64))  # (1, n, n)
    cross = (kx[:, :, :, None] * ky[:, :, None, :]).reshape(1, 6, 36)  # (1, b, n^2); pair (i, j) -> i * n + j
    value, _ = _rulsif_from_features(kx * ky, cross, 0.05, alpha)
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_subset_of_centres_matches_brute_force() -> None:
    x, y = _pairs(7, 3, 2, 1)
    index = torch.randperm(7, generator=torch.Generator().manual_seed(5))[:4].tolist()
    expected = _brute_force_rsmi(x.numpy(), y.numpy(), 1.1, 0.8, 0.02, 0.5, index)
    got = rsmi(x, y, 1.1, 0.8, lam=0.02, num_centers=4, generator=torch.Generator().manual_seed(5))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_matches_densratio_rulsif() -> None:
    """densratio 0.4.0 RuLSIF: equal sample sizes, numerator samples as centres, one sigma and lambda."""
    densratio_core = pytest.importorskip("densratio.core")
    n, sigma, lam = 25, 1.0, 0.5
    x, y = _pairs(n, 2, 2, 2)
    perm = torch.roll(torch.arange(n), 7)  # a fixed permutation without fixed points
    numerator = torch.cat([x, y], dim=1).numpy()  # (n, 4): joint pairs
    denominator = torch.cat([x, y[perm]], dim=1).numpy()  # (n, 4): cross pairs (x_i, y_perm(i))
    np.random.seed(0)
    result = densratio_core.RuLSIF(
        numerator, denominator, sigma=sigma, lambda_=lam, alpha=0.5, kernel_num=1000, verbose=False
    )
    s = torch.tensor([sigma], dtype=torch.float64)
    kx = _gaussian_features(x[None], x[None], s)  # (1, b = n, n)
    ky = _gaussian_features(y[None], y[None], s)  # (1, n, n)
    ky_cross = _gaussian_features(y[perm][None], y[None], s)  # (1, n, n)
    value, theta = _rulsif_from_features(kx * ky, kx * ky_cross, lam, 0.5)
    assert torch.all(theta >= 0), "lambda must be large enough that densratio's clipping does nothing"
    assert value.item() == pytest.approx(2 * result.alpha_PE, rel=1e-9, abs=1e-12)
    # densratio's centres are a permutation of the numerator samples: compare the sorted coefficients.
    np.testing.assert_allclose(np.sort(result.theta), np.sort(theta[0].numpy()), rtol=1e-9)


def test_median_heuristic_bandwidth() -> None:
    x, y = _pairs(6, 3, 2, 3)  # 15 distinct pairs: odd, so the median is unambiguous

    def median_distance(a: np.ndarray) -> float:
        return float(np.median([np.linalg.norm(a[i] - a[j]) for i in range(6) for j in range(i + 1, 6)]))

    explicit = rsmi(
        x,
        y,
        sigma_x=RSMI_SIGMA_SCALE * median_distance(x.numpy()),
        sigma_y=RSMI_SIGMA_SCALE * median_distance(y.numpy()),
    )
    torch.testing.assert_close(rsmi(x, y), explicit)
    # Degenerate sample (all rows equal): finite value, no division by zero.
    assert torch.isfinite(rsmi(torch.ones(5, 3), torch.randn(5, 2)))


# ----------------------------------------------------------------------------------------------------------
# Behaviour on the TS-loss setting: n = 256 unit vectors in d = 256
# ----------------------------------------------------------------------------------------------------------


def _unit_pairs(
    a: float, seed: int, n: int = 256, d: int = 256, rotate: bool = True
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g), dim=1)
    signal = x @ torch.linalg.qr(torch.randn(d, d, generator=g))[0] if rotate else x
    noise = F.normalize(torch.randn(n, d, generator=g), dim=1)
    return x, F.normalize(a * signal + (1 - a) * noise, dim=1)


def test_ordering_independent_weak_strong_and_near_zero_when_independent() -> None:
    means = {}
    for a in (0.0, 0.3, 0.7):
        means[a] = float(np.mean([rsmi(*_unit_pairs(a, seed)).item() for seed in range(3)]))
    assert means[0.0] < means[0.3] < means[0.7]
    # Measured at the defaults (docs/losses.md): independent unit vectors (n = d = 256) give a small positive
    # finite-sample bias of 0.0078 with a spread of 1.5e-5 over draws; a = 0.3 gives 0.0083, a = 0.7 0.0104.
    assert 0.0 < means[0.0] < 0.02
    assert means[0.3] - means[0.0] > 2e-4
    assert means[0.7] - means[0.3] > 1e-3


def test_invariant_to_joint_permutation_of_pairs() -> None:
    x, y = _unit_pairs(0.5, 0, n=64, d=32)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rsmi(x[perm], y[perm]), rsmi(x, y), rtol=1e-4, atol=1e-6)


def test_batch_equals_per_element_calls() -> None:
    pairs = [_unit_pairs(a, seed, n=64, d=32) for a, seed in ((0.0, 0), (0.4, 1), (0.8, 2))]
    x = torch.stack([p[0] for p in pairs])  # (3, n, d)
    y = torch.stack([p[1] for p in pairs])  # (3, n, d)
    batched = rsmi(x, y)
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, torch.stack([rsmi(p[0], p[1]) for p in pairs]), rtol=1e-4, atol=1e-6)
    assert rsmi(x[0], y[0]).dim() == 0


def test_centre_subset_approximates_full_estimator() -> None:
    x, y = _unit_pairs(0.5, 4)
    full = rsmi(x, y).item()
    subset = rsmi(x, y, num_centers=128, generator=torch.Generator().manual_seed(0)).item()
    again = rsmi(x, y, num_centers=128, generator=torch.Generator().manual_seed(0)).item()
    independent = rsmi(*_unit_pairs(0.0, 4)).item()
    assert subset == again
    assert abs(subset - full) < 0.25 * (full - independent)


def test_different_dimensions_and_float64() -> None:
    x, y = _pairs(40, 5, 2, 6)
    value = rsmi(x, y)
    assert value.dtype == torch.float64 and torch.isfinite(value)


# ----------------------------------------------------------------------------------------------------------
# Gradients, precision, errors
# ----------------------------------------------------------------------------------------------------------


def test_gradcheck_fixed_bandwidths() -> None:
    x, y = _pairs(5, 2, 3, 7)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: rsmi(a, b, sigma_x=0.8, sigma_y=1.2, lam=0.05), (x, y))
    assert torch.autograd.gradcheck(
        lambda a, b: rsmi(
            a, b, 0.8, 1.2, lam=0.05, num_centers=3, generator=torch.Generator().manual_seed(0)
        ),
        (x, y),
    )


def test_median_bandwidth_is_a_constant_for_autograd() -> None:
    x, y = _pairs(8, 3, 3, 8)
    sigma_x = float(torch.pdist(x).median())  # 28 pairs: torch's lower median, as in the module
    sigma_y = float(torch.pdist(y).median())
    y_auto = y.clone().requires_grad_(True)
    y_fixed = y.clone().requires_grad_(True)
    rsmi(x, y_auto).backward()
    rsmi(x, y_fixed, RSMI_SIGMA_SCALE * sigma_x, RSMI_SIGMA_SCALE * sigma_y).backward()
    torch.testing.assert_close(y_auto.grad, y_fixed.grad)


def test_float32_close_to_float64_and_autocast() -> None:
    x, y = _unit_pairs(0.5, 9)
    reference = rsmi(x.double(), y.double())
    assert abs(rsmi(x, y).item() - reference.item()) < 1e-4
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = rsmi(x, y)
    assert got.dtype == torch.float32
    assert abs(got.item() - reference.item()) < 1e-4


def test_batched_solve_does_not_hang_after_set_num_threads() -> None:
    """torch 2.13 CPU: batched LU solve with b >= ~200 deadlocks after torch.set_num_threads(2)."""
    code = (
        "import torch; torch.set_num_threads(2);"
        "from semst.losses.structure_texture import rsmi;"
        "x = torch.nn.functional.normalize(torch.randn(2, 256, 16), dim=-1);"
        "print(float(rsmi(x, x).sum()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_solver_falls_back_when_not_positive_definite() -> None:
    matrix = torch.tensor(
        [[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, -4.0]]], dtype=torch.float64
    )  # (2, 2, 2)
    rhs = torch.tensor([[2.0, 3.0], [1.0, 2.0]], dtype=torch.float64)  # (2, 2)
    expected = torch.tensor([[1.0, 3.0], [1.0, -0.5]], dtype=torch.float64)
    torch.testing.assert_close(_solve_positive_definite(matrix, rhs), expected)
    torch.testing.assert_close(_solve_positive_definite(matrix[:1], rhs[:1]), expected[:1])


def test_bad_shapes_and_arguments() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"same number of paired samples.*\(1, 10, 3\).*\(1, 9, 3\)"):
        rsmi(x, torch.randn(9, 3))
    with pytest.raises(ValueError, match="n >= 2"):
        rsmi(x[:1], x[:1])
    with pytest.raises(ValueError, match=r"\(n, d\) or both \(B, n, d\)"):
        rsmi(x, x[None])
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        rsmi(x[None, None], x[None, None])
    with pytest.raises(ValueError, match="batch size"):
        rsmi(torch.randn(2, 10, 3), torch.randn(3, 10, 3))
    with pytest.raises(ValueError, match="lam"):
        rsmi(x, x, lam=0.0)
    with pytest.raises(ValueError, match="alpha"):
        rsmi(x, x, alpha=1.5)
    with pytest.raises(ValueError, match="sigma_y"):
        rsmi(x, x, sigma_y=-1.0)
    with pytest.raises(ValueError, match="num_centers"):
        rsmi(x, x, num_centers=0)
    with pytest.raises(ValueError, match="same shape"):
        rsmi_grid(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match="centers"):
        rsmi_grid(x, x, centers=1)


# ----------------------------------------------------------------------------------------------------------
# rsmi_grid and ts_loss
# ----------------------------------------------------------------------------------------------------------


def _brute_force_grid(
    x: np.ndarray, y: np.ndarray, m: int, low: float, high: float, sigma: float, lam: float
) -> float:
    u = np.linspace(low, high, m)
    xs, ys = x.reshape(-1), y.reshape(-1)
    k = len(xs)

    def phi(a: float, b: float) -> np.ndarray:
        return np.array(
            [
                math.exp(-((a - u[basis % m]) ** 2 + (b - u[basis // m]) ** 2) / (2 * sigma**2))
                for basis in range(m * m)
            ]
        )

    joint = np.array([phi(xs[i], ys[i]) for i in range(k)])  # (k, m^2)
    cross = np.array([phi(xs[i], ys[j]) for i in range(k) for j in range(k)])  # (k^2, m^2)
    h = joint.mean(axis=0)
    big_h = 0.5 * joint.T @ joint / k + 0.5 * cross.T @ cross / k**2
    theta = np.linalg.solve(big_h + lam * np.eye(m * m), h)
    return float(2 * theta @ h - theta @ big_h @ theta - 1)


def test_grid_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(10)
    x = torch.rand(3, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = 0.6 * x + 0.4 * (torch.rand(3, 2, generator=g, dtype=torch.float64) * 2 - 1)
    expected = _brute_force_grid(x.numpy(), y.numpy(), 3, -1.0, 1.0, 0.5, 0.1)
    got = rsmi_grid(x, y, centers=3, sigma=0.5, lam=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    batched = rsmi_grid(torch.stack([x, y]), torch.stack([y, x]), centers=3, sigma=0.5, lam=0.1)
    assert batched.shape == (2,) and batched[0].item() == pytest.approx(expected, rel=1e-9)


def test_grid_moments_equal_the_materialised_basis() -> None:
    # rsmi_grid builds the m^2 x m^2 moments from the m-row factors; SCC's layout materialises the m^2 basis
    # rows phi_l = K_{l % m} L_{l // m} and takes their products. Same values at the default 9 x 9 grid.
    g = torch.Generator().manual_seed(12)
    x = F.normalize(torch.randn(2, 64, 16, generator=g, dtype=torch.float64), dim=-1)
    y = F.normalize(x + 0.5 * torch.randn(2, 64, 16, generator=g, dtype=torch.float64), dim=-1)
    m, sigma = 9, 0.25
    grid = torch.linspace(-1.0, 1.0, m, dtype=torch.float64)
    x_grid = torch.exp(-(x.reshape(2, 1, -1) - grid[None, :, None]).square() / (2 * sigma**2))  # (B, m, N)
    y_grid = torch.exp(-(y.reshape(2, 1, -1) - grid[None, :, None]).square() / (2 * sigma**2))
    basis = torch.arange(m * m)
    for alpha in (0.0, 0.5, 0.9):
        expected = _joint_over_product(x_grid[:, basis % m], y_grid[:, basis // m], 1e-2, alpha)
        got = rsmi_grid(x, y, sigma=sigma, lam=1e-2, alpha=alpha)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_grid_ordering() -> None:
    means = {}
    for a in (0.0, 0.3, 0.7):
        values = [rsmi_grid(*_unit_pairs(a, seed, n=128, d=32, rotate=False)).item() for seed in range(3)]
        means[a] = float(np.mean(values))
    assert means[0.0] < means[0.3] < means[0.7]


def test_grid_gradcheck() -> None:
    g = torch.Generator().manual_seed(11)
    x = (torch.rand(3, 2, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    y = (torch.rand(3, 2, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: rsmi_grid(a, b, centers=3, sigma=0.5, lam=0.1), (x, y))


def test_ts_loss_is_minus_mean_over_taps_and_images() -> None:
    taps_in = [torch.stack(_unit_pairs(0.5, s, n=32, d=8)) for s in range(2)]  # each (2, n, d)
    taps_out = [torch.stack(_unit_pairs(0.2, s + 5, n=32, d=8)[::-1]) for s in range(2)]
    expected = -torch.stack([rsmi(a, b).mean() for a, b in zip(taps_in, taps_out)]).mean()
    torch.testing.assert_close(ts_loss(taps_in, taps_out), expected)
    expected_grid = -torch.stack([rsmi_grid(a, b, lam=0.1).mean() for a, b in zip(taps_in, taps_out)]).mean()
    torch.testing.assert_close(ts_loss(taps_in, taps_out, estimator="grid", lam=0.1), expected_grid)
    out = [t.clone().requires_grad_(True) for t in taps_out]
    ts_loss(taps_in, out, lam=0.1).backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in out)


def test_ts_loss_errors() -> None:
    tap = torch.randn(1, 8, 4)
    with pytest.raises(ValueError, match="same length"):
        ts_loss([tap, tap], [tap])
    with pytest.raises(ValueError, match="same length"):
        ts_loss([], [])
    with pytest.raises(ValueError, match="kernel.*grid"):
        ts_loss([tap], [tap], estimator="knn")
    with pytest.raises(ValueError, match=r"\(B, n, d\)"):
        ts_loss([tap[0]], [tap[0]])


def test_ts_loss_with_taps_of_different_widths() -> None:
    taps_in = [torch.randn(2, 16, 4), torch.randn(2, 16, 6)]
    taps_out = [torch.randn(2, 16, 5), torch.randn(2, 16, 3)]
    expected = -torch.stack([rsmi(a, b).mean() for a, b in zip(taps_in, taps_out)]).mean()
    torch.testing.assert_close(ts_loss(taps_in, taps_out), expected)


def test_ts_loss_tap_weights_are_a_normalised_weighted_mean() -> None:
    taps_in = [torch.stack(_unit_pairs(0.5, s, n=32, d=8)) for s in range(3)]  # each (2, n, d)
    taps_out = [torch.stack(_unit_pairs(0.2 * s, s + 5, n=32, d=8)) for s in range(3)]
    per_tap = [rsmi(a, b).mean() for a, b in zip(taps_in, taps_out)]
    expected = -(1.0 * per_tap[0] + 0.0 * per_tap[1] + 3.0 * per_tap[2]) / 4.0
    torch.testing.assert_close(ts_loss(taps_in, taps_out, tap_weights=[1, 0, 3]), expected)
    # equal weights of any size are Eq. (1)'s plain mean; the per-tap loop (centre subsets) agrees
    torch.testing.assert_close(ts_loss(taps_in, taps_out, tap_weights=[2.5] * 3), ts_loss(taps_in, taps_out))
    looped = ts_loss(taps_in, taps_out, tap_weights=[1, 0, 3], num_centers=32)
    torch.testing.assert_close(looped, expected)
    # a tap of weight 0 gets no gradient
    out = [t.clone().requires_grad_(True) for t in taps_out]
    ts_loss(taps_in, out, tap_weights=[1, 0, 3]).backward()
    assert out[1].grad is not None and not out[1].grad.any() and out[0].grad.abs().sum() > 0


def test_ts_loss_rejects_bad_tap_weights() -> None:
    tap = torch.randn(1, 8, 4)
    with pytest.raises(ValueError, match="2 weights for 1 taps"):
        ts_loss([tap], [tap], tap_weights=[1, 1])
    for bad in ([0.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
            ts_loss([tap, tap], [tap, tap], tap_weights=bad)
