"""The SemST translator: networks built from a config, loading from checkpoints, and translation.

>>> model = SemST.from_checkpoint("runs/gta2cs")          # a checkpoint file or a run directory
>>> fake = model.translate(Image.open("frame.png"))       # PIL in, PIL out, same size

Training builds the same object with ``training=True`` (adding the discriminator and the projection
head F); inference only needs the generator, which is all ``from_checkpoint`` reads.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from semst import checkpoint as ckpt
from semst.config import ConfigError, DiscriminatorConfig, ExperimentConfig, GeneratorConfig
from semst.data.images import convert_to_rgb, image_to_tensor, tensor_to_image
from semst.networks import PatchProjector, build_discriminator, build_generator
from semst.runtime import resolve_device
from semst.tiling import tiled_apply


def generator_from_config(cfg: GeneratorConfig) -> nn.Module:
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


def discriminator_from_config(cfg: DiscriminatorConfig) -> nn.Module:
    return build_discriminator(
        cfg.architecture,
        base_channels=cfg.base_channels,
        num_layers=cfg.num_layers,
        norm=cfg.norm,
        antialias=cfg.antialias,
        init=cfg.init,
        init_gain=cfg.init_gain,
    )


def pad_to_multiple(
    x: torch.Tensor, multiple: int, min_size: int | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right to multiples of ``multiple``; returns the padded tensor and (H, W).

    Sides are also padded to at least ``min_size`` (default ``2 * multiple``): the generator's reflection
    padding inside its residual blocks needs feature maps of at least 2 pixels at 1/``multiple`` scale.
    Reflection padding where the image is large enough (it adds no hard edge for the network to
    translate), replication otherwise (reflection needs the pad to be smaller than the side).
    """
    min_size = 2 * multiple if min_size is None else min_size
    height, width = x.shape[-2:]
    pad_h = max((-height) % multiple, min_size - height)
    pad_w = max((-width) % multiple, min_size - width)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)


class SemST(nn.Module):
    """Generator (and, for training, discriminator and projection head) of one experiment config."""

    def __init__(self, config: ExperimentConfig, *, training: bool = False):
        super().__init__()
        self.config = config
        self.generator = generator_from_config(config.generator)
        if training:
            self.discriminator = discriminator_from_config(config.discriminator)
            channels = self.generator.tap_channels(config.projection.taps)
            self.projector = PatchProjector(channels, dim=config.projection.dim)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> SemST:
        """Load the generator of a semst checkpoint (a file, or a run directory's latest) for inference."""
        path = ckpt.resolve_checkpoint(path)
        meta = ckpt.read_metadata(path)
        try:
            config = ExperimentConfig.from_dict(meta["config"], source=str(path))
        except (KeyError, ConfigError) as exc:
            raise ckpt.CheckpointError(
                f"{path}: the config stored in the checkpoint is not usable: {exc}"
            ) from exc
        model = cls(config)
        state = ckpt.strip_prefix(ckpt.load_tensors(path, prefixes=["generator."]), "generator.")
        ckpt.load_module_state(model.generator, state, what="generator", path=path)
        target = resolve_device(device) if isinstance(device, str) else device
        model.checkpoint_path = path
        model.step = int(meta.get("step", 0))
        return model.to(target).eval()

    @torch.no_grad()
    def translate_tensor(
        self, x: torch.Tensor, *, tile: int | None = None, overlap: int = 64, tile_batch: int = 4
    ) -> torch.Tensor:
        """Translate (B, 3, H, W) images in [-1, 1] of any size; returns the same shape in [-1, 1].

        With ``tile``, each image is translated in overlapping ``tile`` x ``tile`` windows, ``tile_batch`` at
        a time, blended with linear ramps over the ``overlap`` (semst.tiling): memory no longer grows with the
        image size. The generator's instance norm then sees tile statistics instead of image statistics, so
        tiled and whole-image outputs differ slightly; use tiles only where the whole image does not fit.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        multiple = self.generator.size_multiple
        if tile is not None:
            tiles = [
                tiled_apply(
                    self.generator,
                    image[None].float(),
                    tile=tile,
                    overlap=overlap,
                    batch_size=tile_batch,
                    multiple=multiple,
                    device=self.device,
                )
                for image in x
            ]
            return torch.cat(tiles).to(x.device)  # (B, 3, H, W)
        padded, (height, width) = pad_to_multiple(x.to(self.device, torch.float32), multiple)
        out = self.generator(padded)
        return out[..., :height, :width]

    def translate(self, image, *, tile: int | None = None, overlap: int = 64, tile_batch: int = 4):
        """Translate a PIL image (returns a PIL RGB image of the same size) or a float tensor.

        Tensors are RGB in [0, 1], shaped (3, H, W) or (B, 3, H, W); the result has the same shape and
        range, on the input's device. ``tile``, ``overlap``, ``tile_batch``: see ``translate_tensor``.
        """
        tiling = {"tile": tile, "overlap": overlap, "tile_batch": tile_batch}
        was_training = self.generator.training
        self.generator.eval()
        try:
            if isinstance(image, Image.Image):
                x = image_to_tensor(convert_to_rgb(image)).unsqueeze(0)
                return tensor_to_image(self.translate_tensor(x, **tiling)[0].cpu())
            if isinstance(image, torch.Tensor):
                single = image.ndim == 3
                batch = image.unsqueeze(0) if single else image
                out = (self.translate_tensor(batch * 2 - 1, **tiling) + 1) / 2
                out = out.to(image.device)
                return out[0] if single else out
            raise TypeError(f"translate() takes a PIL image or a torch tensor, not {type(image).__name__}")
        finally:
            self.generator.train(was_training)
