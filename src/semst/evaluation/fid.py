"""Fréchet Inception Distance (FID, Heusel et al. 2017): the Fréchet distance of Gaussians fitted to features.

With the means and covariances of two feature sets,

    FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

The trace of the matrix square root is computed without scipy, from symmetric eigen-decompositions in
float64: ``S_a^(1/2)`` from the eigenvalues of ``S_a``, then
``tr((S_a S_b)^(1/2)) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2)))``, with eigenvalues below the rank tolerance
of ``numpy.linalg.matrix_rank`` set to 0 (rounding noise, never a negative variance), because
``S_a S_b`` is similar to the symmetric positive semi-definite ``S_a^(1/2) S_b S_a^(1/2)``. This stays
real and finite for the singular covariances that fewer samples than dimensions give (60 images and 2048
Inception features), where ``scipy.linalg.sqrtm`` (pytorch-fid, clean-fid) returns complex values and needs
an ``eps`` added to the diagonals; torch-fidelity and torchmetrics sum the square roots of the (complex)
eigenvalues of ``S_a S_b`` instead. On well-conditioned covariances all of these agree to float precision
(``tests/evaluation/test_fid.py``).

FID is biased for small sets (it shrinks as the sets grow); prefer KID (:mod:`semst.evaluation.kid`) for
tens or hundreds of images, and compare FIDs only between equal set sizes.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fid", "frechet_distance", "gaussian_statistics", "trace_sqrt_product"]


def gaussian_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), float64; the covariance divides by N - 1.

    Raises:
        ValueError: Not a (N, D) matrix with N >= 2, or non-finite values.
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"features must be a (N, D) matrix with N >= 2, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("features contain NaN or infinite values")
    return array.mean(axis=0), np.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1])


def _clip_eigenvalues(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: those below numpy's rank tolerance
    (``max * D * eps``, as ``numpy.linalg.matrix_rank``) become 0, since their square roots (1e-7 for a
    1e-14 rounding error) would add up to a visible error over many null directions."""
    tolerance = max(float(values.max(initial=0.0)), 0.0) * len(values) * np.finfo(np.float64).eps
    return np.where(values > tolerance, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(_clip_eigenvalues(values))) @ vectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``tr((S_a S_b)^(1/2))`` of two covariance matrices (D, D), via symmetric eigen-decompositions."""
    root_a = _psd_sqrt(np.asarray(cov_a, dtype=np.float64))
    middle = root_a @ np.asarray(cov_b, dtype=np.float64) @ root_a  # (D, D), symmetric PSD
    return float(np.sqrt(_clip_eigenvalues(np.linalg.eigvalsh((middle + middle.T) / 2))).sum())


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """The Fréchet distance of the Gaussians N(mean_a, cov_a) and N(mean_b, cov_b).

    Raises:
        ValueError: Shapes that do not fit (D,), (D, D), or non-finite values.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    dim = mean_a.shape[0] if mean_a.ndim == 1 else -1
    if (
        mean_a.shape != (dim,)
        or mean_b.shape != (dim,)
        or cov_a.shape != (dim, dim)
        or cov_b.shape != (dim, dim)
    ):
        raise ValueError(
            f"Gaussian statistics do not fit: means {mean_a.shape} and {mean_b.shape}, covariances "
            f"{cov_a.shape} and {cov_b.shape}; expected (D,) and (D, D)"
        )
    if not all(np.isfinite(x).all() for x in (mean_a, mean_b, cov_a, cov_b)):
        raise ValueError("Gaussian statistics contain NaN or infinite values")
    difference = mean_a - mean_b
    value = (
        difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b)
    )
    # Rounding can leave -1e-13 for identical statistics; a distance is never negative.
    return max(float(value), 0.0)


def fid(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """FID of two feature sets (m, D) and (n, D): the Fréchet distance of their Gaussian fits."""
    mean_a, cov_a = gaussian_statistics(features_a)
    mean_b, cov_b = gaussian_statistics(features_b)
    if mean_a.shape != mean_b.shape:
        raise ValueError(f"feature dimensions differ: {mean_a.shape[0]} and {mean_b.shape[0]}")
    return frechet_distance(mean_a, cov_a, mean_b, cov_b)
