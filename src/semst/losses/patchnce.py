"""PatchNCE loss of CUT (Park et al., 2020, Eq. 2-3), the InfoNCE baseline that SemST's hDCE replaces.

For one image with P sampled patch locations, ``q_i`` is the embedding of location i in the translated image
(the query) and ``k_j`` the embedding of location j in the input image (the key; detached, as in CUT). The
positive of query i is ``k_i``; its negatives are the other P-1 locations of the *same* image. The loss of
patch i is the cross-entropy with target 0 of the logits

    [q_i.k_i, q_i.k_1, ..., q_i.k_P] / tau,   where the entry j = i of the negatives is replaced by -10,

i.e. ``-log(e^{s_ii/tau} / (e^{s_ii/tau} + sum_{j != i} e^{s_ij/tau} + e^{-10/tau}))``. CUT masks the diagonal
with -10 rather than -inf, so its denominator keeps the (negligible) ``e^{-10/tau}`` term; this module does
the same so that values match CUT exactly. The batch dimension is read from the tensors, never from a
configuration (CUT reshaped with ``opt.batch_size``, which breaks on a short last batch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from semst.losses._common import as_patch_batches

# CUT fills the self-similarity entry of the negatives with this constant (models/patchnce.py).
PATCHNCE_DIAGONAL_FILL = -10.0


def patchnce_loss(query: Tensor, key: Tensor, temperature: float = 0.07) -> Tensor:
    """CUT's PatchNCE loss, averaged over all patches of all images.

    Args:
        query: Embeddings of the translated image, (B, P, C) or (P, C), L2-normalised along C.
        key: Embeddings of the input image at the same P locations, same shape; detached inside.
        temperature: The softmax temperature tau (CUT's ``nce_T``, default 0.07); must be > 0.

    Returns:
        Scalar tensor: mean cross-entropy over the B * P patches (float32, or float64 for float64 inputs).

    Raises:
        ValueError: If the shapes differ, are not 2-D/3-D or have an empty dimension, or temperature <= 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    query, key = as_patch_batches(query, key, loss="PatchNCE")
    key = key.detach()
    num_patches = query.shape[1]
    with torch.autocast(device_type=query.device.type, enabled=False):
        positive = (query * key).sum(dim=-1, keepdim=True)  # (B, P, 1)
        negatives = torch.bmm(query, key.transpose(1, 2))  # (B, P, P)
        diagonal = torch.eye(num_patches, dtype=torch.bool, device=query.device)  # (P, P)
        negatives = negatives.masked_fill(diagonal, PATCHNCE_DIAGONAL_FILL)  # (B, P, P)
        logits = torch.cat([positive, negatives], dim=2) / temperature  # (B, P, 1 + P)
        # Cross-entropy with target 0: logsumexp over the row minus the positive logit.
        loss = torch.logsumexp(logits, dim=2) - logits[..., 0]  # (B, P)
        return loss.mean()
