"""Typed experiment configuration: frozen dataclasses, presets, config files and dotted overrides.

Settings are layered, each layer overriding the one before it:

1. the dataclass defaults below (they equal the ``semst`` preset),
2. a named preset (``src/semst/presets/<name>.yaml``: ``semst``, ``cut``, ``fastcut``),
3. a YAML config file (``--config FILE``; it may name its own ``preset``),
4. dotted overrides (``--set loss.ts_weight=1 train.batch_size=4``) and dedicated CLI flags.

Unknown keys and values of the wrong type are errors that list what is valid. The resolved config is
written to ``RUN_DIR/config.yaml`` and embedded in every checkpoint, so a checkpoint alone rebuilds its
networks. Paper symbols are given in the field comments; docs/configuration.md has the full table.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

PRESETS = ("semst", "cut", "fastcut")

# Largest relative std of the weight average (semst.training.averaging): the uniform average over the whole
# run, the profile t ** gamma with gamma -> 0; longer averages are not power functions.
MAX_EMA_STD = (1 / 12) ** 0.5

# Settings added after the first checkpoints were written whose default has since changed, with the value
# that reproduces how a config WITHOUT the key trained (docs/experiments.md has why each default changed).
# A stored config (a checkpoint's, a run folder's) gets these for missing keys, not today's defaults, so
# that resuming or fine-tuning an older run computes what it computed before.
ABSENT_IN_OLDER_CONFIGS: dict[str, Any] = {
    "loss.ts_projector_gradient": "both",  # semst 0.1: the TS loss trained F through both embeddings
    "multiscale.local_patch_losses": "local",  # before experiment 11: the local hDCE/TS read G_l's own output
    "loss.rsmi_sigma_min": 0.0,  # before experiment 14: the median-heuristic bandwidth had no floor
    "train.ema_std": 0.0,  # before experiment 16: no weight average, the last step's weights translated
}


class ConfigError(ValueError):
    """A configuration value, key, file or preset is invalid."""


@dataclass(frozen=True)
class GeneratorConfig:
    architecture: Literal["resnet"] = "resnet"  # CUT's ResNet encoder-decoder
    base_channels: int = 64  # CUT --ngf
    num_blocks: int = 9  # residual blocks (CUT resnet_9blocks)
    downsample: Literal["antialias", "strided"] = "antialias"  # CUT default: anti-aliased (blur) downsampling
    upsample: Literal["antialias", "transposed"] = "antialias"  # CUT default: anti-aliased upsampling
    norm: Literal["instance", "instance_affine", "none"] = "instance"  # CUT --normG instance (affine=False)
    init: Literal["xavier", "normal", "kaiming", "orthogonal"] = "xavier"  # CUT --init_type
    init_gain: float = 0.02  # CUT --init_gain


@dataclass(frozen=True)
class DiscriminatorConfig:
    architecture: Literal["patchgan"] = "patchgan"  # 70x70 PatchGAN (CUT --netD basic)
    base_channels: int = 64  # CUT --ndf
    num_layers: int = 3  # CUT --n_layers_D
    norm: Literal["instance", "instance_affine", "none"] = "instance"  # CUT --normD
    antialias: bool = True  # blur downsampling as CUT
    init: Literal["xavier", "normal", "kaiming", "orthogonal"] = "xavier"  # CUT --init_type
    init_gain: float = 0.02  # CUT --init_gain


@dataclass(frozen=True)
class ProjectionConfig:
    # Encoder feature taps embedded by F (see semst.networks.taps_from_cut_layers).
    taps: tuple[str, ...] = ("input", "down1", "down2", "res1", "res5")  # = CUT --nce_layers 0,4,8,12,16
    num_patches: int = 256  # random locations per tap, the same for input and output (CUT --num_patches)
    dim: int = 256  # MLP width and embedding size, C -> dim -> dim (CUT --netF_nc)


@dataclass(frozen=True)
class LossConfig:
    adversarial: Literal["lsgan", "vanilla", "nonsaturating"] = "lsgan"  # CUT --gan_mode
    adversarial_weight: float = 1.0  # lambda_GAN
    contrastive: Literal["hdce", "patchnce"] = "hdce"  # hDCE (paper Eq. 7-9) or CUT's PatchNCE
    contrastive_weight: float = 1.0  # lambda_hDCE (lambda_NCE for patchnce)
    identity: bool = True  # also apply the contrastive loss to (y, G(y)), averaged 0.5/0.5 (CUT --nce_idt)
    temperature: float = 0.07  # tau (CUT --nce_T)
    hdce_beta: float = 1.0  # beta, concentration of the hard-negative weights exp(beta z^T z-)
    hdce_weighting: Literal["importance", "src"] = (
        "importance"  # paper's reweighting, or SRC's published form
    )
    ts_weight: float = 2.0  # lambda_TS; the paper's final model uses 2 (Table 3 column "2" = Table 1 "Ours")
    ts_estimator: Literal["kernel", "grid"] = "kernel"  # rSMI on embedding vectors, or SCC's scalar grid
    rsmi_alpha: float = 0.5  # alpha of the relative Pearson divergence
    rsmi_lambda: float | None = None  # ridge lambda of the least-squares fit; None = semst.losses default
    rsmi_sigma: float | None = None  # Gaussian width; None = median-distance heuristic
    rsmi_num_centers: int | None = None  # kernel centres (random subset of the pairs); None = all pairs
    rsmi_sigma_min: float = 0.1  # floor of the median-heuristic bandwidth (flat regions: tiny medians)
    ts_projector_gradient: Literal["both", "queries", "none"] = (
        "none"  # what of F the TS loss trains: nothing (G only), the output's embeddings, or both
    )
    ts_taps: tuple[str, ...] = ()  # encoder taps of the TS loss; empty = every projection tap
    ts_tap_weights: tuple[float, ...] = ()  # TS taps' relative weights (sum scaled to 1); empty = equal
    flip_equivariance: bool = False  # FastCUT's flip-equivariance regulariser


@dataclass(frozen=True)
class DataConfig:
    source: str = (
        ""  # source-domain images (X): a folder (searched recursively) or NAME:PATH, e.g. gta5:/data/GTA5
    )
    target: str = ""  # target-domain images (Y): a folder or NAME:PATH, e.g. cityscapes:/data/cityscapes
    preprocess: Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"] = (
        "resize_and_crop"  # CUT --preprocess: how training crops are cut from the images
    )
    load_size: int = 286  # resize size before cropping (CUT --load_size)
    crop_size: int = 256  # training crop (CUT --crop_size)
    flip: bool = True  # random horizontal flips (CUT: on unless --no_flip)
    max_dataset_size: int | None = None  # use at most this many images per domain
    num_workers: int = 4  # data-loading processes


@dataclass(frozen=True)
class MultiScaleConfig:
    enabled: bool = (
        True  # global + local generators fused by scale attention (paper 3.3); false = single-scale
    )
    global_size: int = 256  # h_g = w_g: side of the downsampled global crop X_g (Eq. 4; the paper: 256)
    scale: int = 2  # downsampling factor T of X_g: it covers global_size * scale image pixels a side
    local_size: int = 256  # h_l = w_l: side of the full-resolution local crop X_l (Eq. 5; the paper: 256)
    image_width: int | None = (
        None  # resize training images to this width (aspect kept) first; None = as stored
    )
    attention_hidden: int = 64  # width of the scale-attention head that predicts M_s from G_g's bottleneck
    attention_init: float = (
        0.5  # M_s where training starts (its head's bias is logit of it): 0.5 trusts both scales alike
    )
    local_patch_losses: Literal["local", "fused", "both"] = (
        "fused"  # what the local hDCE/TS compare with X_l: the fused Y (Eq. 6), G_l's output (local), or both
    )
    local_adversarial_weight: float = (
        0.1  # share of the GAN loss on G_l's own output (HRDA's 0.1); rest: fused
    )
    global_adversarial_weight: float = (
        0.0  # share of the GAN loss on G_g's output at its own scale, against downsampled target crops
    )
    attention_adversarial: bool = (
        True  # the GAN loss trains M_s; false: only the patch losses on Y do (D judges Y with M_s detached)
    )
    split_adversarial: bool = (
        False  # true: the GAN loss on Y trains G_g and M_s only; G_l's comes from its own output alone
    )


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0  # seeds initialisation, data order, augmentation and patch sampling
    batch_size: int = 1  # images per process and step (CUT's recommended 1)
    lr: float = 2e-4  # Adam learning rate for G, D and F
    beta1: float = 0.5  # Adam beta1 (CUT --beta1)
    beta2: float = 0.999  # Adam beta2 (CUT --beta2)
    constant_epochs: int = 200  # epochs at the initial learning rate (CUT --n_epochs)
    decay_epochs: int = 200  # epochs of linear decay to zero (CUT --n_epochs_decay)
    max_steps: int | None = None  # stop after this many optimisation steps (None: the full schedule)
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16", "fp16", "auto"] = (
        "fp32"  # autocast precision of the networks; auto: what is faster here, stored resolved
    )
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    ema_std: float = 0.1  # relative std of the translator's weight average (EDM2's power EMA); 0: off


@dataclass(frozen=True)
class LogConfig:
    log_every: int = 50  # steps between scalar log lines (JSONL, TensorBoard)
    sample_every: int = 1000  # steps between image grids written to RUN_DIR/samples
    checkpoint_every: int = 5000  # steps between checkpoints (a final one is always written)
    keep_checkpoints: int = 3  # most recent checkpoints kept (0 keeps all)
    tensorboard: bool = True  # write TensorBoard events when the tensorboard package is installed


@dataclass(frozen=True)
class ExperimentConfig:
    preset: str = "semst"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    multiscale: MultiScaleConfig = field(default_factory=MultiScaleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists), suitable for YAML/JSON."""
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> ExperimentConfig:
        """Build a config from a (possibly partial) nested dict; missing keys keep their defaults."""
        return _merge(cls(), data, source=source)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any], *, source: str = "config") -> ExperimentConfig:
        """A config as an earlier semst stored it (checkpoint or run folder): like `from_dict`, but a key
        missing from it takes the value it had before the key existed (`ABSENT_IN_OLDER_CONFIGS`)."""
        data = {name: dict(part) if isinstance(part, Mapping) else part for name, part in data.items()}
        for dotted, value in ABSENT_IN_OLDER_CONFIGS.items():
            section, key = dotted.split(".")
            part = data.setdefault(section, {})
            if isinstance(part, dict):  # anything else is an error that from_dict reports
                part.setdefault(key, value)
        return cls.from_dict(data, source=source)

    def inert_keys(self) -> frozenset[str]:
        """Dotted keys whose values this config's training never reads: the multi-scale settings of a
        single-scale model, the TS settings (``loss.ts_*``, ``loss.rsmi_*``) when lambda_TS is 0. A default
        of theirs that changed is no reason to refuse resuming or extending a run (a CUT baseline trained
        before a TS setting existed trains the same today)."""
        keys: set[str] = set()
        if not self.multiscale.enabled:
            keys |= {
                f"multiscale.{f.name}" for f in dataclasses.fields(self.multiscale) if f.name != "enabled"
            }
        if self.loss.ts_weight == 0:
            keys |= {
                f"loss.{f.name}"
                for f in dataclasses.fields(self.loss)
                if f.name.startswith(("ts_", "rsmi_")) and f.name != "ts_weight"
            }
        return frozenset(keys)

    def replace(self, overrides: Mapping[str, Any], *, source: str = "override") -> ExperimentConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"train.batch_size": 4}``."""
        config = self
        for key, value in overrides.items():
            config = _merge(config, _nest(key, value), source=source)
        return config

    def validate(self) -> ExperimentConfig:
        """Check ranges and cross-field constraints; returns self so calls can be chained."""
        problems = []
        positive = {
            "generator.base_channels": self.generator.base_channels,
            "discriminator.base_channels": self.discriminator.base_channels,
            "discriminator.num_layers": self.discriminator.num_layers,
            "projection.num_patches": self.projection.num_patches,
            "projection.dim": self.projection.dim,
            "data.load_size": self.data.load_size,
            "data.crop_size": self.data.crop_size,
            "train.batch_size": self.train.batch_size,
            "train.lr": self.train.lr,
            "loss.temperature": self.loss.temperature,
            "log.log_every": self.log.log_every,
            "log.sample_every": self.log.sample_every,
            "log.checkpoint_every": self.log.checkpoint_every,
        }
        problems += [f"{k} must be > 0 (got {v})" for k, v in positive.items() if v <= 0]
        non_negative = {
            "generator.num_blocks": self.generator.num_blocks,
            "loss.adversarial_weight": self.loss.adversarial_weight,
            "loss.contrastive_weight": self.loss.contrastive_weight,
            "loss.ts_weight": self.loss.ts_weight,
            "train.constant_epochs": self.train.constant_epochs,
            "train.decay_epochs": self.train.decay_epochs,
            "data.num_workers": self.data.num_workers,
            "log.keep_checkpoints": self.log.keep_checkpoints,
        }
        problems += [f"{k} must be >= 0 (got {v})" for k, v in non_negative.items() if v < 0]
        problems += [
            f"{k} must be <= {limit} (got {v})"
            for k, (v, limit) in self.architecture_limits().items()
            if v > limit
        ]
        if not 0 <= self.train.seed < 2**32:
            problems.append(f"train.seed must be in [0, 2**32) (got {self.train.seed})")
        if self.train.max_steps is not None and self.train.max_steps < 0:
            problems.append(f"train.max_steps must be >= 0 or null (got {self.train.max_steps})")
        if self.train.constant_epochs + self.train.decay_epochs == 0 and self.train.max_steps is None:
            problems.append("train.constant_epochs + train.decay_epochs is 0: set them or train.max_steps")
        if not 0.0 <= self.loss.rsmi_alpha < 1.0:
            problems.append(f"loss.rsmi_alpha must be in [0, 1) (got {self.loss.rsmi_alpha})")
        if self.loss.rsmi_lambda is not None and self.loss.rsmi_lambda <= 0:
            problems.append(f"loss.rsmi_lambda must be > 0 or null (got {self.loss.rsmi_lambda})")
        if self.loss.rsmi_sigma is not None and self.loss.rsmi_sigma <= 0:
            problems.append(f"loss.rsmi_sigma must be > 0 or null (got {self.loss.rsmi_sigma})")
        if self.loss.rsmi_num_centers is not None and self.loss.rsmi_num_centers < 2:
            problems.append(f"loss.rsmi_num_centers must be >= 2 or null (got {self.loss.rsmi_num_centers})")
        if not 0 <= self.train.ema_std < MAX_EMA_STD:
            problems.append(
                f"train.ema_std must be 0 (off) or in (0, {MAX_EMA_STD:.4f}) (got {self.train.ema_std})"
            )
        if self.loss.rsmi_sigma_min < 0:
            problems.append(f"loss.rsmi_sigma_min must be >= 0 (got {self.loss.rsmi_sigma_min})")
        unknown = [t for t in self.loss.ts_taps if t not in self.projection.taps]
        if unknown:
            problems.append(
                f"loss.ts_taps {unknown} are not projection taps ({', '.join(self.projection.taps)})"
            )
        ts_taps = self.loss.ts_taps or self.projection.taps
        weights = self.loss.ts_tap_weights
        if weights and len(weights) != len(ts_taps):
            problems.append(
                f"loss.ts_tap_weights has {len(weights)} weights for the {len(ts_taps)} TS taps "
                f"({', '.join(ts_taps)})"
            )
        if weights and (not all(math.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0):
            problems.append(f"loss.ts_tap_weights must be finite, >= 0 and not all 0 (got {list(weights)})")
        if not self.projection.taps:
            problems.append("projection.taps must name at least one encoder tap")
        if self.projection.num_patches < 2 and (self.loss.contrastive_weight > 0 or self.loss.ts_weight > 0):
            problems.append("projection.num_patches must be >= 2 for the contrastive and TS losses")
        if self.data.crop_size % 4:
            problems.append(f"data.crop_size must be a multiple of 4 (got {self.data.crop_size})")
        problems += self.multiscale_problems()
        if self.preset not in PRESETS and self.preset != "custom":
            problems.append(f"preset must be one of {PRESETS} or 'custom' (got {self.preset!r})")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return self

    def architecture_limits(self) -> dict[str, tuple[int, int]]:
        """Key -> (value, largest allowed value) of the sizes that decide how much memory the networks take.

        The limits are well above any published setting (CUT and SemST: 64 channels, 9 blocks, 256 patches
        and dimensions) and keep a typo or a crafted checkpoint from asking for tens of gigabytes: the
        generator's weights grow with ``base_channels**2 * num_blocks``, and the largest allowed one (256
        channels, 32 blocks) holds 616 M weights (2.5 GB; twice that for a multi-scale translator).
        """
        return {
            "generator.base_channels": (self.generator.base_channels, 256),
            "generator.num_blocks": (self.generator.num_blocks, 32),
            "discriminator.base_channels": (self.discriminator.base_channels, 256),
            "discriminator.num_layers": (self.discriminator.num_layers, 8),
            "projection.num_patches": (self.projection.num_patches, 4096),
            "projection.dim": (self.projection.dim, 4096),
            "multiscale.attention_hidden": (self.multiscale.attention_hidden, 1024),
        }

    def multiscale_problems(self) -> list[str]:
        ms = self.multiscale
        if not ms.enabled:
            return []
        problems = [
            f"multiscale.{k} must be > 0 (got {v})"
            for k, v in (
                ("global_size", ms.global_size),
                ("scale", ms.scale),
                ("local_size", ms.local_size),
                ("attention_hidden", ms.attention_hidden),
            )
            if v <= 0
        ]
        if problems:
            return problems
        for name, size in (("global_size", ms.global_size), ("local_size", ms.local_size)):
            if size % 4:
                problems.append(f"multiscale.{name} must be a multiple of 4 (got {size})")
        if ms.local_size % ms.scale:
            problems.append(
                f"multiscale.local_size ({ms.local_size}) must be a multiple of multiscale.scale ({ms.scale}), "
                "so that the local crop covers whole pixels of the global prediction"
            )
        if ms.local_size > ms.global_size * ms.scale:
            problems.append(
                f"multiscale.local_size ({ms.local_size}) must not exceed the global region "
                f"(global_size * scale = {ms.global_size * ms.scale})"
            )
        if ms.image_width is not None and ms.image_width < ms.global_size * ms.scale:
            problems.append(
                f"multiscale.image_width ({ms.image_width}) must be at least the global region "
                f"(global_size * scale = {ms.global_size * ms.scale}) or null"
            )
        if not 0.0 < ms.attention_init < 1.0:
            problems.append(
                f"multiscale.attention_init must be in (0, 1), a sigmoid's output (got {ms.attention_init})"
            )
        for name in ("local_adversarial_weight", "global_adversarial_weight"):
            if not 0.0 <= getattr(ms, name) <= 1.0:
                problems.append(f"multiscale.{name} must be in [0, 1] (got {getattr(ms, name)})")
        if ms.local_adversarial_weight + ms.global_adversarial_weight > 1.0:
            problems.append(
                "multiscale.local_adversarial_weight + multiscale.global_adversarial_weight must be <= 1 "
                "(the rest is the fused output's share)"
            )
        if ms.split_adversarial and ms.local_adversarial_weight == 0.0:
            problems.append(
                "multiscale.split_adversarial=true needs multiscale.local_adversarial_weight > 0: G_l learns "
                "realism from its own output alone, and with a zero share it would learn none"
            )
        if ms.split_adversarial and not ms.attention_adversarial:
            problems.append(
                "multiscale.split_adversarial=true needs multiscale.attention_adversarial=true: with both, the "
                "GAN loss on the fused Y would train G_g alone"
            )
        if not ms.attention_adversarial and ms.local_patch_losses == "local":
            problems.append(
                "multiscale.attention_adversarial=false needs multiscale.local_patch_losses 'fused' or 'both': "
                "with 'local' no loss would train the scale attention"
            )
        return problems


def load_preset(name: str) -> dict[str, Any]:
    """The override dict of a named preset (``src/semst/presets/<name>.yaml``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    text = resources.files("semst").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (values in YAML syntax: ``true``, ``1e-4``, ``[a, b]``, ``null``)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        overrides[key.strip()] = value
    return overrides


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """Resolve defaults, preset, config file and overrides into a validated ``ExperimentConfig``.

    Args:
        preset: preset name; None uses the config file's ``preset`` key, else ``"semst"``.
        config_file: optional YAML file with any subset of the config's sections.
        overrides: dotted keys to values, applied last.
    """
    file_data = read_config_file(config_file) if config_file is not None else {}
    name = preset or file_data.get("preset") or "semst"
    config = ExperimentConfig.from_dict({"preset": name, **load_preset(name)}, source=f"preset {name!r}")
    if file_data:
        config = _merge(config, file_data, source=f"config file {config_file}")
        if preset is not None:
            config = dataclasses.replace(config, preset=preset)
    if overrides:
        config = config.replace(overrides, source="--set")
    return config.validate()


# ----------------------------------------------------------------------------------------------------------
# Typed merging and coercion.


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(obj: Any, data: Mapping[str, Any], *, source: str, prefix: str = "") -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'; valid keys here: {', '.join(prefix + n for n in names)}"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, source=source, prefix=f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], f"{prefix}{key}", source)
    return dataclasses.replace(obj, **changes)


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if origin is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is tuple:
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise fail("a list")
        return tuple(_coerce(v, args[0], key, source) for v in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise fail("true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise fail("an integer")
    if annotation is float:
        if isinstance(value, bool):
            raise fail("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise fail("a number")
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail("a string")
    raise ConfigError(f"{source}: {key} has an unsupported type {annotation!r}")  # pragma: no cover
