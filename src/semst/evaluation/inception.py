"""The FID Inception-v3 network in pure torch, loaded from a local weights file: classic FID/KID features.

FID and KID are defined on the 2048 pool3 features of one particular network: the TensorFlow Inception-v3
graph ``inception-2015-12-05`` of the original FID code (TTUR). pytorch-fid and torch-fidelity port it to
PyTorch and download its weights at run time, as ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) and
``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity). Both files are state dicts of the same
module layout (torchvision's ``Inception3`` names without the auxiliary head: ``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ..., ``fc.weight`` with 1008 classes). semst never downloads:
:class:`InceptionExtractor` reads a file the user already has, with ``torch.load(weights_only=True)``
(tensors only, nothing is unpickled into objects) or from a ``.safetensors`` copy with the same names.

The network differs from torchvision's Inception-v3 where the TF graph does (as in both ports): batch-norm
eps 1e-3; average pools that do not count the zero padding; a max pool instead of an average pool in the
pool branch of the last block. Two input conventions exist, and FIDs computed with one are not comparable
with the other at the last digits:

- ``"torch-fidelity"`` (default): the image on the 0-255 scale is resized to 299x299 with TensorFlow 1.x
  bilinear resizing (no half-pixel offset), then mapped by ``(x - 128) / 128``; torch-fidelity shows this
  reproduces the original TensorFlow FID code.
- ``"pytorch-fid"``: the image in [0, 1] is resized with ``F.interpolate(bilinear, align_corners=False)``,
  then mapped by ``2 x - 1``.

``tests/evaluation/test_inception.py`` loads one weights file into this module and into torch-fidelity's
extractor and checks that they compute the same features.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from semst.checkpoint import CheckpointError, shape_problems
from semst.files import file_sha256

__all__ = [
    "INCEPTION_FILES",
    "PREPROCESSINGS",
    "FIDInceptionV3",
    "InceptionExtractor",
    "load_inception_weights",
    "resize_bilinear_tf1",
]

log = logging.getLogger(__name__)

INPUT_SIZE = 299
PREPROCESSINGS = ("torch-fidelity", "pytorch-fid")
INCEPTION_FILES = {
    "pytorch-fid": "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    "torch-fidelity": "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
}
"""Where users get the weights (on a machine with internet access); semst itself never downloads them."""

# Tensors a weights file may hold that the feature network does not use: the 1008-way classifier and the
# batch counters of torch's BatchNorm (absent from files saved by old torch versions).
_UNUSED = ("fc.weight", "fc.bias")


class _Conv(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as TensorFlow) -> ReLU; attribute names as the weights."""

    def __init__(self, in_channels: int, out_channels: int, **conv: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool divides by the number of real (unpadded) pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = _Conv(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = _Conv(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _Conv(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _Conv(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([a, b, c, d], dim=1)  # (B, 224 + pool_features, H, W)


class _ReductionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _Conv(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], dim=1)  # (B, 480 + in, H / 2, W / 2)


class _BlockC(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 7x7 convolutions of ``c7`` channels."""

    def __init__(self, in_channels: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = _Conv(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = _Conv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = _Conv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = _Conv(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([a, b, c, d], dim=1)  # (B, 768, H, W)


class _ReductionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = _Conv(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _Conv(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = _Conv(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], dim=1)  # (B, 512 + in, H / 2, W / 2)


class _BlockE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 branches; ``pool`` is "avg" or "max"."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = _Conv(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = _Conv(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = _Conv(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], dim=1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], dim=1)
        if self.pool == "max":
            # The TF graph's last block pools with max, not average (a quirk every FID port keeps).
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], dim=1)  # (B, 2048, H, W)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 trunk: normalised (B, 3, 299, 299) -> pool3 features (B, 2048).

    Parameter names equal those of the pytorch-fid and torch-fidelity weights files (without ``fc``).
    Construct, then load weights with ``load_state_dict(load_inception_weights(path))``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, kernel_size=3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = _ReductionB(288)
        self.Mixed_6b = _BlockC(768, c7=128)
        self.Mixed_6c = _BlockC(768, c7=160)
        self.Mixed_6d = _BlockC(768, c7=160)
        self.Mixed_6e = _BlockC(768, c7=192)
        self.Mixed_7a = _ReductionD(768)
        self.Mixed_7b = _BlockE(1280, pool="avg")
        self.Mixed_7c = _BlockE(2048, pool="max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features of normalised images (B, 3, 299, 299): (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # (B, 288, 35, 35), then (B, 768, 17, 17)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # (B, 768, 17, 17), then (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)


def _tf1_axis(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source indices and weights of TF 1.x bilinear resizing along one axis: ``src = dst * in / out``."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    source = torch.arange(out_size, dtype=torch.float32) * scale  # float32 positions, as TensorFlow
    low = source.floor().long()
    high = (low + 1).clamp(max=in_size - 1)
    return low.to(device), high.to(device), (source - low.float()).to(device)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resizing as TensorFlow 1.x ``resize_bilinear(align_corners=False)`` computes it.

    Output pixel ``i`` samples the input at ``i * in / out`` (no half-pixel offset, unlike
    ``F.interpolate``), interpolating linearly between the two neighbouring pixels (the last one repeated
    at the border). No anti-aliasing, as in TensorFlow.

    Args:
        x: Images (B, C, H, W), floating point.
        size: Output (height, width).

    Returns:
        The resized images (B, C, height, width).
    """
    top, bottom, dy = _tf1_axis(x.shape[-2], size[0], x.device)
    left, right, dx = _tf1_axis(x.shape[-1], size[1], x.device)
    dy, dx = dy.to(x.dtype).view(1, 1, -1, 1), dx.to(x.dtype).view(1, 1, 1, -1)
    upper = x[:, :, top]  # (B, C, height, W)
    lower = x[:, :, bottom]
    upper = upper[..., left] + (upper[..., right] - upper[..., left]) * dx  # (B, C, height, width)
    lower = lower[..., left] + (lower[..., right] - lower[..., left]) * dx
    return upper + (lower - upper) * dy


def _read_state(path: Path) -> Mapping[str, torch.Tensor]:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    # weights_only: only tensors and plain containers are rebuilt, no object is unpickled.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    return state


def load_inception_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads the FID Inception weights from a local file, checked against :class:`FIDInceptionV3`.

    Accepts pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, torch-fidelity's
    ``weights-inception-2015-12-05-6726825d.pth`` (the same names and shapes; both the legacy and the zip
    serialisation of ``torch.save``) and a ``.safetensors`` file with those names. The classifier (``fc``)
    and BatchNorm batch counters are dropped.

    Returns:
        The state dict of :class:`FIDInceptionV3`.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is not a weights file of this network (a one-line reason that names it).
    """
    path = Path(path)
    if not path.is_file():
        hint = ", ".join(f"{name}: {url}" for name, url in INCEPTION_FILES.items())
        raise FileNotFoundError(
            f"Inception weights {path} do not exist; semst downloads nothing: get the FID Inception weights "
            f"file once ({hint}) and pass its path"
        )
    try:
        state = _read_state(path)
    except Exception as exc:  # torch and safetensors raise many types for files they cannot read
        reason = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{path} is not a readable Inception weights file (a torch.save state dict of tensors, or "
            f".safetensors): {type(exc).__name__}: {reason}"
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    state = {
        str(name): tensor
        for name, tensor in state.items()
        if str(name) not in _UNUSED and not str(name).endswith(".num_batches_tracked")
    }
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = FIDInceptionV3().state_dict()
    expected = {
        name: tuple(t.shape) for name, t in reference.items() if not name.endswith(".num_batches_tracked")
    }
    problems = shape_problems(expected, {name: tuple(tensor.shape) for name, tensor in state.items()})
    if problems:
        raise CheckpointError(
            f"{path} is not the FID Inception-v3 (2015-12-05) weights file: " + "; ".join(problems)
        )
    return {name: tensor.float() for name, tensor in state.items()}


class InceptionExtractor:
    """FID Inception pool3 features of whole images: a :class:`~semst.evaluation.features.FeatureExtractor`.

    ``extractor(images)`` maps RGB (B, 3, H, W) in [0, 1], any size, to (B, 2048) float32; images are
    resized to 299x299 inside (see the module docstring for the two preprocessing conventions).

    Args:
        weights: The local weights file (see :func:`load_inception_weights`).
        preprocessing: "torch-fidelity" (TF 1.x resizing, as the original FID code) or "pytorch-fid".
        device: Torch device to run on.
        dtype: Internal precision (torch.float32, or torch.float64 for reference checks).

    Attributes:
        name: "inception".
        dim: 2048.
        whole_images: True: the realism scores feed it whole images, not crops.
    """

    name = "inception"
    dim = 2048
    whole_images = True

    def __init__(
        self,
        weights: str | Path,
        *,
        preprocessing: str = "torch-fidelity",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"unknown Inception preprocessing {preprocessing!r}; expected one of {PREPROCESSINGS}"
            )
        self.weights = Path(weights)
        self.preprocessing = preprocessing
        self.device = torch.device(device)
        self.dtype = dtype
        state = load_inception_weights(self.weights)
        with torch.device("meta"):  # no random initialisation of 24 M parameters that are replaced anyway
            network = FIDInceptionV3()
        counters = [name for name in network.state_dict() if name.endswith(".num_batches_tracked")]
        state.update({name: torch.tensor(0, dtype=torch.long) for name in counters})
        network.load_state_dict(state, assign=True)
        self.network = network.to(self.device, dtype).eval().requires_grad_(False)
        self.digest = file_sha256(self.weights)
        log.debug(f"FID Inception weights loaded from {self.weights} ({preprocessing} preprocessing)")

    def describe(self) -> dict[str, str]:
        """What the features depend on (the weights' content hash, the preprocessing), for caches and scores."""
        return {
            "name": self.name,
            "file": str(self.weights),
            "sha256": self.digest,
            "preprocessing": self.preprocessing,
        }

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Pool3 features (B, 2048) float32 of RGB images (B, 3, H, W) in [0, 1]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Inception expects RGB images (B, 3, H, W), got shape {list(images.shape)}")
        x = images.to(self.device, self.dtype)
        with torch.no_grad():
            if self.preprocessing == "torch-fidelity":
                x = resize_bilinear_tf1(x * 255.0, (INPUT_SIZE, INPUT_SIZE))  # (B, 3, 299, 299), 0-255
                x = (x - 128.0) / 128.0
            else:
                x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
                x = 2.0 * x - 1.0
            return self.network(x).float()
