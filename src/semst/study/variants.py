"""What a study compares: named translator variants, the sets of them built in, and the scales they train at.

A `Variant` is a preset plus dotted config overrides (``loss.ts_weight=0``). A `Scale` is the size of every
run: network widths, crop sizes and the number of steps, applied to every variant of a study so that they
differ only in what the variant says. ``VARIANT_SETS`` holds the built-in comparisons:

- ``table3``: the paper's ablation (Table 3): full SemST (TS weight 2, multi-scale, hDCE), without multi-scale,
  without hDCE (CUT's PatchNCE in its place), TS weight 0 and 1; plus CUT and FastCUT, the baselines.
- ``demo``: SemST and CUT, what ``semst demo`` runs.
- ``baselines``: CUT and FastCUT.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semst.config import PRESETS, ConfigError, ExperimentConfig, load_config

__all__ = [
    "SCALES",
    "VARIANTS",
    "VARIANT_SETS",
    "Scale",
    "Variant",
    "read_variants_file",
    "resolve_variants",
    "run_config",
]


WEIGHTS = ("average", "last")
"""Which of a checkpoint's weights a variant translates with (`semst.translators.Translator.from_checkpoint`)."""


@dataclass(frozen=True)
class Variant:
    """A named translator setting: a preset and config overrides on top of it, and optionally how its
    held-out translations are made: tiled (``tiling``: `semst.tiling.Tiling` fields, on top of the
    translator's default tiling) and with which of the checkpoint's weights (``weights``: ``"average"``, the
    run's weight average where it kept one, else the last step's; or ``"last"``, the last step's)."""

    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = field(default="", compare=False)  # words only: a new wording is the same variant
    tiling: dict[str, int] = field(default_factory=dict)
    weights: str = "average"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"a variant name must be a non-empty folder name, got {self.name!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"variant {self.name!r}: unknown preset {self.preset!r} (valid: {PRESETS})")
        unknown = sorted(set(self.tiling) - {"tile", "overlap", "batch", "global_window", "margin"})
        if unknown:
            raise ConfigError(f"variant {self.name!r}: unknown tiling settings {unknown}")
        if self.weights not in WEIGHTS:
            raise ConfigError(
                f"variant {self.name!r}: weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "preset": self.preset,
            "overrides": dict(self.overrides),
            "description": self.description,
        }
        if self.tiling:
            data["tiling"] = dict(self.tiling)
        if self.weights != "average":
            data["weights"] = self.weights
        return data

    def multiscale(self, scale: Scale) -> bool:
        """Whether this variant trains the multi-scale translator at ``scale``."""
        return run_config(self, scale.overrides(1), source="", target="", seed=0).multiscale.enabled

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        return cls(
            data["name"],
            data["preset"],
            dict(data.get("overrides", {})),
            data.get("description", ""),
            dict(data.get("tiling", {})),
            data.get("weights", "average"),
        )


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("SemST", "semst", {}, "hDCE + TS (weight 2), multi-scale: the paper's full model"),
        Variant(
            "SemST-single-scale",
            "semst",
            {"multiscale.enabled": False},
            "Table 3 'w/o multi-scale': hDCE + TS on one generator",
        ),
        Variant(
            "SemST-PatchNCE",
            "semst",
            {"loss.contrastive": "patchnce"},
            "Table 3 'w/o hDCE': CUT's PatchNCE in place of hDCE, with TS, multi-scale",
        ),
        Variant("SemST-TS0", "semst", {"loss.ts_weight": 0.0}, "Table 3 TS weight 0: hDCE only, multi-scale"),
        Variant("SemST-TS1", "semst", {"loss.ts_weight": 1.0}, "Table 3 TS weight 1"),
        Variant(
            "SemST-TSboth",
            "semst",
            {"loss.ts_projector_gradient": "both"},
            "the TS loss also trains the projection head F, as in semst 0.1 (docs/experiments.md, experiment 1)",
        ),
        Variant(
            "SemST-local-losses",
            "semst",
            {"multiscale.local_patch_losses": "local"},
            "the local branch's hDCE/TS on G_l's own output, not the fused one (semst before experiment 11)",
        ),
        Variant(
            "SemST-both-losses",
            "semst",
            {"multiscale.local_patch_losses": "both"},
            "the local branch's hDCE/TS half on the fused output, half on G_l's own (experiment 36)",
        ),
        Variant(
            "SemST-sigmamin0",
            "semst",
            {"loss.rsmi_sigma_min": 0.0},
            "the TS kernel width by the median heuristic alone, without a floor (semst before experiment 14)",
        ),
        Variant(
            "SemST-sigmamin0.25",
            "semst",
            {"loss.rsmi_sigma_min": 0.25},
            "the TS kernel width at least 0.25: no collapsed seed on world 1, a colour-swapped one on world 2",
        ),
        Variant(
            "SemST-gadv0.3",
            "semst",
            {"multiscale.global_adversarial_weight": 0.3},
            "D also judges G_g's own output (30 % of the GAN loss): more realistic; distortion depends on the world",
        ),
        Variant(
            "SemST-ema0",
            "semst",
            {"train.ema_std": 0.0},
            "translating with the last step's weights instead of their average (semst before experiment 16)",
        ),
        Variant(
            "SemST-last",
            "semst",
            {},
            "SemST's runs translated with their last step's weights instead of the average (trains nothing)",
            weights="last",
        ),
        Variant("CUT", "cut", {}, "CUT's published settings (PatchNCE, identity term), single-scale"),
        Variant(
            "CUT-ema0.1",
            "cut",
            {"train.ema_std": 0.1},
            "CUT translating with the average of its weights, as the semst preset does (a stronger baseline)",
        ),
        Variant("FastCUT", "fastcut", {}, "FastCUT (PatchNCE x10, flip-equivariance), single-scale"),
    )
}
"""The built-in variants by name."""

VARIANT_SETS: dict[str, tuple[str, ...]] = {
    "table3": ("SemST", "SemST-single-scale", "SemST-PatchNCE", "SemST-TS0", "SemST-TS1", "CUT", "FastCUT"),
    "demo": ("SemST", "CUT"),
    "baselines": ("CUT", "FastCUT"),
}


@dataclass(frozen=True)
class Scale:
    """The size of every run of a study.

    Attributes:
        name: a label.
        steps: optimisation steps per run (batch 1).
        crop: training crop side: single-scale crops, and the multi-scale global and local crops (the
            global crop covers ``2 * crop`` image pixels).
        base_channels: generator and discriminator width (CUT's ngf / ndf).
        num_blocks: residual blocks of the generators.
        num_patches: patches per tap for the patch losses.
        segmenter_steps, segmenter_width, segmenter_crop: the target-domain segmenter a study trains when
            none is given (steps, U-Net width, (height, width) crops).
        classifier_steps: training steps of the realism scorer's source-vs-target classifier.
    """

    name: str
    steps: int
    crop: int
    base_channels: int
    num_blocks: int
    num_patches: int
    segmenter_steps: int = 400
    segmenter_width: int = 16
    segmenter_crop: tuple[int, int] = (128, 256)
    classifier_steps: int = 300

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scale:
        return cls(**{**data, "segmenter_crop": tuple(data.get("segmenter_crop", (128, 256)))})

    def overrides(self, train_images: int) -> dict[str, Any]:
        """Config overrides for a run of this scale on ``train_images`` source images (epochs = steps / images;
        the learning rate is constant for the first half and decays linearly to zero over the second)."""
        epochs = max(2, -(-self.steps // max(1, train_images)))
        return {
            "generator.base_channels": self.base_channels,
            "generator.num_blocks": self.num_blocks,
            "discriminator.base_channels": self.base_channels,
            "projection.num_patches": self.num_patches,
            "projection.taps": f"input,down1,down2,res1,res{min(5, self.num_blocks)}",
            # Single-scale runs see random full-resolution crops of the same size as the multi-scale local
            # crops (CUT's resize_and_crop would squash images that are not square).
            "data.preprocess": "crop",
            "data.crop_size": self.crop,
            "data.load_size": self.crop,
            "data.num_workers": 0,
            "multiscale.global_size": self.crop,
            "multiscale.local_size": self.crop,
            "multiscale.scale": 2,
            "train.max_steps": self.steps,
            "train.constant_epochs": epochs // 2,
            "train.decay_epochs": epochs - epochs // 2,
            "log.log_every": max(1, min(50, self.steps // 20)),
            "log.sample_every": max(1, self.steps),
            "log.checkpoint_every": max(1, self.steps // 2),
            "log.keep_checkpoints": 1,
            "log.tensorboard": False,
        }


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale(
            "tiny",
            steps=2,
            crop=32,
            base_channels=8,
            num_blocks=2,
            num_patches=32,
            segmenter_steps=4,
            segmenter_width=8,
            segmenter_crop=(32, 64),
            classifier_steps=5,
        ),
        Scale(
            "demo",
            steps=500,
            crop=96,
            base_channels=16,
            num_blocks=6,
            num_patches=128,
            segmenter_steps=300,
            segmenter_crop=(96, 192),
        ),
        Scale(
            "small",
            steps=1500,
            crop=128,
            base_channels=32,
            num_blocks=6,
            num_patches=256,
            segmenter_steps=800,
        ),
    )
}
"""Built-in scales: ``tiny`` (tests), ``demo`` (minutes per run on a CPU: the demo's two variants and two seeds
take 8-15 minutes on 2 cores, measured on two machines), ``small`` (a longer CPU study: a multi-scale run took
38 minutes in bf16 on one core; its 256 px global region wants images at least 256 px high)."""


def read_variants_file(path: str | Path) -> dict[str, Variant]:
    """Variants defined in a YAML file (a list under ``variants:`` of ``name``, ``preset``, ``overrides``
    (dotted keys), ``description`` and optionally ``tiling`` and ``weights``); each override is checked by
    building its config."""
    from semst.config import read_config_file

    data = read_config_file(path)
    entries = data.get("variants")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a list of variants under 'variants:'")
    variants = {}
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "preset" not in entry:
            raise ConfigError(f"{path}: every variant needs a name and a preset, got {entry!r}")
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: the overrides of {entry['name']!r} must be a mapping of dotted keys")
        tiling = entry.get("tiling") or {}
        if not isinstance(tiling, dict):
            raise ConfigError(
                f"{path}: the tiling of {entry['name']!r} must be a mapping (tile, overlap, ...)"
            )
        variant = Variant(
            str(entry["name"]),
            str(entry["preset"]),
            dict(overrides),
            str(entry.get("description", "")),
            tiling,
            str(entry.get("weights", "average")),
        )
        if variant.name in VARIANTS and VARIANTS[variant.name] != variant:
            raise ConfigError(f"{path}: {variant.name!r} is a built-in variant; give yours another name")
        if variant.name in variants:
            raise ConfigError(f"{path}: the variant {variant.name!r} is defined twice")
        try:
            load_config(variant.preset, overrides=variant.overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: variant {variant.name!r}: {exc}") from exc
        variants[variant.name] = variant
    return variants


def resolve_variants(
    names: str | list[str] | tuple[str, ...], extra: dict[str, Variant] | None = None
) -> list[Variant]:
    """Variants from a set name (``table3``), or comma-separated / listed variant names, built in or in
    ``extra`` (e.g. `read_variants_file`)."""
    pool = {**VARIANTS, **(extra or {})}
    if isinstance(names, str):
        names = list(VARIANT_SETS[names]) if names in VARIANT_SETS else [n.strip() for n in names.split(",")]
    unknown = [n for n in names if n not in pool]
    if unknown or not names:
        raise ConfigError(
            f"unknown variants {unknown}; available: {', '.join(pool)}, or a set: {', '.join(VARIANT_SETS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"a variant is listed twice: {names}")
    return [pool[n] for n in names]


def run_config(
    variant: Variant, scale_overrides: dict[str, Any], *, source: str, target: str, seed: int
) -> ExperimentConfig:
    """The config of one run: the variant's preset, the scale, the data and the seed, then the variant's own
    overrides (they win)."""
    overrides = {
        **scale_overrides,
        "data.source": source,
        "data.target": target,
        "train.seed": seed,
        **variant.overrides,
    }
    return load_config(variant.preset, overrides=overrides)
