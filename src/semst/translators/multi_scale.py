"""The multi-scale translator of SemST (paper section 3.3, Eq. 4-6): global and local generators fused by scale
attention.

For an image X and a downsampling factor s:

    X_low = T(X)                                    T = semst.multiscale.crops.downsample (Eq. 4)
    Y_g, M_s = G_g(X_low), A(bottleneck of G_g(X_low))   (`predict_global`)
    Y_l = G_l(X)                                    (full resolution)
    Y = M_s * Y_l + (1 - M_s) * Y_g                 Y_g, M_s upsampled by s (semst.multiscale.fusion.fuse, Eq. 6)

The same three steps run everywhere, with different cuts of the image:

- training (`training_forward`): X_low is a global crop (a region of ``global_size * s`` pixels
  downsampled), X a full-resolution local crop inside it; Y_g and M_s are upsampled and cut to the local
  crop (`semst.multiscale.fusion.crop_to_boxes`) before the fusion;
- ``forward``: the whole image, in one pass (what `semst.export` writes);
- ``translate_tensor``: the whole image with bounded memory: the global pass over the downsampled image in
  windows of ``tiling.global_window``, the local pass in ``tiling.tile`` tiles (both ``tiling.batch`` at a
  time, under the autocast of ``tiling.precision``), both blended by
  `semst.tiling.tiled_apply`, and the fusion band by band (`semst.multiscale.fusion.upsample_rows`), so no
  full-resolution copy of the global maps is ever held. Beyond the input and the output, memory holds one
  tile batch and one global window: it does not grow with the image size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from semst.config import ExperimentConfig
from semst.data.batch import Batch
from semst.data.images import convert_to_rgb, image_to_tensor, tensor_to_image
from semst.data.transforms import MultiScaleCrops
from semst.multiscale.crops import downsample
from semst.multiscale.fusion import (
    ScaleAttentionHead,
    attention_tap,
    crop_to_boxes,
    fuse,
    upsample_by,
    upsample_rows,
)
from semst.networks import ResnetGenerator
from semst.networks.padding import pad_to_multiple
from semst.tiling import Tiling, tiled_apply
from semst.translators.base import (
    Branch,
    TrainingForward,
    Translator,
    add_margin,
    generator_from_config,
)

__all__ = ["FUSION_BAND_ROWS", "MultiScaleTranslator"]

FUSION_BAND_ROWS = 256  # output rows fused at a time in tiled translation


class MultiScaleTranslator(Translator):
    """G_g, G_l and the scale-attention head A, with one forward path (see the module docstring).

    Args:
        generator_global: G_g, on images downsampled by ``scale``.
        generator_local: G_l, at full resolution.
        attention: the scale-attention head, reading G_g's bottleneck (`attention_tap`).
        scale: the downsampling factor s of the global branch.
        config: the experiment config (``multiscale.enabled`` true).
        local_adversarial_weight: the share of the adversarial loss on G_l's own output in training (HRDA's
            0.1).
        global_adversarial_weight: the share on G_g's own output at its scale, judged against real target
            global crops (0 by default: the global output reaches the loss only through the fusion). The
            rest is on the fused output.
        local_patch_losses: what the local branch's hDCE and TS losses compare with the local input:
            ``"local"``, G_l's own output (then the scale attention learns from the adversarial loss alone),
            ``"fused"``, the fused output Y (HRDA's order: the main losses on the fused prediction), so
            that they reach M_s and G_g too, or ``"both"``: half the local branch's patch losses on Y, half
            on G_l's own output (so G_l's output is held to its input directly too, as the discriminator's
            0.1 judges it directly).
        attention_adversarial: whether the adversarial loss trains the scale attention (the default). If
            false, the discriminator judges a fused output built with M_s detached, so that M_s learns from
            the patch losses on Y alone (which branch keeps the content) while both generators still get
            the adversarial gradient through it.
        split_adversarial: whether G_l learns realism from its own output alone. If true, the
            discriminator judges a fused output built with G_l's output detached, so that the adversarial
            loss on Y trains G_g and M_s only, and G_l's adversarial gradient comes from its own output,
            judged with share ``local_adversarial_weight`` (as a single-scale generator's is).
    """

    kind = "multi-scale"

    def __init__(
        self,
        generator_global: ResnetGenerator,
        generator_local: ResnetGenerator,
        attention: ScaleAttentionHead,
        *,
        scale: int,
        config: ExperimentConfig,
        local_adversarial_weight: float = 0.1,
        global_adversarial_weight: float = 0.0,
        local_patch_losses: str = "fused",
        attention_adversarial: bool = True,
        split_adversarial: bool = False,
    ) -> None:
        super().__init__(config)
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.generator_global = generator_global
        self.generator_local = generator_local
        self.attention = attention
        self.scale = int(scale)
        self.attention_tap = attention_tap(generator_global)
        self.local_adversarial_weight = float(local_adversarial_weight)
        self.global_adversarial_weight = float(global_adversarial_weight)
        if local_patch_losses not in ("local", "fused", "both"):
            raise ValueError(
                f"local_patch_losses must be 'local', 'fused' or 'both', got {local_patch_losses!r}"
            )
        self.local_patch_losses = local_patch_losses
        self.attention_adversarial = bool(attention_adversarial)
        self.split_adversarial = bool(split_adversarial)

    @classmethod
    def build(cls, config: ExperimentConfig) -> MultiScaleTranslator:
        generator_global = generator_from_config(config.generator)
        generator_local = generator_from_config(config.generator)
        tap = attention_tap(generator_global)
        attention = ScaleAttentionHead(
            generator_global.tap_channels([tap])[tap],
            hidden=config.multiscale.attention_hidden,
            norm=config.generator.norm,
            initial_bias=math.log(config.multiscale.attention_init / (1 - config.multiscale.attention_init)),
        )
        return cls(
            generator_global,
            generator_local,
            attention,
            scale=config.multiscale.scale,
            config=config,
            local_adversarial_weight=config.multiscale.local_adversarial_weight,
            global_adversarial_weight=config.multiscale.global_adversarial_weight,
            local_patch_losses=config.multiscale.local_patch_losses,
            attention_adversarial=config.multiscale.attention_adversarial,
            split_adversarial=config.multiscale.split_adversarial,
        )

    @classmethod
    def crop_spec(cls, config: ExperimentConfig) -> MultiScaleCrops:
        ms = config.multiscale
        return MultiScaleCrops(
            global_size=ms.global_size,
            scale=ms.scale,
            local_size=ms.local_size,
            image_width=ms.image_width,
            flip=config.data.flip,
        )

    def branches(self) -> dict[str, ResnetGenerator]:
        return {"global": self.generator_global, "local": self.generator_local}

    # --- the three steps ----------------------------------------------------------------------------------

    def predict_global(
        self, low: torch.Tensor, taps: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G_g and the scale attention on downsampled images (B, 3, h, w), h and w multiples of 4.

        Returns:
            (B, 4, h, w) maps: channels 0-2 Y_g in [-1, 1], channel 3 M_s in [0, 1] (upsampled bilinearly
            from the bottleneck's resolution); and tap -> encoder features of ``low`` for ``taps``.
        """
        wanted = tuple(taps) if self.attention_tap in taps else (*taps, self.attention_tap)
        out, features = self.generator_global.forward_with_taps(low, wanted)  # (B, 3, h, w)
        weights = self.attention(features[self.attention_tap])  # (B, 1, h / 4, w / 4)
        weights = F.interpolate(weights, size=out.shape[-2:], mode="bilinear", align_corners=False)
        maps = torch.cat([out, weights.to(out.dtype)], dim=1)  # (B, 4, h, w)
        return maps, {tap: features[tap] for tap in taps}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        low = downsample(x, self.scale)  # (B, 3, h, w), h = ceil(H / s)
        low_h, low_w = low.shape[-2], low.shape[-1]
        padded = pad_to_multiple(low, self.generator_global.size_multiple)
        maps = self.predict_global(padded)[0][..., :low_h, :low_w]  # (B, 4, h, w)
        up = upsample_by(maps, self.scale)[..., :height, :width]  # (B, 4, H, W)
        local = self.generator_local(pad_to_multiple(x, self.generator_local.size_multiple))
        return fuse(local[..., :height, :width], up[:, :3], up[:, 3:])

    def training_forward(
        self, batch: Batch, *, taps: Sequence[str] = (), identity: bool = False, flip: bool = False
    ) -> TrainingForward:
        if flip:
            raise ValueError("flip_equivariance (FastCUT) is single-scale only; set multiscale.enabled=false")
        source, target = batch.source, batch.target
        if source.global_crop is None or source.box is None:
            raise ValueError("a multi-scale translator trains on MultiScaleCrops (global crops and boxes)")
        count = source.size
        if identity:
            global_inputs = torch.cat([source.global_crop, target.global_crop])  # (2B, 3, hg, wg)
            local_inputs = torch.cat([source.crop, target.crop])  # (2B, 3, hl, wl)
        else:
            global_inputs, local_inputs = source.global_crop, source.crop
        maps, global_features = self.predict_global(global_inputs, taps)  # (B', 4, hg, wg)
        local, local_features = self.generator_local.forward_with_taps(local_inputs, tuple(taps))
        on_local = crop_to_boxes(maps[:count], source.box, self.scale)  # (B, 4, hl, wl)
        fused = fuse(local[:count], on_local[:, :3], on_local[:, 3:])  # (B, 3, hl, wl)
        w_local, w_global = self.local_adversarial_weight, self.global_adversarial_weight
        # D judges Y; the same image with the gradient stopped at M_s (without attention_adversarial) or at
        # G_l's output (split_adversarial: G_l is judged on its own output only)
        judged_fused = fused
        if self.split_adversarial or not self.attention_adversarial:
            judged_fused = fuse(
                local[:count].detach() if self.split_adversarial else local[:count],
                on_local[:, :3],
                on_local[:, 3:] if self.attention_adversarial else on_local[:, 3:].detach(),
            )  # (B, 3, hl, wl)
        judged = [(judged_fused, target.crop, 1.0 - w_local - w_global)]
        if w_local > 0:
            judged.append((local[:count], target.crop, w_local))
        if w_global > 0:
            judged.append((maps[:count, :3], target.global_crop, w_global))
        # The local branch's patch losses compare X_l with G_l's own output, or with the fused Y, so that they
        # reach the scale attention and G_g too (the identity rows keep G_l's output on target crops), or
        # half with each ("both": two branches of G_l sharing its projection head, weight 0.5 each).
        branches = [Branch("global", self.generator_global, global_inputs, maps[:, :3], global_features)]
        if self.local_patch_losses in ("fused", "both"):
            weight = 0.5 if self.local_patch_losses == "both" else 1.0
            outputs = torch.cat([fused, local[count:]])  # (B', 3, hl, wl)
            branches.append(
                Branch("local", self.generator_local, local_inputs, outputs, local_features, weight=weight)
            )
        if self.local_patch_losses in ("local", "both"):
            name, weight = ("local", 1.0) if self.local_patch_losses == "local" else ("local_own", 0.5)
            branches.append(
                Branch(name, self.generator_local, local_inputs, local, local_features, weight, "local")
            )
        return TrainingForward(
            branches=branches,
            judged=judged,
            scalars={"M_s/mean": on_local[:, 3:].detach().float().mean()},
            preview={
                "source (local)": source.crop,
                "global": on_local[:, :3],
                "local": local[:count],
                "M_s (white=local)": on_local[:, 3:].expand(-1, 3, -1, -1) * 2 - 1,
                "fused": fused,
                "target (local)": target.crop,
            },
        )

    # --- full-resolution translation ----------------------------------------------------------------------

    def default_tiling(self) -> Tiling:
        """Local tiles of ``max(512, local_size)`` pixels overlapping by a quarter, one at a time, and global
        windows of ``2 * global_size``; at the width the model trained at (``multiscale.image_width``), if
        it was trained on resized images.

        Larger tiles come closer to a whole-image pass (instance norm sees more of the image, so neighbouring
        tiles agree and no seams show; docs/design.md has the measurement); 512 is the largest size whose
        pass with the default architecture keeps a 2048x1024 translation under 1.5 GB on a CPU. On a GPU,
        raise ``batch`` for speed.
        """
        ms = self.config.multiscale
        tile = max(512, ms.local_size)
        return Tiling(
            tile=tile,
            overlap=tile // 4,
            batch=1,
            global_window=2 * ms.global_size,
            width=ms.image_width or 0,
        )

    def _global_maps(self, image: torch.Tensor, tiling: Tiling, progress: bool) -> torch.Tensor:
        """Y_g and M_s of one (1, 3, H, W) image at its downsampled size, (1, 4, h, w), in windows, ``tiling.batch``
        at a time (a global window costs what a local tile of the same side costs)."""
        low = downsample(image, self.scale)  # (1, 3, h, w)
        window = tiling.global_window or max(low.shape[-2:])
        return tiled_apply(
            lambda crops: self.predict_global(crops)[0],
            low,
            tile=window,
            overlap=min(window // 8, window - 1),
            batch_size=tiling.batch,
            multiple=self.generator_global.size_multiple,
            out_channels=4,
            device=self.device,
            memory_format=self.pass_memory_format,
            progress=progress,
        )

    def _local(self, image: torch.Tensor, tiling: Tiling, progress: bool) -> torch.Tensor:
        """Y_l of one (1, 3, H, W) image in tiles, (1, 3, H, W)."""
        tile = tiling.tile or max(image.shape[-2:])
        return tiled_apply(
            self.generator_local,
            image,
            tile=tile,
            overlap=tiling.overlap if tiling.tile else 0,
            batch_size=tiling.batch,
            multiple=self.generator_local.size_multiple,
            out_channels=3,
            device=self.device,
            memory_format=self.pass_memory_format,
            progress=progress,
        )

    def _translate_tensor(self, x: torch.Tensor, tiling: Tiling, *, progress: bool) -> torch.Tensor:
        results = []
        for image in x:
            image = image[None].float()  # (1, 3, H, W), stays where it is; tiles move to the device
            height, width = image.shape[-2:]
            global_maps = self._global_maps(image, tiling, progress)  # (1, 4, h, w)
            fused = self._local(image, tiling, progress)  # (1, 3, H, W), fused in place band by band
            for top in range(0, height, FUSION_BAND_ROWS):
                rows = slice(top, min(height, top + FUSION_BAND_ROWS))
                band = upsample_rows(global_maps, rows, self.scale, width)  # (1, 4, rows, W)
                fused[..., rows, :] = fuse(fused[..., rows, :], band[:, :3], band[:, 3:])
            results.append(fused)
        return torch.cat(results).to(x.device)  # (B, 3, H, W)

    @torch.no_grad()
    def translate_parts(self, image: Image.Image, tiling: Tiling | None = None) -> dict:
        """The parts of a translation for pictures (memory grows with the image size).

        Returns:
            ``global`` (Y_g upsampled), ``local`` (Y_l) and ``fused`` (Y) as PIL images of the input's size,
            and ``attention``, M_s as an (H, W) float32 numpy array in [0, 1] (1 = the local output is used).
        """
        was_training = self.training
        self.eval()
        try:
            tiling = self.default_tiling() if tiling is None else tiling
            x = image_to_tensor(convert_to_rgb(image)).unsqueeze(0)  # (1, 3, H, W)
            m = tiling.margin
            x = add_margin(x, tiling)  # (1, 3, H + 2m, W + 2m)
            height, width = x.shape[-2:]
            with self.autocast(tiling):
                up = upsample_by(self._global_maps(x, tiling, False), self.scale)[..., :height, :width]
                local = self._local(x, tiling, False)  # (1, 3, H + 2m, W + 2m)
                fused = fuse(local, up[:, :3], up[:, 3:])
            if m:
                up, local, fused = (t[..., m:-m, m:-m] for t in (up, local, fused))  # (1, C, H, W)
        finally:
            self.train(was_training)
        parts = {"global": up[:, :3], "local": local, "fused": fused}
        out = {name: tensor_to_image(value[0].cpu()) for name, value in parts.items()}
        out["attention"] = up[0, 3].cpu().numpy()
        return out
