"""The one helper the patch-contrastive losses share: checking and batching (query, key) embeddings."""

from __future__ import annotations

import torch
from torch import Tensor


def as_patch_batches(
    query: Tensor, key: Tensor, *, min_patches: int = 1, loss: str = "loss"
) -> tuple[Tensor, Tensor]:
    """Check that query and key are matching (B, P, C) or (P, C) embeddings; return (B, P, C) float tensors.

    float16/bfloat16 inputs are upcast to float32 (float64 stays float64), so the losses are safe under
    autocast. ``min_patches`` is the smallest P the loss is defined for.
    """
    if not isinstance(query, Tensor) or not isinstance(key, Tensor):
        raise ValueError("query and key must be torch.Tensor")
    if query.shape != key.shape:
        raise ValueError(
            f"query and key must have the same shape (B, P, C) or (P, C); got {tuple(query.shape)} "
            f"and {tuple(key.shape)}"
        )
    if query.dim() not in (2, 3):
        raise ValueError(
            f"query and key must be (B, P, C) or (P, C); got {query.dim()}-D shape {tuple(query.shape)}"
        )
    if query.dim() == 2:
        query, key = query.unsqueeze(0), key.unsqueeze(0)  # (1, P, C)
    if query.shape[0] == 0 or query.shape[1] == 0 or query.shape[2] == 0:
        raise ValueError(f"query and key must not have an empty dimension; got {tuple(query.shape)}")
    if query.shape[1] < min_patches:
        raise ValueError(f"{loss} needs P >= {min_patches} patches per image; got shape {tuple(query.shape)}")
    dtype = torch.promote_types(query.dtype, torch.float32)
    return query.to(dtype), key.to(dtype)
