"""What every translator offers: one forward path for training, tiled inference and export, and loading.

A translator holds the networks that turn a source image into a target-domain image (one generator, or SemST's
global and local generators with their scale attention) and computes with them in one place:

- ``forward(x)``: a whole (B, 3, H, W) batch in [-1, 1] of any size, in one pass. Traceable: `semst.export`
  writes exactly this as ONNX or TorchScript.
- ``translate_tensor(x, tiling)``: the same computation in memory-bounded tiles (`semst.tiling.Tiling`);
  an image that fits in one tile gives ``forward``'s result. The passes run under the autocast of
  ``tiling.precision`` (this method is the one place that sets it; subclasses implement ``_translate_tensor``);
  the output is float32.
- ``training_forward(batch, ...)``: the same networks on a training batch of crops
  (`semst.data.batch.Batch`), returning what the losses need: the images the discriminator judges with
  their weights, and per branch the generator, its inputs, outputs and encoder features (`TrainingForward`).
  The training step (`semst.training.step.train_step`) loops over those branches; a single-scale
  translator has one.

``Translator.from_checkpoint(path)`` builds the right class from the config stored in a checkpoint and loads
its weights (the run's weight average where it kept one, ``train.ema_std``); a loaded translator carries its
provenance in ``checkpoint_path``, ``step`` and ``weights``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from semst import checkpoint as ckpt
from semst.config import ConfigError, ExperimentConfig, GeneratorConfig
from semst.data.batch import Batch
from semst.data.images import convert_to_rgb, image_to_tensor, tensor_to_image
from semst.data.transforms import CropSpec
from semst.networks import ResnetGenerator, build_generator
from semst.tiling import Tiling

__all__ = [
    "Branch",
    "TrainingForward",
    "Translator",
    "checkpoint_config",
    "generator_from_config",
    "translator_class",
]

T = TypeVar("T")

# Tensor prefix of the translator's weight average in a training checkpoint (semst.training.state).
AVERAGE_PREFIX = "ema.translator."

# Checkpoint tensor prefixes of format version 1 (before translators were modules of their own) -> today's.
_V1_PREFIXES = {
    "generator.": "translator.generator.",
    "generator_global.": "translator.generator_global.",
    "generator_local.": "translator.generator_local.",
    "attention.": "translator.attention.",
}


def generator_from_config(cfg: GeneratorConfig) -> ResnetGenerator:
    """The generator a config describes (CUT's ResNet encoder-decoder)."""
    return build_generator(
        cfg.architecture,
        base_channels=cfg.base_channels,
        num_blocks=cfg.num_blocks,
        downsample=cfg.downsample,
        upsample=cfg.upsample,
        norm=cfg.norm,
        init=cfg.init,
        init_gain=cfg.init_gain,
    )


@dataclass
class Branch:
    """One generator's part of a training forward pass: what its patch losses (hDCE/PatchNCE, TS) compare.

    Attributes:
        name: the branch's name (``"main"``, or ``"global"`` and ``"local"``); it keys the projection head F.
        generator: the generator that translated ``inputs``.
        inputs: (B', 3, h, w) what it translated: the source crops, then (with the identity term) the target
            crops, so B' = B or 2B.
        outputs: (B', 3, h, w) the translations its patch losses read: its own, or, for the multi-scale
            local branch, the fused output on the source rows (``multiscale.local_patch_losses``).
        features: tap -> (B', C, h', w') encoder features of ``inputs`` from the same pass (the keys).
        weight: the branch's share in its generator's patch losses: the patch loss of a step is
            ``sum_b weight_b * L_b / sum_b weight_b`` (1 each: the mean over branches). Two branches of one
            generator (``multiscale.local_patch_losses="both"``) share it, 0.5 each.
        projector: the projection head F it uses (a key of the translator's ``branches()``); "" = ``name``.
    """

    name: str
    generator: ResnetGenerator
    inputs: torch.Tensor
    outputs: torch.Tensor
    features: dict[str, torch.Tensor]
    weight: float = 1.0
    projector: str = ""


@dataclass
class TrainingForward:
    """What a translator computed on a training batch.

    Attributes:
        branches: one `Branch` per generator.
        judged: (translation, real, weight) triples: the discriminator judges each translation against real
            target crops of the same scale, with the weight; the weights sum to 1.
        scalars: extra values to log (e.g. the mean scale attention).
        preview: columns of the training sample grid, name -> (B, 3, h, w) in [-1, 1].
    """

    branches: list[Branch]
    judged: list[tuple[torch.Tensor, torch.Tensor, float]]
    scalars: dict[str, torch.Tensor] = field(default_factory=dict)
    preview: dict[str, torch.Tensor] = field(default_factory=dict)


class Translator(nn.Module):
    """Base class of `SingleScaleTranslator` and `MultiScaleTranslator` (see the module docstring).

    Attributes:
        config: the experiment config the translator was built from (saved with it).
        checkpoint_path: the checkpoint it was loaded from, or None.
        step: the training step of that checkpoint, or None.
        weights: which of the checkpoint's weights it holds: ``"average"`` (the run's weight average,
            `semst.training.averaging`) or ``"last"`` (the last step's); None when not loaded.
        kind: ``"single-scale"`` or ``"multi-scale"``.
        scale: the global branch's downsampling factor (1 for single-scale).
    """

    kind: ClassVar[str]
    scale: int = 1

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        self.config = config
        self.checkpoint_path: Path | None = None
        self.step: int | None = None
        self.weights: str | None = None

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> Translator:
        """A translator with freshly initialised networks (seed torch first for reproducible weights).

        On the base class, the config chooses the class (``multiscale.enabled``); on a subclass, the config
        must describe that class.
        """
        kind = translator_class(config)
        if cls is not Translator and kind is not cls:
            raise ConfigError(f"the config describes a {kind.kind} translator, not a {cls.__name__}")
        return kind.build(config)

    @classmethod
    def build(cls, config: ExperimentConfig) -> Translator:
        """The networks of ``config``, freshly initialised (subclasses)."""
        raise NotImplementedError

    @classmethod
    def crop_spec(cls, config: ExperimentConfig) -> CropSpec:
        """The training crops this class trains on, from ``config`` (subclasses)."""
        raise NotImplementedError

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "auto", *, weights: str = "average"
    ) -> Translator:
        """Load the translator of a semst checkpoint (a file, or a run directory's latest checkpoint).

        ``weights="average"`` loads the run's weight average where the run kept one (``train.ema_std`` > 0)
        and the last step's weights otherwise; ``weights="last"`` always loads the last step's.

        Nothing is allocated before the file is known to fit: the stored config is validated (network sizes
        are bounded, `ExperimentConfig.architecture_limits`), the translator is built on the ``meta`` device
        (shapes without memory) and its tensor names and shapes are compared with the checkpoint's header;
        only then are the networks built and the weights read (and checked for NaN and infinities).
        Checkpoints of format version 1 (semst 0.1, written before translators were modules of their own)
        load too.

        Raises:
            semst.checkpoint.CheckpointError: The file is missing, damaged, not a translator checkpoint, or
                its config or weights do not describe a usable translator; the message names the file.
        """
        from semst.runtime import resolve_device

        path = ckpt.resolve_checkpoint(path)
        version, meta = ckpt.read_header(path)
        config = checkpoint_config(meta, path)
        step = meta.get("step", 0)
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ckpt.CheckpointError(f"{path}: the checkpoint's step {step!r} is not a number of steps")
        kind = translator_class(config)
        if cls is not Translator and kind is not cls:
            raise ckpt.CheckpointError(f"{path} holds a {kind.kind} translator, not a {cls.__name__}")
        if weights not in ("average", "last"):
            raise ValueError(f"weights must be 'average' or 'last' (got {weights!r})")
        shapes = ckpt.tensor_shapes(path)  # the header once: which weights it holds, and their shapes
        if version < 2:
            shapes = _upgrade_v1_names(shapes)
        if weights == "average" and any(name.startswith(AVERAGE_PREFIX) for name in shapes):
            loaded, prefix = "average", AVERAGE_PREFIX
        else:
            loaded, prefix = "last", "translator."
        with torch.device("meta"):  # shapes only, no memory
            expected = {name: tuple(t.shape) for name, t in kind.build(config).state_dict().items()}
        ckpt.check_shapes(expected, ckpt.strip_prefix(shapes, prefix), what="translator", path=path)
        translator = kind.build(config)
        tensors = ckpt.load_tensors(
            path, prefixes=[prefix] if version >= 2 else _translator_prefixes(version)
        )
        if version < 2:
            tensors = _upgrade_v1_names(tensors)
        state = ckpt.strip_prefix(tensors, prefix)
        ckpt.load_module_state(translator, state, what="translator", path=path)
        translator.checkpoint_path = path
        translator.step = step
        translator.weights = loaded
        target = resolve_device(device) if isinstance(device, str) else device
        return translator.to(target).eval()

    # --- what training needs ------------------------------------------------------------------------------

    def branches(self) -> dict[str, ResnetGenerator]:
        """Branch name -> generator; the patch losses run once per branch, each with its own projection head."""
        raise NotImplementedError

    def training_forward(
        self, batch: Batch, *, taps: Sequence[str] = (), identity: bool = False, flip: bool = False
    ) -> TrainingForward:
        """The translator on a training batch (see `TrainingForward`).

        Args:
            batch: crops of both domains, on the translator's device.
            taps: encoder taps each branch returns for the patch losses (from the same forward passes).
            identity: also translate the target crops (for the contrastive loss's identity term).
            flip: translate the horizontally flipped inputs (FastCUT's flip-equivariance; single-scale only).
        """
        raise NotImplementedError

    # --- translation --------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate (B, 3, H, W) in [-1, 1], any size, in one pass; returns the same shape in [-1, 1]."""
        raise NotImplementedError

    def default_tiling(self) -> Tiling:
        raise NotImplementedError

    def tiling(self, **overrides: int | str | None) -> Tiling:
        """The default tiling with the given settings replaced (None keeps a default); checked.

        Args:
            overrides: ``tile``, ``overlap``, ``batch``, ``global_window``, ``precision``, ``width``,
                ``margin``.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        return replace(self.default_tiling(), **given)

    def translate_tensor(
        self, x: torch.Tensor, tiling: Tiling | None = None, *, progress: bool = False
    ) -> torch.Tensor:
        """Translate (B, 3, H, W) in [-1, 1] of any size with bounded memory (``tiling``, default
        `default_tiling`); returns the same shape in [-1, 1], float32, on ``x``'s device.

        The networks run under the autocast of ``tiling.precision`` (bf16/fp16 convolutions; the blended
        canvases stay float32), at the image width ``tiling.width`` (the result is resized back), on the
        image mirrored by ``tiling.margin`` pixels on every side (cut off again).

        Raises:
            ValueError: A batch that is not (B, 3, H, W), or a precision this device cannot run (fp16 off CUDA).
        """
        self._check_batch(x)
        tiling = self.default_tiling() if tiling is None else tiling
        size = tuple(x.shape[-2:])
        if tiling.width and tiling.width != size[1]:
            height = max(1, round(size[0] * tiling.width / size[1]))
            x = F.interpolate(x, size=(height, tiling.width), mode="bilinear", antialias=True)
        margin = tiling.margin
        x = add_margin(x, tiling)  # (B, 3, H + 2 margin, W + 2 margin)
        with torch.no_grad(), self.autocast(tiling):
            y = self._translate_tensor(x, tiling, progress=progress).float()
        if margin:
            y = y[..., margin:-margin, margin:-margin]  # (B, 3, H, W)
        if tuple(y.shape[-2:]) != size:
            y = F.interpolate(y, size=size, mode="bilinear", antialias=True).clamp(-1, 1)
        return y

    def autocast(self, tiling: Tiling) -> contextlib.AbstractContextManager:
        """The autocast context of ``tiling.precision`` on this translator's device.

        Raises:
            ValueError: fp16 on a device other than CUDA.
        """
        from semst.runtime import autocast

        return autocast(self.device, tiling.precision)

    def _translate_tensor(self, x: torch.Tensor, tiling: Tiling, *, progress: bool) -> torch.Tensor:
        """`translate_tensor` without the checks and the autocast (subclasses)."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        return max(generator.size_multiple for generator in self.branches().values())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def pass_memory_format(self) -> torch.memory_format:
        """The layout translation passes feed the networks: NHWC (``channels_last``) on the CPU, where a
        512-pixel tile of the default generator runs 25-30 % faster in it (with the group-norm path of
        `semst.networks.layers.InstanceNorm2d`; docs/benchmarks.md), NCHW elsewhere (not measured on GPUs).
        Training keeps NCHW: there the layout made whole steps slower on this CPU."""
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    def describe(self) -> str:
        """A one-line summary: kind and generator architecture."""
        gen = self.config.generator
        return (
            f"{self.kind} translator ({self.config.preset} preset); {gen.architecture} generator: "
            f"{gen.num_blocks} residual blocks, {gen.base_channels} channels, "
            f"{gen.downsample}/{gen.upsample} resampling, norm {gen.norm}"
        )

    def translate(self, image, tiling: Tiling | None = None, *, progress: bool = False):
        """Translate a PIL image (returns a PIL RGB image of the same size) or a float tensor.

        Tensors are RGB in [0, 1], shaped (3, H, W) or (B, 3, H, W); the result has the same shape and
        range, on the input's device. ``tiling``: see `translate_tensor`.
        """
        was_training = self.training
        self.eval()
        try:
            if isinstance(image, Image.Image):
                x = image_to_tensor(convert_to_rgb(image)).unsqueeze(0)  # (1, 3, H, W)
                return tensor_to_image(self.translate_tensor(x, tiling, progress=progress)[0].cpu())
            if isinstance(image, torch.Tensor):
                single = image.ndim == 3
                batch = image.unsqueeze(0) if single else image  # (B, 3, H, W)
                out = (self.translate_tensor(batch * 2 - 1, tiling, progress=progress) + 1) / 2
                out = out.to(image.device)
                return out[0] if single else out
            raise TypeError(f"translate() takes a PIL image or a torch tensor, not {type(image).__name__}")
        finally:
            self.train(was_training)

    def _check_batch(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")


def add_margin(x: torch.Tensor, tiling: Tiling) -> torch.Tensor:
    """(B, C, H, W) mirrored by ``tiling.margin`` pixels on every side (unchanged without a margin).

    Raises:
        ValueError: A margin not smaller than the image's shorter side (reflection cannot reach that far).
    """
    margin = tiling.margin
    if not margin:
        return x
    if margin >= min(x.shape[-2:]):
        raise ValueError(
            f"tiling: margin ({margin} px) must be smaller than the image's shorter side "
            f"({min(x.shape[-2:])} px{' at the translation width' if tiling.width else ''})"
        )
    return F.pad(x, (margin, margin, margin, margin), mode="reflect")  # (B, C, H + 2m, W + 2m)


def checkpoint_config(meta: Mapping[str, object], path: Path) -> ExperimentConfig:
    """The validated experiment config stored in a translator checkpoint's metadata (``meta["config"]``).

    Raises:
        semst.checkpoint.CheckpointError: There is no config, or it is not a valid one; the message names
            ``path`` and the problem (an unknown key, a wrong type, a size above its limit, ...).
    """
    if meta.get("kind") == "segmenter":
        raise ckpt.CheckpointError(
            f"{path} is a segmenter checkpoint (from semst segmenter train), not a translator; it is used by "
            "semst evaluate segmentation --segmenter"
        )
    raw = meta.get("config")
    if raw is None:
        raise ckpt.CheckpointError(
            f"{path}: the checkpoint holds no config, so its networks are unknown (semst train and semst "
            "convert write one into every checkpoint)"
        )
    if not isinstance(raw, Mapping):
        raise ckpt.CheckpointError(
            f"{path}: the config stored in the checkpoint is not a mapping of sections: {raw!r:.60}"
        )
    try:
        return ExperimentConfig.from_stored(raw, source=str(path)).validate()
    except ConfigError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
        raise ckpt.CheckpointError(
            f"{path}: the config stored in the checkpoint is not usable: {problem}"
        ) from exc


def translator_class(config: ExperimentConfig) -> type[Translator]:
    """The translator class a config describes: multi-scale when ``multiscale.enabled``."""
    from semst.translators.multi_scale import MultiScaleTranslator
    from semst.translators.single_scale import SingleScaleTranslator

    return MultiScaleTranslator if config.multiscale.enabled else SingleScaleTranslator


def _translator_prefixes(version: int) -> list[str]:
    return list(_V1_PREFIXES) if version < 2 else ["translator."]


def _upgrade_v1_names(tensors: Mapping[str, T]) -> dict[str, T]:
    """Tensor names (to tensors or shapes) of a format-1 checkpoint as today's (``generator.x`` ->
    ``translator.generator.x``)."""
    upgraded = {}
    for name, tensor in tensors.items():
        for old, new in _V1_PREFIXES.items():
            if name.startswith(old):
                upgraded[new + name[len(old) :]] = tensor
                break
    return upgraded
