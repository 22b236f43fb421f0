"""Feature extractors for the realism scores: one small interface, and the target segmenter's encoder.

KID and FID compare feature distributions; what they measure depends on the network giving the features.
:mod:`semst.evaluation.realism` accepts any object of the :class:`FeatureExtractor` shape:

- :class:`~semst.evaluation.domain_classifier.DomainClassifierExtractor`: a source-vs-target classifier
  trained here (crops);
- :class:`SegmenterEncoderExtractor` (this module): the encoder of the target-domain segmenter that scores
  semantic distortion, i.e. features of a network that has only ever seen real target images (crops);
- :class:`~semst.evaluation.inception.InceptionExtractor`: the FID Inception network, from a local weights
  file (whole images).

To add one: give it ``name``, ``dim``, ``whole_images``, ``describe()`` and ``__call__``, and it can be
passed to :func:`~semst.evaluation.realism.realism_scores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from semst.files import file_sha256
from semst.segmentation.network import SegmentationUNet

__all__ = ["FeatureExtractor", "SegmenterEncoderExtractor"]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps images to feature vectors: ``extractor(images (B, 3, H, W) float in [0, 1]) -> (B, D)``.

    Attributes:
        name: Short name, the key of its scores ("classifier", "segmenter", "inception").
        dim: Feature dimension D.
        whole_images: True if it takes whole images (any size; it resizes them itself), False if it takes
            the square crops of a :class:`~semst.evaluation.crops.CropView`.
    """

    name: str
    dim: int
    whole_images: bool

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, D) float32 on the CPU of images (B, 3, H, W) in [0, 1]."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the features depend on (network file and its hash, settings): reference features computed
        with one description are only compared with features of the same description."""
        ...


class SegmenterEncoderExtractor:
    """The encoder of a semst segmenter (:class:`SegmentationUNet`) as a crop feature extractor.

    Features are the deepest encoder activations (after the last downsampling, before the decoder),
    averaged over space: (B, D) with D the channels of the deepest level. The segmenter was trained on
    real target images only, so these features describe target-domain content and appearance; unlike the
    domain classifier it was never asked to separate the domains.

    Args:
        network: The segmenter network.
        source: The checkpoint file, for descriptions.
        digest: The checkpoint's sha256, for descriptions.
        device: Torch device.
    """

    name = "segmenter"
    whole_images = False

    def __init__(
        self,
        network: SegmentationUNet,
        *,
        source: str = "",
        digest: str = "",
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.source = source
        self.digest = digest
        self.dim = min(network.width * 2**network.depth, network.max_width)

    @classmethod
    def from_file(cls, path: str | Path, *, device: str | torch.device = "cpu") -> SegmenterEncoderExtractor:
        """Loads the encoder of a semst segmenter checkpoint (``semst segmenter train``).

        Raises:
            CheckpointError: Not a semst segmenter checkpoint (TorchScript and ONNX segmenters can score
                distortion, but their encoders cannot be reached).
        """
        path = Path(path)
        # Imported here: semst.segmentation.loading imports semst.evaluation (a cycle at module level).
        from semst.segmentation.loading import load_segmenter_network

        network, _ = load_segmenter_network(path, device=str(device))
        return cls(network, source=str(path), digest=file_sha256(path), device=device)

    def describe(self) -> dict[str, Any]:
        """The checkpoint file and its hash."""
        return {"name": self.name, "file": self.source, "sha256": self.digest}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, D) float32 of crops or images (B, 3, H, W) in [0, 1]."""
        net = self.network
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"the segmenter encoder expects RGB images (B, 3, H, W), got {list(images.shape)}"
            )
        with torch.no_grad():
            x = (images.to(self.device, torch.float32) - net.mean) / net.std
            pad_h, pad_w = (-x.shape[-2]) % net.multiple, (-x.shape[-1]) % net.multiple
            if pad_h or pad_w:
                mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
                x = F.pad(x, [0, pad_w, 0, pad_h], mode=mode)  # (B, 3, H', W'), multiples of 2**depth
            features = net.stem(x)
            for block in net.down:
                features = block(features)  # (B, C * 2**i, H' / 2**i, W' / 2**i)
            return features.mean(dim=(2, 3)).float().cpu()  # (B, D)
