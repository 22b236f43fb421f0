"""FID: exact values against scipy's sqrtm, torch-fidelity and torchmetrics; invariances; singular cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semst.evaluation.fid import fid, frechet_distance, gaussian_statistics, trace_sqrt_product
from tests.evaluation.references import reference_module


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8))
    a = rng.normal(size=(200, 8)) @ mixing
    b = rng.normal(loc=0.5, size=(150, 8)) @ (mixing + 0.3 * rng.normal(size=(8, 8)))
    return a, b


def test_fid_of_one_dimensional_gaussians_is_the_closed_form():
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == (
        pytest.approx(4.0 + 1.0)
    )


def test_fid_matches_scipy_sqrtm(features):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a, b = features
    mean_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    mean_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
    root = scipy_linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    assert fid(a, b) == pytest.approx(expected, rel=1e-10)


def test_gaussian_statistics_are_mean_and_unbiased_covariance(features):
    a, _ = features
    mean, cov = gaussian_statistics(torch.from_numpy(a))
    np.testing.assert_allclose(mean, a.mean(0))
    np.testing.assert_allclose(cov, (a - a.mean(0)).T @ (a - a.mean(0)) / (len(a) - 1))


def test_fid_invariances(features):
    a, b = features
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-10)
    assert fid(a, b + 1.0) > fid(a, b)


def test_fid_stays_finite_and_real_for_singular_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64))  # fewer samples than dimensions
    value = fid(a, b)
    assert np.isfinite(value) and value > 0
    assert fid(a, a) == pytest.approx(0.0, abs=1e-8)
    # tr((S S)^(1/2)) = tr(S) for a PSD S, singular or not
    cov = np.cov(a, rowvar=False)
    assert trace_sqrt_product(cov, cov) == pytest.approx(np.trace(cov), rel=1e-9)


def test_fid_rejects_bad_input():
    with pytest.raises(ValueError, match="differ"):
        fid(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="N >= 2"):
        fid(np.zeros((1, 3)), np.zeros((4, 3)))


def test_fid_equals_torch_fidelity(features):
    reference = reference_module("fidelity_fid")
    if reference is None:
        pytest.skip("torch-fidelity is not installed (make test installs it with --no-deps)")
    a, b = features
    stats_a = reference.fid_features_to_statistics(torch.from_numpy(a))
    stats_b = reference.fid_features_to_statistics(torch.from_numpy(b))
    theirs = reference.fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"]
    assert fid(a, b) == pytest.approx(theirs, rel=1e-10)


def test_fid_equals_torchmetrics(features):
    reference = reference_module("torchmetrics_fid")
    if reference is None:
        pytest.skip("torchmetrics is not installed (make test installs it with --no-deps)")
    a, b = features
    mean_a, cov_a = gaussian_statistics(a)
    mean_b, cov_b = gaussian_statistics(b)
    theirs = reference._compute_fid(*(torch.from_numpy(x) for x in (mean_a, cov_a, mean_b, cov_b)))
    assert fid(a, b) == pytest.approx(float(theirs), rel=1e-10)
