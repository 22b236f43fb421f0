from __future__ import annotations

import pytest

from semst.config import (
    ABSENT_IN_OLDER_CONFIGS,
    PRESETS,
    ConfigError,
    ExperimentConfig,
    load_config,
    load_preset,
    parse_overrides,
)


def test_presets_hold_the_published_settings():
    semst, cut, fastcut = (load_config(p) for p in ("semst", "cut", "fastcut"))
    assert (semst.loss.contrastive, semst.loss.ts_weight, semst.loss.identity) == ("hdce", 2.0, True)
    assert (cut.loss.contrastive, cut.loss.contrastive_weight, cut.loss.ts_weight, cut.loss.identity) == (
        "patchnce",
        1.0,
        0.0,
        True,
    )
    assert (fastcut.loss.contrastive_weight, fastcut.loss.identity, fastcut.loss.flip_equivariance) == (
        10.0,
        False,
        True,
    )
    assert (fastcut.train.constant_epochs, fastcut.train.decay_epochs) == (150, 50)
    for config in (semst, cut, fastcut):
        # CUT's shared defaults: Adam 2e-4 (0.5, 0.999), LSGAN, tau 0.07, 256 patches, 286 -> 256 crops, batch 1.
        assert (config.train.lr, config.train.beta1, config.train.beta2) == (2e-4, 0.5, 0.999)
        assert (config.loss.adversarial, config.loss.temperature) == ("lsgan", 0.07)
        assert (config.projection.num_patches, config.projection.dim) == (256, 256)
        assert (config.data.load_size, config.data.crop_size, config.train.batch_size) == (286, 256, 1)
        assert config.projection.taps == ("input", "down1", "down2", "res1", "res5")
        assert (config.generator.base_channels, config.generator.num_blocks) == (64, 9)
    assert semst.preset == "semst" and cut.preset == "cut"
    # SemST is multi-scale with 256 px global and local crops (section 4.1); CUT and FastCUT are single-scale.
    ms = semst.multiscale
    assert (ms.enabled, ms.global_size, ms.local_size, ms.scale) == (True, 256, 256, 2)
    assert not cut.multiscale.enabled and not fastcut.multiscale.enabled


def test_dataclass_defaults_equal_the_semst_preset():
    assert ExperimentConfig().to_dict() == load_config("semst").to_dict()


def test_multiscale_checks_apply_only_when_it_is_on():
    load_config(overrides={"multiscale.enabled": False, "multiscale.local_size": 1024})  # ignored: off


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid presets: semst, cut, fastcut"):
        load_preset("cyclegan")


def test_precedence_preset_then_file_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: cut\ntrain:\n  batch_size: 4\n  lr: 1.0e-4\nloss:\n  ts_weight: 0.5\n")
    config = load_config(config_file=path, overrides={"train.batch_size": 8})
    assert config.preset == "cut"  # the file's preset is the base
    assert config.loss.contrastive == "patchnce"  # from the cut preset
    assert config.loss.ts_weight == 0.5  # the file beats the preset
    assert config.train.lr == 1e-4
    assert config.train.batch_size == 8  # overrides beat the file
    explicit = load_config("semst", path)
    assert (
        explicit.preset == "semst" and explicit.loss.contrastive == "hdce" and explicit.loss.ts_weight == 0.5
    )


def test_overrides_are_typed_from_strings():
    overrides = parse_overrides(
        [
            "train.lr=1e-4",
            "loss.identity=false",
            "projection.taps=input,res1",
            "train.max_steps=null",
            "data.max_dataset_size=10",
            "loss.rsmi_lambda=0.01",
        ]
    )
    config = load_config(overrides=overrides)
    assert config.train.lr == 1e-4 and isinstance(config.train.lr, float)
    assert config.loss.identity is False
    assert config.projection.taps == ("input", "res1")
    assert config.train.max_steps is None
    assert config.data.max_dataset_size == 10
    assert config.loss.rsmi_lambda == 0.01


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss.foo": 1}, r"unknown key 'loss.foo'; valid keys here: loss.adversarial, "),
        ({"nope.x": 1}, r"unknown key 'nope'"),
        ({"train.batch_size": "four"}, r"train.batch_size must be an integer, got 'four'"),
        ({"train.batch_size": 1.5}, r"must be an integer"),
        (
            {"loss.adversarial": "wgan"},
            r"loss.adversarial must be one of 'lsgan', 'vanilla', 'nonsaturating'",
        ),
        ({"loss.identity": "maybe"}, r"must be true or false"),
        ({"train.batch_size": 0}, r"train.batch_size must be > 0"),
        ({"data.crop_size": 30}, r"multiple of 4"),
        ({"loss.rsmi_alpha": 1.0}, r"rsmi_alpha must be in \[0, 1\)"),
        ({"train": 3}, r"train must be a mapping"),
        ({"multiscale.local_size": 255}, r"multiscale.local_size must be a multiple of 4"),
        ({"multiscale.scale": 3, "multiscale.local_size": 256}, r"local_size \(256\) must be a multiple of"),
        (
            {"multiscale.local_size": 1024},
            r"must not exceed the global region \(global_size \* scale = 512\)",
        ),
        ({"multiscale.image_width": 300}, r"image_width \(300\) must be at least the global region"),
        ({"multiscale.local_adversarial_weight": 1.5}, r"local_adversarial_weight must be in \[0, 1\]"),
        ({"multiscale.scale": 0}, r"multiscale.scale must be > 0"),
    ],
)
def test_bad_values_get_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_malformed_override_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["train.batch_size"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=f"config file {bad} is not valid YAML"):
        load_config(config_file=bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(config_file=listing)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "missing.yaml")


@pytest.mark.parametrize("preset", PRESETS)
def test_yaml_round_trip(preset, tmp_path):
    config = load_config(preset, overrides={"data.source": "a b/ü", "train.max_steps": 7})
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(config_file=path) == config
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(AttributeError):
        config.train.lr = 1.0  # type: ignore[misc]


def test_a_stored_config_without_a_newer_setting_keeps_the_value_it_trained_with():
    """semst 0.1 stored no loss.ts_projector_gradient: its runs trained with "both", today's default is
    "none"; a stored config without the key must mean what it meant when it was written."""
    stored = ExperimentConfig().to_dict()
    del stored["loss"]["ts_projector_gradient"]
    assert ExperimentConfig.from_dict(stored).loss.ts_projector_gradient == "none"  # a config file: today's
    assert ExperimentConfig.from_stored(stored).loss.ts_projector_gradient == "both"  # a checkpoint: then's
    assert "ts_projector_gradient" not in stored["loss"]  # the caller's dict is not changed
    stored["loss"]["ts_projector_gradient"] = "queries"
    assert ExperimentConfig.from_stored(stored).loss.ts_projector_gradient == "queries"  # present: kept
    with pytest.raises(ConfigError, match="loss"):
        ExperimentConfig.from_stored({**stored, "loss": "hdce"})  # a malformed section is still an error


@pytest.mark.parametrize("dotted", sorted(ABSENT_IN_OLDER_CONFIGS))
def test_every_changed_default_loads_its_old_value_from_a_stored_config_without_the_key(dotted):
    """Each entry names a default that changed (else it would not be needed); a stored config that lacks
    the key trains as it did (e.g. the bandwidth floor of experiment 14: older runs had none)."""
    section, key = dotted.split(".")
    old = ABSENT_IN_OLDER_CONFIGS[dotted]
    assert getattr(getattr(ExperimentConfig(), section), key) != old
    stored = ExperimentConfig().to_dict()
    del stored[section][key]
    assert getattr(getattr(ExperimentConfig.from_stored(stored), section), key) == old
    assert getattr(getattr(ExperimentConfig.from_dict(stored), section), key) != old
