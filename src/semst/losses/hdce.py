"""Hard decoupled contrastive entropy (hDCE) loss, SemST Eq. (7)-(9).

For one image with P sampled patch locations, ``q_i`` is the embedding of location i in the translated image
(the query, gets the gradient) and ``k_j`` the embedding of location j in the input image (the key, detached).
With ``s_ij = q_i . k_j``:

- *Decoupled* (DCE, Yeh et al. 2022): the positive ``s_ii`` is left out of the denominator.
- *Hard negatives* (Eq. 7): negatives are drawn from ``q_beta(k_j) ~ exp(beta k_i . k_j) p(k_j)``, a von
  Mises-Fisher tilt towards negatives similar to the positive. SemST reweights "the negative samples by their
  correlations with the positive sample, z^T z^-" (end of section 3.4), so hardness is measured between keys.
  Eq. (9) turns the expectation under ``q_beta`` into an importance-weighted mean over the uniform negatives.

``weighting="importance"`` (default, Eq. 8-9): with ``g_ij = k_i . k_j`` and, for j != i,

    w_ij = exp(beta g_ij) / mean_{j' != i} exp(beta g_ij')          (detached; mean_j w_ij = 1)
    loss_i = -s_ii / tau + log sum_{j != i} w_ij exp(s_ij / tau)

``N E_{q_beta}[exp(s/tau)]`` of Eq. (8) is exactly ``sum_j w_ij exp(s_ij / tau)``. ``beta = 0`` gives plain
DCE. Everything is evaluated with logsumexp:

    log w_ij = beta g_ij - (logsumexp_{j' != i} beta g_ij' - log(P - 1))
    loss_i = -s_ii / tau + logsumexp_{j != i} (s_ij / tau + log w_ij)

``weighting="src"`` reproduces the published code of SRC (Jung et al., CVPR 2022, ``PatchHDCELoss``): the
weights are max-normalised, ``w_ij = exp(beta (g_ij - max_{j' != i} g_ij'))`` (the hardest negative gets
weight 1; SRC's ``HDCE_gamma`` is ``1 / beta``), and they *multiply the similarity inside the exponent*:

    loss_i = -s_ii / tau + log sum_{j != i} exp(w_ij s_ij / tau).

SRC's code returns the InfoNCE value (positive kept in the denominator) as the number it reports, while its
gradient is that of the decoupled loss above (a stop-gradient trick). This module returns the loss that is
descended, so its values are the decoupled loss, not SRC's logged numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from semst.losses._common import as_patch_batches

HDCE_WEIGHTINGS = ("importance", "src")

# Concentration beta of the importance weights (Eq. 7). beta = 1 is Robinson et al.'s (HCL) default for the
# same exp(beta * similarity) tilt, and on 256 patch embeddings of photos it concentrates the loss's softmax
# over the negatives as much as SRC's strongest published setting (gamma = 10, the end of its curriculum): the
# effective number of negatives drops from 24.3 % to 23.2 % of P - 1 (SRC gamma = 10: 23.3 %), while the
# weights alone keep 95 % of it. Measured in docs/losses.md ("hDCE: the default beta"),
# benchmarks/rsmi_defaults.py --part hdce.
HDCE_DEFAULT_BETA = 1.0


def _check_weighting(beta: float, weighting: str) -> None:
    if weighting not in HDCE_WEIGHTINGS:
        raise ValueError(f"unknown hDCE weighting {weighting!r}; expected one of {HDCE_WEIGHTINGS}")
    if not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number, got {beta}")


def _log_importance_weights(key_similarity: Tensor, beta: float, off_diagonal: Tensor) -> Tensor:
    """``log w_ij`` of the importance weighting (mean-normalised over j != i); ``-inf`` on the diagonal."""
    num_negatives = key_similarity.shape[-1] - 1
    tilted = (beta * key_similarity).masked_fill(~off_diagonal, float("-inf"))  # (B, P, P)
    log_normaliser = torch.logsumexp(tilted, dim=-1, keepdim=True) - math.log(num_negatives)  # (B, P, 1)
    return tilted - log_normaliser  # (B, P, P)


def _src_weights(key_similarity: Tensor, beta: float, off_diagonal: Tensor) -> Tensor:
    """SRC's max-normalised weights ``exp(beta (g_ij - max_{j' != i} g_ij'))``; 0 on the diagonal."""
    hardest = key_similarity.masked_fill(~off_diagonal, float("-inf")).amax(dim=-1, keepdim=True)  # (B, P, 1)
    # Exponentiate before masking: beta = 0 times -inf would give NaN.
    weights = torch.exp(beta * (key_similarity - hardest))  # (B, P, P)
    return weights.masked_fill(~off_diagonal, 0.0)  # (B, P, P)


def hdce_negative_weights(
    key: Tensor, beta: float = HDCE_DEFAULT_BETA, weighting: str = "importance"
) -> Tensor:
    """The detached hardness weights ``w_ij`` that :func:`hdce_loss` applies to the negatives.

    Useful for monitoring (e.g. the effective number of negatives ``(sum_j w_ij)^2 / sum_j w_ij^2``).

    Args:
        key: Input-image embeddings, (B, P, C) or (P, C), L2-normalised along C, P >= 2.
        beta: Concentration of the hardness tilt (>= 0 in practice; 0 gives all weights 1).
        weighting: ``"importance"`` (mean over j != i of ``w_ij`` is 1) or ``"src"`` (max over j != i is 1).

    Returns:
        (B, P, P) tensor (or (P, P) for 2-D input) with ``w_ij`` for j != i and 0 on the diagonal.

    Raises:
        ValueError: If ``weighting`` is unknown, ``beta`` is not finite, or ``key`` has a bad shape.
    """
    _check_weighting(beta, weighting)
    squeeze = isinstance(key, Tensor) and key.dim() == 2
    key, _ = as_patch_batches(key, key, min_patches=2, loss="hDCE (P - 1 negatives)")
    with torch.no_grad(), torch.autocast(device_type=key.device.type, enabled=False):
        key = key.detach()
        num_patches = key.shape[1]
        off_diagonal = ~torch.eye(num_patches, dtype=torch.bool, device=key.device)  # (P, P)
        key_similarity = torch.bmm(key, key.transpose(1, 2))  # (B, P, P)
        if weighting == "importance":
            weights = _log_importance_weights(key_similarity, beta, off_diagonal).exp()  # (B, P, P)
        else:
            weights = _src_weights(key_similarity, beta, off_diagonal)  # (B, P, P)
    return weights[0] if squeeze else weights


def hdce_loss(
    query: Tensor,
    key: Tensor,
    temperature: float = 0.07,
    beta: float = HDCE_DEFAULT_BETA,
    weighting: str = "importance",
) -> Tensor:
    """Hard decoupled contrastive loss over the patches of each image (SemST Eq. 8-9).

    Args:
        query: Embeddings of the translated image, (B, P, C) or (P, C), L2-normalised along C, P >= 2.
        key: Embeddings of the input image at the same P locations, same shape. Detached inside: the
            gradient reaches the query only.
        temperature: Softmax temperature tau (CUT's ``nce_T``, 0.07); must be > 0.
        beta: Hardness concentration (Eq. 7). 0 gives plain decoupled InfoNCE (DCE). For ``"src"`` it is
            SRC's ``1 / HDCE_gamma`` (SRC's published curriculum, gamma 50 -> 10, is beta 0.02 -> 0.1).
        weighting: ``"importance"`` (Eq. 9, the paper's form) or ``"src"`` (SRC's multiplicative form); see
            the module docstring.

    Returns:
        Scalar tensor: the mean of ``loss_i`` over all B * P patches (float32, or float64 for float64 inputs).

    Raises:
        ValueError: If the shapes differ or are not (B, P, C)/(P, C) with P >= 2, temperature <= 0,
            ``beta`` is not finite or ``weighting`` is unknown.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    _check_weighting(beta, weighting)
    query, key = as_patch_batches(query, key, min_patches=2, loss="hDCE (P - 1 negatives)")
    key = key.detach()
    num_patches = query.shape[1]
    with torch.autocast(device_type=query.device.type, enabled=False):
        off_diagonal = ~torch.eye(num_patches, dtype=torch.bool, device=query.device)  # (P, P)
        similarity = torch.bmm(query, key.transpose(1, 2))  # (B, P, P); s_ij = q_i . k_j
        positive = torch.diagonal(similarity, dim1=1, dim2=2) / temperature  # (B, P)
        with torch.no_grad():
            key_similarity = torch.bmm(key, key.transpose(1, 2))  # (B, P, P); g_ij = k_i . k_j
            if weighting == "importance":
                log_weights = _log_importance_weights(key_similarity, beta, off_diagonal)  # (B, P, P)
            else:
                weights = _src_weights(key_similarity, beta, off_diagonal)  # (B, P, P)
        if weighting == "importance":
            negative_logits = similarity / temperature + log_weights  # (B, P, P); -inf on the diagonal
        else:
            negative_logits = weights * similarity / temperature  # (B, P, P); w_ij s_ij / tau
            negative_logits = negative_logits.masked_fill(~off_diagonal, float("-inf"))  # (B, P, P)
        loss = torch.logsumexp(negative_logits, dim=-1) - positive  # (B, P)
        return loss.mean()
