"""The SemST translator: networks built from a config, loading from checkpoints, and translation.

>>> model = SemST.from_checkpoint("runs/gta2cs")          # a checkpoint file or a run directory
>>> fake = model.translate(Image.open("frame.png"))       # PIL in, PIL out, same size

A single-scale model has one generator; a multi-scale model (``config.multiscale.enabled``, paper section
3.3) has a global generator G_g, a local generator G_l and the scale-attention head that fuses them, and
translates full-resolution images with `semst.multiscale.inference.translate_multiscale`. Training builds
the same object with ``training=True`` (adding the discriminator and the projection heads F); inference
only needs the translation networks, which is all ``from_checkpoint`` reads.
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
from semst.multiscale.fusion import ScaleAttentionHead, attention_tap
from semst.multiscale.inference import translate_multiscale
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
    """The networks of one experiment config, with loading and translation.

    Single-scale: ``generator`` (and for training ``discriminator``, ``projector``).
    Multi-scale: ``generator_global`` (G_g), ``generator_local`` (G_l), ``attention`` (the scale-attention
    head on G_g's bottleneck), and for training ``discriminator``, ``projector_global``, ``projector_local``
    (one projection head F per branch: the paper gives the branches distinct embedding spaces).
    """

    def __init__(self, config: ExperimentConfig, *, training: bool = False):
        super().__init__()
        self.config = config
        self.multiscale = config.multiscale.enabled
        if self.multiscale:
            self.generator_global = generator_from_config(config.generator)
            self.generator_local = generator_from_config(config.generator)
            tap = attention_tap(self.generator_global)
            self.attention = ScaleAttentionHead(
                self.generator_global.tap_channels([tap])[tap],
                hidden=config.multiscale.attention_hidden,
                norm=config.generator.norm,
            )
        else:
            self.generator = generator_from_config(config.generator)
        if training:
            self.discriminator = discriminator_from_config(config.discriminator)
            for name in self.training_network_names():
                if name.startswith("projector"):
                    generator = getattr(self, name.replace("projector", "generator"))
                    channels = generator.tap_channels(config.projection.taps)
                    self.add_module(name, PatchProjector(channels, dim=config.projection.dim))

    def translation_network_names(self) -> tuple[str, ...]:
        """The networks translation needs (what ``from_checkpoint`` loads)."""
        if self.multiscale:
            return ("generator_global", "generator_local", "attention")
        return ("generator",)

    def training_network_names(self) -> tuple[str, ...]:
        """Every trained network, under the names used by optimizers and checkpoints."""
        if self.multiscale:
            return (*self.translation_network_names(), "discriminator", "projector_global", "projector_local")
        return ("generator", "discriminator", "projector")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> SemST:
        """Load the translation networks of a semst checkpoint (a file, or a run directory's latest)."""
        path = ckpt.resolve_checkpoint(path)
        meta = ckpt.read_metadata(path)
        try:
            config = ExperimentConfig.from_dict(meta["config"], source=str(path))
        except (KeyError, ConfigError) as exc:
            raise ckpt.CheckpointError(
                f"{path}: the config stored in the checkpoint is not usable: {exc}"
            ) from exc
        model = cls(config)
        names = model.translation_network_names()
        tensors = ckpt.load_tensors(path, prefixes=[f"{name}." for name in names])
        for name in names:
            state = ckpt.strip_prefix(tensors, f"{name}.")
            ckpt.load_module_state(getattr(model, name), state, what=name, path=path)
        target = resolve_device(device) if isinstance(device, str) else device
        model.checkpoint_path = path
        model.step = int(meta.get("step", 0))
        return model.to(target).eval()

    def default_tiling(self) -> dict[str, int]:
        """Tiling defaults of ``translate_tensor`` for this model.

        Multi-scale: local tiles of ``max(512, local_size)`` pixels overlapping by a quarter, one at a time,
        and global windows of ``2 * global_size``. Larger tiles come closer to a whole-image pass (instance
        norm sees more of the image, so neighbouring tiles agree and no seams show; docs/design.md has the
        measurement); 512 is the largest size whose pass with the default architecture keeps a 2048x1024
        translation under 1.5 GB on a CPU. On a GPU, raise ``tile_batch`` for speed.
        """
        if self.multiscale:
            ms = self.config.multiscale
            tile = max(512, ms.local_size)
            return {"tile": tile, "overlap": tile // 4, "tile_batch": 1, "global_window": 2 * ms.global_size}
        return {"tile": 0, "overlap": 64, "tile_batch": 4, "global_window": 0}

    @torch.no_grad()
    def translate_tensor(
        self,
        x: torch.Tensor,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        tile_batch: int | None = None,
        global_window: int | None = None,
        parts: bool = False,
        progress: bool = False,
    ):
        """Translate (B, 3, H, W) images in [-1, 1] of any size; returns the same shape in [-1, 1].

        Single-scale: the whole image in one pass, or with ``tile`` in overlapping ``tile`` x ``tile``
        windows, ``tile_batch`` at a time, blended with linear ramps over ``overlap`` pixels
        (semst.tiling), so that memory does not grow with the image size. The generator's instance norm then
        sees tile statistics instead of image statistics; use tiles only where the whole image does not fit.

        Multi-scale (always tiled; see `semst.multiscale.inference.translate_multiscale`): G_g on the image
        downsampled by ``multiscale.scale`` (in ``global_window`` windows if larger), G_l on full-resolution
        ``tile`` windows, fused with the scale attention. Defaults: ``default_tiling()``; ``tile_batch``
        defaults to 4 for single-scale tiles. With ``parts``,
        returns a dict of the global, local, attention and fused images (for the fusion picture).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        defaults = self.default_tiling()
        overlap = defaults["overlap"] if overlap is None else overlap
        tile_batch = defaults["tile_batch"] if tile_batch is None else tile_batch
        if self.multiscale:
            results = [
                translate_multiscale(
                    self.generator_global,
                    self.generator_local,
                    self.attention,
                    image[None].float(),
                    scale=self.config.multiscale.scale,
                    tile=tile or defaults["tile"],
                    overlap=overlap,
                    tile_batch=tile_batch,
                    global_window=global_window or defaults["global_window"],
                    device=self.device,
                    parts=parts,
                    progress=progress,
                )
                for image in x
            ]
            if parts:
                return {k: torch.cat([r[k] for r in results]).to(x.device) for k in results[0]}
            return torch.cat(results).to(x.device)  # (B, 3, H, W)
        if parts:
            raise ValueError("parts=True needs a multi-scale model (this one has a single generator)")
        multiple = self.generator.size_multiple
        if tile:
            tiles = [
                tiled_apply(
                    self.generator,
                    image[None].float(),
                    tile=tile,
                    overlap=overlap,
                    batch_size=tile_batch,
                    multiple=multiple,
                    device=self.device,
                    progress=progress,
                )
                for image in x
            ]
            return torch.cat(tiles).to(x.device)  # (B, 3, H, W)
        padded, (height, width) = pad_to_multiple(x.to(self.device, torch.float32), multiple)
        out = self.generator(padded)
        return out[..., :height, :width]

    def translate(self, image, **tiling):
        """Translate a PIL image (returns a PIL RGB image of the same size) or a float tensor.

        Tensors are RGB in [0, 1], shaped (3, H, W) or (B, 3, H, W); the result has the same shape and
        range, on the input's device. Keyword arguments (``tile``, ``overlap``, ``tile_batch``,
        ``global_window``, ``progress``): see ``translate_tensor``.
        """
        was_training = self.training
        self.eval()
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
            self.train(was_training)

    def translate_parts(self, image: Image.Image, **tiling) -> dict:
        """For a multi-scale model and a PIL image: ``global`` (G_g's output, upsampled), ``local`` (G_l's
        blended tiles) and ``fused`` (the translation) as PIL images of the input's size, and
        ``attention``, M_s as an (H, W) float32 numpy array in [0, 1] (1 = the local output is used)."""
        was_training = self.training
        self.eval()
        try:
            x = image_to_tensor(convert_to_rgb(image)).unsqueeze(0)
            parts = self.translate_tensor(x, parts=True, **tiling)
        finally:
            self.train(was_training)
        out = {k: tensor_to_image(v[0].cpu()) for k, v in parts.items() if k != "attention"}
        out["attention"] = parts["attention"][0, 0].cpu().numpy()
        return out
