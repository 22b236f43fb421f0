"""Multi-scale SemST (paper section 3.3, Eq. 4-6): aligned global/local crops, scale attention, fusion.

- ``crops.py``: a global crop (a large region, downsampled) and a full-resolution local crop inside it,
  aligned so that the local crop maps onto whole pixels of the global prediction (Eq. 4-5).
- ``fusion.py``: the scale-attention head (M_s) and the fusion ``M_s * Y_l + (1 - M_s) * Y_g`` (Eq. 6), with
  the banded upsampling that full-resolution translation fuses with.
- ``inference.py``: full-resolution translation with bounded memory (global pass on the downsampled image,
  local pass on tiles, fusion).
- ``visualize.py``: the picture of a fusion (global, local, M_s heat map, fused).

The two-generator model is ``semst.model.SemST`` with ``multiscale.enabled``; its training step is
``semst.training.multiscale_step``.
"""

from semst.multiscale.crops import Box, MultiScaleCrops, crop_and_resize, sample_multiscale_crops
from semst.multiscale.fusion import (
    ScaleAttentionHead,
    attention_tap,
    fuse_predictions,
    upsample_rows,
    upsample_to,
)
from semst.multiscale.inference import downsample, global_prediction, translate_multiscale

__all__ = [
    "Box",
    "MultiScaleCrops",
    "ScaleAttentionHead",
    "attention_tap",
    "crop_and_resize",
    "downsample",
    "fuse_predictions",
    "global_prediction",
    "sample_multiscale_crops",
    "translate_multiscale",
    "upsample_rows",
    "upsample_to",
]
