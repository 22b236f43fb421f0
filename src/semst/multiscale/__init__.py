"""Multi-scale SemST (paper section 3.3, Eq. 4-6): aligned global/local crops, scale attention, fusion.

Built step by step (issue 3); what exists so far:

- ``crops.py``: a global crop (a large region, downsampled) and a full-resolution local crop inside it,
  aligned so that the local crop maps onto whole pixels of the global prediction (Eq. 4-5).
- ``fusion.py``: the scale-attention head (M_s) and the fusion ``M_s * Y_l + (1 - M_s) * Y_g`` (Eq. 6).

Still to come: the two-generator model and its training step, multi-scale checkpoints, and full-resolution
multi-scale translation.
"""

from semst.multiscale.crops import Box, MultiScaleCrops, crop_and_resize, sample_multiscale_crops
from semst.multiscale.fusion import ScaleAttentionHead, fuse_predictions

__all__ = [
    "Box",
    "MultiScaleCrops",
    "ScaleAttentionHead",
    "crop_and_resize",
    "fuse_predictions",
    "sample_multiscale_crops",
]
