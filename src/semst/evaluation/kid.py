"""Kernel Inception Distance (KID, Binkowski et al. 2018): the unbiased squared MMD of two feature sets.

KID compares two samples of features ``X`` (m, D) and ``Y`` (n, D) with the cubic polynomial kernel

    k(x, y) = (x . y / D + 1) ** 3

and the unbiased estimator of the squared maximum mean discrepancy

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n).

Being unbiased, it is close to 0 (and may be slightly negative) for two samples of one distribution,
whatever the sample size; this is why it suits the tens to hundreds of images of a translation test set
better than FID, whose bias depends on the sample size. As in torch-fidelity and torchmetrics, the
estimate is averaged over ``subsets`` random subsets of ``subset_size`` features drawn without
replacement from each side (defaults 100 and 1000), and the standard deviation over subsets is reported
with it. The subsets are drawn exactly as torch-fidelity draws them (``numpy.random.RandomState(seed)``,
``choice(n, size, replace=False)`` for the first set, then for the second, per subset), so the same seed
gives the same number as torch-fidelity's ``kid_features_to_metric``. Unlike torch-fidelity, which refuses
sets smaller than the subset size, the subset size is clamped to the smaller set (and logged).

Everything is computed in float64 numpy; the features may come from any network (Inception's pool3
features give the classic KID; :mod:`semst.evaluation.realism` also uses networks trained here).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["KID", "kid", "mmd2_unbiased", "polynomial_kernel"]

log = logging.getLogger(__name__)

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000
DEFAULT_SEED = 2020  # torch-fidelity's default rng_seed
# Below this many kernel entries (about 160 MB of float64) the three kernel matrices of the whole sets
# are computed once and every subset indexes them, instead of recomputing its own.
_PRECOMPUTE_ENTRIES = 20_000_000


@dataclass(frozen=True)
class KID:
    """A KID estimate: ``mean`` and ``std`` of the unbiased MMD^2 over ``subsets`` subsets of
    ``subset_size`` features from each set."""

    mean: float
    std: float
    subsets: int
    subset_size: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a JSON-serialisable dict."""
        return asdict(self)


def _as_features(features: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    """A (N, D) float64 numpy array of ``features``; raises ValueError naming ``what`` otherwise."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{what} must be a (N, D) feature matrix with N >= 2, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return array


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """The polynomial kernel matrix ``(gamma x . y + coef0) ** degree`` of (m, D) and (n, D) features.

    Args:
        x: Features (m, D).
        y: Features (n, D).
        degree: Polynomial degree (KID: 3).
        gamma: Scale of the dot product; ``None`` means ``1 / D`` (KID).
        coef0: Constant added before the power (KID: 1).

    Returns:
        The kernel matrix (m, n), float64.
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree  # (m, n)


def _mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 of kernel matrices (m, m), (n, n) and (m, n): diagonals of k_xx and k_yy dropped."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def mmd2_unbiased(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """The unbiased MMD^2 of two feature sets (m, D) and (n, D) with KID's cubic polynomial kernel.

    This is one KID term on whole sets (no subsets); :func:`kid` averages it over random subsets.

    Raises:
        ValueError: Not (N, D) matrices with N >= 2, different D, or non-finite values.
    """
    x, y = _as_features(x, "the first features"), _as_features(y, "the second features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    return _mmd2_from_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))


def kid(
    features_a: np.ndarray | torch.Tensor,
    features_b: np.ndarray | torch.Tensor,
    *,
    subsets: int = DEFAULT_SUBSETS,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    seed: int = DEFAULT_SEED,
) -> KID:
    """KID of two feature sets: the unbiased MMD^2 averaged over random subsets.

    Args:
        features_a: Features (m, D) of one image set (e.g. translated images).
        features_b: Features (n, D) of the other (e.g. real target images).
        subsets: Number of random subsets (torch-fidelity and torchmetrics: 100).
        subset_size: Features per subset and side (torch-fidelity and torchmetrics: 1000); clamped to
            ``min(m, n)``. When it equals both set sizes every subset is the whole set, so the estimate
            is computed once (MMD^2 does not depend on the order) and its std is 0.
        seed: Seed of the subset sampling (``numpy.random.RandomState``, as torch-fidelity).

    Returns:
        The mean and std over subsets (:class:`KID`).

    Raises:
        ValueError: Bad shapes, non-finite values, or ``subsets``/``subset_size`` < 1.
    """
    a, b = _as_features(features_a, "the first features"), _as_features(features_b, "the second features")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets=}, {subset_size=}")
    m, n = a.shape[0], b.shape[0]
    size = min(subset_size, m, n)
    if size < subset_size:
        log.debug(f"KID subset size {subset_size} clamped to {size} (sets of {m} and {n} features)")
    if size == m == n:
        value = _mmd2_from_kernels(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b))
        return KID(mean=value, std=0.0, subsets=1, subset_size=size)

    precomputed = m * m + n * n + m * n <= _PRECOMPUTE_ENTRIES
    if precomputed:
        k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets, dtype=np.float64)
    for i in range(subsets):
        ia = rng.choice(m, size, replace=False)
        ib = rng.choice(n, size, replace=False)
        if precomputed:
            values[i] = _mmd2_from_kernels(k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)], k_ab[np.ix_(ia, ib)])
        else:
            x, y = a[ia], b[ib]  # (size, D) each
            values[i] = _mmd2_from_kernels(
                polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
            )
    return KID(mean=float(values.mean()), std=float(values.std()), subsets=subsets, subset_size=size)
