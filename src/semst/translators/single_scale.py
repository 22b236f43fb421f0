"""The single-scale translator: one generator G (CUT's, and SemST's for 256 px data sets and its ablation).

Training, tiled inference and export all run ``generator`` on images padded by
`semst.networks.padding.pad_to_multiple` and cropped back: training on fixed-size crops (which need no
padding), ``forward`` on whole images, ``translate_tensor`` on whole images or on tiles (`semst.tiling`).

Whole images are the default (tiles change instance-norm statistics), up to `AUTO_TILE_PIXELS`: a larger
image is translated in `AUTO_TILING` tiles, since a whole-image pass needs memory in proportion to its
pixels (about 4 KB a pixel with the default generator: a 144-megapixel photo would need hundreds of GB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from semst.config import ExperimentConfig
from semst.data.batch import Batch
from semst.data.transforms import SingleScaleCrops
from semst.networks import ResnetGenerator
from semst.networks.padding import pad_to_multiple
from semst.tiling import Tiling, tiled_apply
from semst.translators.base import Branch, TrainingForward, Translator, generator_from_config

__all__ = ["AUTO_TILE_PIXELS", "AUTO_TILING", "SingleScaleTranslator"]

log = logging.getLogger(__name__)

AUTO_TILE_PIXELS = 2048 * 2048
"""Images with more pixels than this (4.2 megapixels) are translated in `AUTO_TILING` tiles when the tiling
asks for whole images: a Cityscapes frame (2048 x 1024) still gets one pass."""
AUTO_TILING = Tiling(tile=1024, overlap=256, batch=1)
"""The tiles of large images: 1024 px (instance norm sees a large window, so no grid shows) with a quarter
overlap, one at a time (a pass over one tile of the default generator takes about 4 GB)."""


class SingleScaleTranslator(Translator):
    """One generator, translating whole images or tiles.

    Args:
        generator: G.
        config: the experiment config (``multiscale.enabled`` false).
    """

    kind = "single-scale"

    def __init__(self, generator: ResnetGenerator, config: ExperimentConfig) -> None:
        super().__init__(config)
        self.generator = generator

    @classmethod
    def build(cls, config: ExperimentConfig) -> SingleScaleTranslator:
        return cls(generator_from_config(config.generator), config)

    @classmethod
    def crop_spec(cls, config: ExperimentConfig) -> SingleScaleCrops:
        data = config.data
        return SingleScaleCrops(
            preprocess=data.preprocess,
            load_size=data.load_size,
            crop_size=data.crop_size,
            flip=data.flip,
            steady_from_epoch=config.train.constant_epochs,
        )

    def branches(self) -> dict[str, ResnetGenerator]:
        return {"main": self.generator}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        padded = pad_to_multiple(x, self.generator.size_multiple)  # (B, 3, H', W')
        return self.generator(padded)[..., :height, :width]

    def training_forward(
        self, batch: Batch, *, taps: Sequence[str] = (), identity: bool = False, flip: bool = False
    ) -> TrainingForward:
        source, target = batch.source.crop, batch.target.crop  # (B, 3, h, w) each
        count = source.shape[0]
        inputs = torch.cat([source, target]) if identity else source  # (B or 2B, 3, h, w)
        if flip:
            inputs = inputs.flip(-1)
        outputs, features = self.generator.forward_with_taps(inputs, tuple(taps))
        preview = {"source": source, "translation": outputs[:count], "target": target}
        if identity:
            preview["identity"] = outputs[count:]
        return TrainingForward(
            branches=[Branch("main", self.generator, inputs, outputs, features)],
            judged=[(outputs[:count], target, 1.0)],
            preview=preview,
        )

    def default_tiling(self) -> Tiling:
        """Whole images in one pass: tiles change instance-norm statistics (use them where memory demands).
        With a tile: overlap 64, 4 tiles at a time. Images above `AUTO_TILE_PIXELS` get `AUTO_TILING`.
        A model trained on images scaled to a width (``data.preprocess`` ``scale_width*``) translates at
        that width (``data.load_size``)."""
        data = self.config.data
        width = data.load_size if data.preprocess in ("scale_width", "scale_width_and_crop") else 0
        return Tiling(tile=None, overlap=64, batch=4, global_window=None, width=width)

    def _translate_tensor(self, x: torch.Tensor, tiling: Tiling, *, progress: bool) -> torch.Tensor:
        if tiling.global_window is not None:
            raise ValueError(
                "a global window needs a multi-scale translator (this one has a single generator)"
            )
        height, width = x.shape[-2:]
        if tiling.tile is None and height * width > AUTO_TILE_PIXELS:
            log.info(
                "a %dx%d image is above %d pixels: translating it in %d px tiles (give --tile to choose them)",
                width,
                height,
                AUTO_TILE_PIXELS,
                AUTO_TILING.tile,
            )
            tiling = AUTO_TILING
        # A whole image is one window of tiled_apply: the same padding as `forward`, in the passes' layout.
        tile, overlap = (tiling.tile, tiling.overlap) if tiling.tile else (max(height, width), 0)
        tiles = [
            tiled_apply(
                self.generator,
                image[None].float(),
                tile=tile,
                overlap=overlap,
                batch_size=tiling.batch,
                multiple=self.generator.size_multiple,
                device=self.device,
                memory_format=self.pass_memory_format,
                progress=progress,
            )
            for image in x
        ]
        return torch.cat(tiles).to(x.device)  # (B, 3, H, W)
