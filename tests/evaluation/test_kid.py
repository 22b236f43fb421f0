"""KID: exact values against a brute-force formula, torch-fidelity and torchmetrics; invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semst.evaluation.kid import KID, kid, mmd2_unbiased, polynomial_kernel
from tests.evaluation.references import reference_module


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3, by explicit loops over pairs."""
    dim = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(np.dot(a, b)) / dim + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6))
    b = rng.normal(loc=0.3, scale=1.2, size=(30, 6))
    return a, b


def test_polynomial_kernel_is_the_cubic_kid_kernel():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    y = np.array([[3.0, 1.0]])
    # (x.y / 2 + 1)^3: (5/2 + 1)^3 = 42.875, (-1/2 + 1)^3 = 0.125
    np.testing.assert_allclose(polynomial_kernel(x, y), [[42.875], [0.125]])


def test_mmd2_matches_brute_force_with_unequal_sizes(features):
    a, b = features
    assert mmd2_unbiased(a, b) == pytest.approx(brute_force_mmd2(a, b), rel=1e-12)


def test_kid_on_whole_sets_is_one_mmd2_with_zero_std(features):
    a, b = features
    result = kid(a[:30], b, subset_size=1000)
    assert result == KID(
        mean=pytest.approx(brute_force_mmd2(a[:30], b), rel=1e-12), std=0.0, subsets=1, subset_size=30
    )


def test_kid_subsets_match_a_hand_written_sampler(features):
    a, b = features
    rng = np.random.RandomState(7)
    expected = []
    for _ in range(5):
        ia, ib = rng.choice(40, 20, replace=False), rng.choice(30, 20, replace=False)
        expected.append(brute_force_mmd2(a[ia], b[ib]))
    result = kid(a, b, subsets=5, subset_size=20, seed=7)
    assert result.mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert result.std == pytest.approx(np.std(expected), rel=1e-10)
    assert (result.subsets, result.subset_size) == (5, 20)


def test_kid_is_symmetric_deterministic_and_accepts_tensors(features):
    a, b = features
    assert kid(a[:30], b).mean == pytest.approx(kid(b, a[:30]).mean, rel=1e-12)
    assert kid(a, b, subsets=4, subset_size=10) == kid(a, b, subsets=4, subset_size=10)
    assert kid(torch.from_numpy(a).float(), b).mean == pytest.approx(kid(a.astype(np.float32), b).mean)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = kid(a, b, subsets=20, subset_size=200)
    shifted = kid(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 0.05 and shifted.mean > 10 * abs(same.mean)


def test_kid_rejects_bad_input():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        kid(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="N >= 2"):
        kid(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        kid(np.full((3, 3), np.nan), np.zeros((4, 3)))


def test_kid_equals_torch_fidelity():
    reference = reference_module("fidelity_kid")
    if reference is None:
        pytest.skip("torch-fidelity is not installed (make test installs it with --no-deps)")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 32)), rng.normal(0.2, 1.0, size=(50, 32))
    theirs = reference.kid_features_to_metric(
        torch.from_numpy(a),
        torch.from_numpy(b),
        kid_subsets=10,
        kid_subset_size=25,
        rng_seed=11,
        verbose=False,
    )
    ours = kid(a, b, subsets=10, subset_size=25, seed=11)
    assert ours.mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-10)
    assert ours.std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-8)


def test_kid_equals_torchmetrics_on_whole_sets():
    reference = reference_module("torchmetrics_kid")
    if reference is None:
        pytest.skip("torchmetrics is not installed (make test installs it with --no-deps)")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 32)), rng.normal(0.2, 1.0, size=(40, 32))
    # torchmetrics draws subsets with the global torch generator; with the subset size equal to the set
    # sizes every subset is a permutation of the whole set, on which MMD^2 does not depend.
    theirs = reference.poly_mmd(torch.from_numpy(a), torch.from_numpy(b))
    assert kid(a, b).mean == pytest.approx(float(theirs), rel=1e-10)
