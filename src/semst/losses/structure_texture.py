"""Relative squared-loss mutual information (rSMI) and the TS loss, SemST Eq. (1)-(3).

The TS (texture-structure) loss of Eq. (1) is ``-mean_i rSMI(Z_i, W_i)`` over the embedding taps i, where
``Z_i`` are the input image's embeddings and ``W_i`` the translated image's embeddings at the same locations.
rSMI is estimated with least-squares relative density-ratio fitting (RuLSIF, Yamada et al. 2013; the LSMI
family of Sugiyama et al.). Given n paired samples ``(x_i, y_i)`` (row i of x pairs with row i of y):

- Basis: b product Gaussians centred at (a subset of) the pairs,
  ``phi_l(x, y) = K_l(x) L_l(y)``, ``K[l, i] = exp(-|x_i - cx_l|^2 / (2 sigma_x^2))``,
  ``L[l, i] = exp(-|y_i - cy_l|^2 / (2 sigma_y^2))`` (b x n).
- Numerator = the joint ``P_xy`` (the n aligned pairs): ``h = (K * L) 1 / n``.
- Mixture ``alpha P_xy + (1 - alpha) P_x P_y``:
  ``H = alpha (K * L)(K * L)^T / n + (1 - alpha) (K K^T * L L^T) / n^2``; the second term is the exact mean of
  ``phi phi^T`` over all n^2 cross pairs ``(x_i, y_j)``, i.e. over the product of the marginals.
- ``theta = (H + lam I)^{-1} h`` (a Cholesky solve, never an explicit inverse) and
  ``rSMI = 2 theta^T h - theta^T H theta - 1`` (Eq. 3).

This is ``2 PE_alpha(P_xy || P_x P_y)``, twice the alpha-relative Pearson divergence with the joint in the
numerator, ``PE_alpha(p || q) = 1/2 E_{alpha p + (1 - alpha) q}[(p / (alpha p + (1 - alpha) q) - 1)^2]``. Its
population value lies in [0, (1 - alpha) / alpha] (= [0, 1] at alpha = 0.5) and is 0 iff x and y are
independent. At alpha = 0.5 the divergence is symmetric in its two arguments, so it also estimates the paper's
Eq. (2), ``D_rPE(P_Z x P_W || P_ZW)``.

Why the joint is the numerator: the ratio model ``sum_l theta_l phi_l`` can only be large near its centres,
which are joint samples. With the joint in the numerator the ratio it must fit is large exactly there, so the
fit is good. With the reversed arrangement (product of marginals in the numerator, as in SCC's code) and the
same centres, the numerator's mass sits mostly where no centre is (off the dependence "manifold" of the joint
samples); the fit misses it, the estimate is biased low and *decreases* as the dependence grows (measured in
docs/losses.md). SCC's grid basis covers the whole square, which is why its arrangement does not fail there.

Two estimators:

- :func:`rsmi`: vector samples (each embedding vector is one sample, e.g. 256 patch locations x 256 channels),
  centres at the pairs, bandwidths from the median heuristic.
- :func:`rsmi_grid`: SCC's scalar-pair variant (``batch_ERSMI`` of the CR-Gjx/SCC code): every component of x
  and y is one scalar pair and the basis is a fixed ``centers x centers`` grid of product Gaussians. SCC's
  published code writes the Gaussian as ``exp(+d^2 / (2 sigma^2))`` (the minus sign is missing, so the
  "kernel" grows with distance) and puts the product of marginals in the numerator; this module uses a real
  Gaussian ``exp(-d^2 / (2 sigma^2))`` and the joint numerator.

Both are differentiable in x and y (autograd through the Cholesky solve); bandwidths are constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Bandwidth = RSMI_SIGMA_SCALE * (median pairwise distance of the sample), per sample and batch element.
# Measured on n = 256 L2-normalised 256-d patch embeddings (benchmarks/rsmi_defaults.py, docs/losses.md "rSMI:
# choosing sigma and lambda"): scales <= 0.25 overfit (all dependence levels score alike, up to saturation
# near 1 on isotropic vectors), 1.5 flattens the signal; separation is flat over 0.5-1.0, and 0.75 is the
# setting with the largest signal whose bias on independent samples stays about 0.01.
RSMI_SIGMA_SCALE = 0.75
# Ridge lambda of theta = (H + lambda I)^{-1} h; same experiment: 1e-3 and 1e-2 separate equally well, 1e-2
# has a third less bias on independent samples and a better-conditioned solve. In training (experiment 55),
# 1e-1 and 1e-3 at the default's TS pull did no better over seeds.
RSMI_DEFAULT_LAMBDA = 1e-2
# rsmi_grid defaults: Gaussian width on the scalar values (the grid spacing; compared with 0.05-1.0 in the
# same experiment) and ridge lambda (taken over from rsmi, not searched).
RSMI_GRID_SIGMA = 0.25
RSMI_GRID_LAMBDA = 1e-2

RSMI_ESTIMATORS = ("kernel", "grid")

# A median distance below this is treated as degenerate (all samples equal).
_MIN_BANDWIDTH = 1e-8


def _as_pairs(x: Tensor, y: Tensor, same_shape: bool) -> tuple[Tensor, Tensor, bool]:
    """Checks paired samples; returns (B, n, dx), (B, n, dy) float tensors and whether the input was 2-D."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError("x and y must be torch.Tensor")
    if x.dim() not in (2, 3) or y.dim() != x.dim():
        raise ValueError(
            f"x and y must both be (n, d) or both (B, n, d); got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if same_shape and x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    squeeze = x.dim() == 2
    if squeeze:
        x, y = x.unsqueeze(0), y.unsqueeze(0)  # (1, n, d)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same batch size; got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            "x and y must have the same number of paired samples n; "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[1] < 2:
        raise ValueError(
            f"rSMI needs n >= 2 paired samples; got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0 or x.shape[2] == 0 or y.shape[2] == 0:
        raise ValueError(
            f"x and y must not have an empty dimension; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dtype), y.to(dtype), squeeze


def _check_estimator_arguments(lam: float, alpha: float) -> None:
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _squared_distances(samples: Tensor, centres: Tensor) -> Tensor:
    """``|samples_i - centres_l|^2`` as (B, b, n) from samples (B, n, d) and centres (B, b, d)."""
    cross = torch.bmm(centres, samples.transpose(1, 2))  # (B, b, n)
    centre_norms = centres.square().sum(dim=-1).unsqueeze(-1)  # (B, b, 1)
    sample_norms = samples.square().sum(dim=-1).unsqueeze(-2)  # (B, 1, n)
    # Rounding can make the expansion slightly negative for (near-)identical vectors.
    return (centre_norms + sample_norms - 2.0 * cross).clamp_min(0.0)  # (B, b, n)


def _median_bandwidth(samples: Tensor) -> Tensor:
    """Median Euclidean distance over the distinct pairs of each batch element, (B,), without gradient.

    Falls back to the mean distance when the median is 0 (more than half of the pairs coincide) and to 1 when
    all samples are equal.
    """
    with torch.no_grad():
        num_samples = samples.shape[1]
        distances = _squared_distances(samples, samples).sqrt()  # (B, n, n)
        rows, cols = torch.triu_indices(num_samples, num_samples, offset=1, device=samples.device)
        pair_distances = distances[:, rows, cols]  # (B, n (n - 1) / 2)
        median = pair_distances.median(dim=-1).values  # (B,)
        mean = pair_distances.mean(dim=-1)  # (B,)
        bandwidth = torch.where(median > _MIN_BANDWIDTH, median, mean)
        return torch.where(bandwidth > _MIN_BANDWIDTH, bandwidth, torch.ones_like(bandwidth))  # (B,)


def _bandwidth(samples: Tensor, sigma: float | None, name: str, sigma_min: float = 0.0) -> Tensor:
    """Per-batch-element Gaussian width (B,): the given constant, or RSMI_SIGMA_SCALE * median distance, at
    least ``sigma_min``."""
    if sigma is None:
        return (RSMI_SIGMA_SCALE * _median_bandwidth(samples)).clamp_min(sigma_min)
    if not sigma > 0:
        raise ValueError(f"{name} must be > 0 or None (median heuristic), got {sigma}")
    return torch.full((samples.shape[0],), float(sigma), dtype=samples.dtype, device=samples.device)


def _gaussian_features(samples: Tensor, centres: Tensor, sigma: Tensor) -> Tensor:
    """``exp(-|samples_i - centres_l|^2 / (2 sigma^2))`` as (B, b, n); sigma (B,) carries no gradient."""
    scale = 2.0 * sigma.detach().square()  # (B,)
    return torch.exp(-_squared_distances(samples, centres) / scale[:, None, None])  # (B, b, n)


def _solve_positive_definite(matrix: Tensor, rhs: Tensor) -> Tensor:
    """Solves ``matrix @ theta = rhs`` for symmetric positive definite matrices (B, b, b); rhs, theta (B, b).

    ``H + lam I`` is positive definite, so a Cholesky factorisation is the natural solver (differentiable,
    never an explicit inverse). It also avoids a hang seen with torch 2.13 CPU (oneMKL): a *batched*
    ``torch.linalg.solve`` with b >= ~200 deadlocks ("Parameter 6 was incorrect on entry to SLASWP") once
    ``torch.set_num_threads(k >= 2)`` has been called. If the factorisation fails (not numerically positive
    definite, e.g. a tiny lam in float32), fall back to LU one matrix at a time.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)  # (B, b, b), (B,)
    if bool((info == 0).all()):
        return torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)  # (B, b)
    return torch.stack([torch.linalg.solve(single, target) for single, target in zip(matrix, rhs)])  # (B, b)


def _rulsif_from_moments(
    h: Tensor, second_numerator: Tensor, second_denominator: Tensor, lam: float, alpha: float
) -> tuple[Tensor, Tensor]:
    """Solves the RuLSIF least-squares problem from the basis moments.

    Args:
        h: Mean of the basis vector over the numerator distribution, (B, b).
        second_numerator: Mean of ``phi phi^T`` over the numerator distribution, (B, b, b).
        second_denominator: Mean of ``phi phi^T`` over the denominator distribution, (B, b, b).
        lam: Ridge regulariser (> 0).
        alpha: Mixture weight of the numerator in the relative density ``alpha p + (1 - alpha) q``.

    Returns:
        ``(2 PE_alpha, theta)``: the value ``2 theta^T h - theta^T H theta - 1`` as (B,) and theta as (B, b).
    """
    num_basis = h.shape[-1]
    mixture = alpha * second_numerator + (1.0 - alpha) * second_denominator  # (B, b, b)
    ridge = lam * torch.eye(num_basis, dtype=h.dtype, device=h.device)  # (b, b)
    theta = _solve_positive_definite(mixture + ridge, h)  # (B, b)
    fitted = torch.bmm(mixture, theta.unsqueeze(-1)).squeeze(-1)  # (B, b); H theta
    value = 2.0 * (theta * h).sum(dim=-1) - (theta * fitted).sum(dim=-1) - 1.0  # (B,)
    return value, theta


def _joint_over_product(x_features: Tensor, y_features: Tensor, lam: float, alpha: float) -> Tensor:
    """``2 PE_alpha(P_xy || P_x P_y)`` from the factor features K (B, b, n) and L (B, b, n); returns (B,)."""
    num_samples = x_features.shape[-1]
    joint_features = x_features * y_features  # (B, b, n); phi_l(x_i, y_i)
    h = joint_features.mean(dim=-1)  # (B, b)
    second_joint = torch.bmm(joint_features, joint_features.transpose(1, 2)) / num_samples  # (B, b, b)
    # Mean of phi phi^T over all n^2 cross pairs (x_i, y_j): it factorises into (K K^T) * (L L^T) / n^2.
    x_gram = torch.bmm(x_features, x_features.transpose(1, 2))  # (B, b, b)
    y_gram = torch.bmm(y_features, y_features.transpose(1, 2))  # (B, b, b)
    second_product = x_gram * y_gram / num_samples**2  # (B, b, b)
    value, _ = _rulsif_from_moments(h, second_joint, second_product, lam, alpha)
    return value  # (B,)


def rsmi(
    x: Tensor,
    y: Tensor,
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    lam: float = RSMI_DEFAULT_LAMBDA,
    alpha: float = 0.5,
    num_centers: int | None = None,
    generator: torch.Generator | None = None,
    sigma_min: float = 0.0,
) -> Tensor:
    """Kernel rSMI estimate ``2 PE_alpha(P_xy || P_x P_y)`` from paired vector samples (SemST Eq. 2-3).

    Args:
        x: Samples of the first variable, (n, dx) or (B, n, dx); row i pairs with row i of ``y``.
        y: Samples of the second variable, (n, dy) or (B, n, dy); dy may differ from dx.
        sigma_x: Gaussian width for x; None uses ``RSMI_SIGMA_SCALE`` times the median pairwise distance of
            x, per batch element. Treated as a constant (no gradient).
        sigma_y: Same for y.
        lam: Ridge regulariser of the least-squares fit (> 0).
        alpha: Relative-density mixture weight in [0, 1]; 0.5 makes the divergence symmetric.
        num_centers: Number b of basis centres; None or >= n uses all n pairs. Otherwise b pairs are drawn
            without replacement (the same subset for every batch element), which costs O(b n d + b^3)
            instead of O(n^2 d + n^3).
        generator: Random generator for the centre subset (only used when ``num_centers < n``).
        sigma_min: Floor of the median-heuristic bandwidths (not of given ones). In flat image regions (sky)
            the sampled patches' embeddings nearly coincide, the median distance is tiny, and the Gaussian's
            1 / sigma^2 scales the gradient up; a floor bounds it.

    Returns:
        Scalar tensor for 2-D input, (B,) for 3-D input (float32, or float64 for float64 inputs).

    Raises:
        ValueError: If the shapes are not paired (n, d)/(B, n, d) samples with n >= 2, or an argument is out
            of range.
    """
    _check_estimator_arguments(lam, alpha)
    x, y, squeeze = _as_pairs(x, y, same_shape=False)
    num_samples = x.shape[1]
    if num_centers is not None and num_centers < 1:
        raise ValueError(f"num_centers must be >= 1 or None, got {num_centers}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        if num_centers is None or num_centers >= num_samples:
            x_centres, y_centres = x, y  # (B, b = n, dx), (B, n, dy)
        else:
            device = generator.device if generator is not None else x.device
            index = torch.randperm(num_samples, generator=generator, device=device)[:num_centers].to(x.device)
            x_centres, y_centres = x[:, index], y[:, index]  # (B, b, dx), (B, b, dy)
        x_features = _gaussian_features(
            x, x_centres, _bandwidth(x, sigma_x, "sigma_x", sigma_min)
        )  # (B, b, n)
        y_features = _gaussian_features(
            y, y_centres, _bandwidth(y, sigma_y, "sigma_y", sigma_min)
        )  # (B, b, n)
        value = _joint_over_product(x_features, y_features, lam, alpha)  # (B,)
    return value[0] if squeeze else value


def rsmi_grid(
    x: Tensor,
    y: Tensor,
    centers: int = 9,
    low: float = -1.0,
    high: float = 1.0,
    sigma: float = RSMI_GRID_SIGMA,
    lam: float = RSMI_GRID_LAMBDA,
    alpha: float = 0.5,
) -> Tensor:
    """SCC's scalar-pair rSMI (sign of the Gaussian fixed, joint numerator) on a fixed grid basis.

    Every component is one scalar sample: x and y are flattened in the same order, so pair k is
    ``(x.flatten()[k], y.flatten()[k])`` within each batch element. The basis is the full grid of
    ``centers x centers`` product Gaussians ``exp(-((x - u_a)^2 + (y - u_c)^2) / (2 sigma^2))`` with
    ``u = linspace(low, high, centers)``.

    Args:
        x: (n, d) or (B, n, d) samples of the first variable.
        y: Same shape as ``x``.
        centers: Number of grid points per axis (>= 2); the basis has ``centers**2`` functions.
        low: Lowest grid point.
        high: Highest grid point (> low).
        sigma: Gaussian width on the scalar values (> 0), a constant.
        lam: Ridge regulariser (> 0).
        alpha: Relative-density mixture weight in [0, 1].

    Returns:
        Scalar tensor for 2-D input, (B,) for 3-D input.

    Raises:
        ValueError: If x and y do not have the same (n, d)/(B, n, d) shape with n >= 2, or an argument is out
            of range.
    """
    _check_estimator_arguments(lam, alpha)
    if centers < 2:
        raise ValueError(f"centers must be >= 2, got {centers}")
    if not high > low:
        raise ValueError(f"high must be > low, got low={low}, high={high}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x, y, squeeze = _as_pairs(x, y, same_shape=True)
    batch = x.shape[0]
    with torch.autocast(device_type=x.device.type, enabled=False):
        x_values = x.reshape(batch, -1)  # (B, N = n d)
        y_values = y.reshape(batch, -1)  # (B, N)
        grid = torch.linspace(low, high, centers, dtype=x.dtype, device=x.device)  # (m,)
        x_grid = torch.exp(
            -(x_values[:, None, :] - grid[None, :, None]).square() / (2 * sigma**2)
        )  # (B, m, N)
        y_grid = torch.exp(
            -(y_values[:, None, :] - grid[None, :, None]).square() / (2 * sigma**2)
        )  # (B, m, N)
        h, second_joint, second_product = _grid_moments(x_grid, y_grid)
        value, _ = _rulsif_from_moments(h, second_joint, second_product, lam, alpha)  # (B,)
    return value[0] if squeeze else value


def _grid_moments(x_grid: Tensor, y_grid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The RuLSIF moments of the product-grid basis from its factors, without forming the m^2 basis rows.

    Basis l = a + m c is ``phi_l(x, y) = K_a(x) L_c(y)``, with ``K = x_grid`` and ``L = y_grid`` (B, m, N).
    Every moment factorises over the two axes:

    - ``h[l] = mean_k K_a L_c``: an (m, m) product, laid out as l = a + m c;
    - the product-of-marginals second moment ``(K K^T)[a, a'] (L L^T)[c, c'] / N^2``: a Kronecker product;
    - the joint second moment ``mean_k K_a K_a' L_c L_c'``: one (P, N) x (N, P) product over the
      P = m (m + 1) / 2 unordered pairs {a, a'} and {c, c'}, the largest cost (SCC's layout of the basis
      needs three (m^2, N) x (N, m^2) products, about ten times its multiplications at m = 9).

    Returns ``h`` (B, m^2) and the joint and product second moments (B, m^2, m^2), equal (up to rounding)
    to ``_joint_over_product``'s on the materialised basis.
    """
    batch, m, num_samples = x_grid.shape
    h = torch.bmm(x_grid, y_grid.transpose(1, 2)) / num_samples  # (B, m_a, m_c)
    h = h.transpose(1, 2).reshape(batch, m * m)  # (B, m^2), index c m + a = l
    x_gram = torch.bmm(x_grid, x_grid.transpose(1, 2))  # (B, m_a, m_a')
    y_gram = torch.bmm(y_grid, y_grid.transpose(1, 2))  # (B, m_c, m_c')
    second_product = (y_gram[:, :, None, :, None] * x_gram[:, None, :, None, :]).reshape(
        batch, m * m, m * m
    ) / num_samples**2  # (B, m_c m_a, m_c' m_a') = (B, m^2, m^2)
    first, second = torch.triu_indices(m, m, device=x_grid.device)  # (P,), (P,): pairs a <= a'
    x_pairs = x_grid[:, first] * x_grid[:, second]  # (B, P, N)
    y_pairs = y_grid[:, first] * y_grid[:, second]  # (B, P, N)
    pair_moments = torch.bmm(x_pairs, y_pairs.transpose(1, 2)) / num_samples  # (B, P_x, P_y)
    # Unordered pair index of every ordered (a, a'): full[a, a'] = index of {min, max} in triu order.
    pair_of = torch.zeros(m, m, dtype=torch.long, device=x_grid.device)  # (m, m)
    pair_of[first, second] = torch.arange(first.numel(), device=x_grid.device)
    pair_of[second, first] = pair_of[first, second]
    ordered = pair_of.reshape(-1)  # (m^2,), index a m + a'
    full = pair_moments[:, ordered][:, :, ordered]  # (B, m_a m_a', m_c m_c')
    second_joint = (
        full.reshape(batch, m, m, m, m).permute(0, 3, 1, 4, 2).reshape(batch, m * m, m * m)
    )  # (B, a, a', c, c') -> (B, c, a, c', a') -> (B, m^2, m^2)
    return h, second_joint, second_product


def ts_loss(
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    estimator: str = "kernel",
    tap_weights: Sequence[float] | None = None,
    **rsmi_kwargs,
) -> Tensor:
    """The TS loss of SemST Eq. (1): minus the mean rSMI over embedding taps and images.

    Args:
        inputs: One tensor per tap, (B, n, d_tap): embeddings of the input images at n locations.
        outputs: Same taps for the translated images at the same locations, (B, n, d'_tap).
        estimator: ``"kernel"`` (:func:`rsmi`) or ``"grid"`` (:func:`rsmi_grid`, needs equal shapes).
        tap_weights: Relative weight of each tap (>= 0, not all 0); the taps' rSMI are averaged with the
            weights normalised to sum 1, so the loss keeps its scale. None = the plain mean of Eq. (1).
        **rsmi_kwargs: Passed to the estimator (e.g. ``lam``, ``sigma_x``, ``num_centers``, ``generator``).

    Returns:
        Scalar tensor ``-sum_taps w_tap mean_images rSMI(input_tap, output_tap)`` with ``sum w = 1``
        (``w = 1 / taps`` without ``tap_weights``).

    Raises:
        ValueError: If the tap lists are empty or of different lengths, the estimator is unknown, a tap has
            a bad shape, or the weights do not match the taps or are negative, not finite or all 0.
    """
    if estimator not in RSMI_ESTIMATORS:
        raise ValueError(f"unknown rSMI estimator {estimator!r}; expected one of {RSMI_ESTIMATORS}")
    if len(inputs) == 0 or len(inputs) != len(outputs):
        raise ValueError(
            "inputs and outputs must be non-empty lists of the same length; "
            f"got {len(inputs)} and {len(outputs)}"
        )
    estimate = rsmi if estimator == "kernel" else rsmi_grid
    for tap, (source, translated) in enumerate(zip(inputs, outputs)):
        if source.dim() != 3 or translated.dim() != 3:
            raise ValueError(
                f"tap {tap}: expected (B, n, d) tensors, "
                f"got {tuple(source.shape)} and {tuple(translated.shape)}"
            )
    weights = _tap_weights(tap_weights, len(inputs))  # (T,) or None
    shapes = {(tuple(s.shape), tuple(t.shape)) for s, t in zip(inputs, outputs)}
    if len(shapes) == 1 and rsmi_kwargs.get("num_centers") is None:
        # Taps of equal shape (CUT's projector makes them all (B, P, 256)) are one batched solve: the
        # estimate is per batch element (bandwidths included), so this equals the per-tap loop, faster.
        values = estimate(torch.cat(list(inputs)), torch.cat(list(outputs)), **rsmi_kwargs)  # (T*B,)
        if weights is None:
            return -values.mean()
        per_tap = values.reshape(len(inputs), -1).mean(dim=1)  # (T, B) -> (T,)
    else:
        per_tap = torch.stack(
            [
                estimate(source, translated, **rsmi_kwargs).mean()
                for source, translated in zip(inputs, outputs)
            ]
        )  # (T,)
        if weights is None:
            return -per_tap.mean()
    return -(per_tap * weights.to(per_tap)).sum()


def _tap_weights(tap_weights: Sequence[float] | None, num_taps: int) -> Tensor | None:
    """The taps' weights normalised to sum 1, (T,); None stays None (the plain mean)."""
    if tap_weights is None:
        return None
    weights = torch.as_tensor([float(w) for w in tap_weights], dtype=torch.float64)  # (T,)
    if weights.numel() != num_taps:
        raise ValueError(f"tap_weights has {weights.numel()} weights for {num_taps} taps")
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or not weights.sum() > 0:
        raise ValueError(f"tap_weights must be finite, >= 0 and not all 0; got {list(tap_weights)}")
    return weights / weights.sum()
