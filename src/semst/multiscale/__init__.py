"""Building blocks of multi-scale SemST (paper section 3.3, Eq. 4-6).

- ``crops.py``: the downsampling T of Eq. 4 (`downsample`) and aligned global/local crop boxes (Eq. 4-5):
  the local crop maps onto whole pixels of the global prediction.
- ``fusion.py``: the scale-attention head (M_s) and the fusion ``M_s * Y_l + (1 - M_s) * Y_g`` (Eq. 6,
  `fuse`), with the exact upsampling by the scale factor that training (`crop_to_boxes`) and full-resolution
  translation (`upsample_rows`, band by band) share.
- ``visualize.py``: the picture of a fusion (global, local, M_s heat map, fused).

The translator that puts them together (training, tiled full-resolution translation and export) is
`semst.translators.MultiScaleTranslator`.
"""

from semst.multiscale.crops import Box, CropBoxes, crop, downsample, sample_multiscale_crops
from semst.multiscale.fusion import (
    ScaleAttentionHead,
    attention_tap,
    crop_to_boxes,
    fuse,
    upsample_by,
    upsample_rows,
)

__all__ = [
    "Box",
    "CropBoxes",
    "ScaleAttentionHead",
    "attention_tap",
    "crop",
    "crop_to_boxes",
    "downsample",
    "fuse",
    "sample_multiscale_crops",
    "upsample_by",
    "upsample_rows",
]
