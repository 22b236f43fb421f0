"""Segmentation for the semantic-distortion evaluation (SemST, section 4).

A segmenter trained on the TARGET domain is run on translated source images and scored against the source
labels; the less a translation distorts semantics, the higher the score. The paper uses FCN-8s; semst trains
its own compact U-Net, because no pretrained segmenter can be assumed to be available.

- `network.py`: `SegmentationUNet`, RGB (B, 3, H, W) in [0, 1] -> logits (B, C, H, W) for any H, W.
- `train.py`: `train_segmenter`, training on (image, label map) pairs into a safe checkpoint, with the
  hyper-parameters of a `SegmenterTrainConfig` (saved in the checkpoint).
- `loading.py`: `load_segmenter` (semst checkpoints, TorchScript, ONNX; never pickles), `save_segmenter`,
  `export_segmenter_torchscript`.
"""

from semst.segmentation.loading import (
    Segmenter,
    export_segmenter_torchscript,
    load_segmenter,
    load_segmenter_network,
    save_segmenter,
)
from semst.segmentation.network import SegmentationUNet
from semst.segmentation.train import SegmenterTrainConfig, train_segmenter

__all__ = [
    "SegmentationUNet",
    "Segmenter",
    "SegmenterTrainConfig",
    "export_segmenter_torchscript",
    "load_segmenter",
    "load_segmenter_network",
    "save_segmenter",
    "train_segmenter",
]
