"""Variants, sets and scales: what each run's config is."""

from __future__ import annotations

import pytest

from semst.config import ConfigError
from semst.study.variants import SCALES, VARIANT_SETS, VARIANTS, Variant, resolve_variants, run_config


def test_table3_is_the_papers_ablation_plus_the_baselines():
    assert VARIANT_SETS["table3"] == (
        "SemST",
        "SemST-single-scale",
        "SemST-PatchNCE",
        "SemST-TS0",
        "SemST-TS1",
        "CUT",
        "FastCUT",
    )
    scale = SCALES["demo"].overrides(train_images=60)
    configs = {name: run_config(VARIANTS[name], scale, source="A", target="B", seed=3) for name in VARIANTS}
    full = configs["SemST"]
    assert full.multiscale.enabled and full.loss.contrastive == "hdce" and full.loss.ts_weight == 2.0
    assert not configs["SemST-single-scale"].multiscale.enabled
    assert (
        configs["SemST-PatchNCE"].loss.contrastive == "patchnce"
        and configs["SemST-PatchNCE"].loss.ts_weight == 2
    )
    assert configs["SemST-TS0"].loss.ts_weight == 0 and configs["SemST-TS1"].loss.ts_weight == 1
    assert configs["CUT"].loss.contrastive == "patchnce" and configs["CUT"].loss.ts_weight == 0
    assert configs["FastCUT"].loss.flip_equivariance
    assert full.loss.rsmi_sigma_min == 0.1 and configs["SemST-sigmamin0.25"].loss.rsmi_sigma_min == 0.25
    assert configs["SemST-sigmamin0"].loss.rsmi_sigma_min == 0
    assert full.train.ema_std == 0.1 and configs["SemST-ema0"].train.ema_std == 0
    assert configs["CUT"].train.ema_std == 0 and configs["CUT-ema0.1"].train.ema_std == 0.1
    for config in configs.values():  # every variant runs at the same scale, with the run's data and seed
        assert config.train.max_steps == 500 and config.generator.base_channels == 16
        assert config.data.source == "A" and config.data.target == "B" and config.train.seed == 3
        assert config.data.crop_size == 96 and config.multiscale.local_size == 96
        assert config.train.constant_epochs + config.train.decay_epochs == 9  # ceil(500 steps / 60 images)


def test_variant_overrides_win_over_the_scale():
    variant = Variant("wide", "semst", {"generator.base_channels": 24})
    config = run_config(variant, SCALES["tiny"].overrides(4), source="A", target="B", seed=0)
    assert config.generator.base_channels == 24


def test_resolving_names_and_errors():
    assert [v.name for v in resolve_variants("demo")] == ["SemST", "CUT"]
    assert [v.name for v in resolve_variants("CUT,SemST-TS0")] == ["CUT", "SemST-TS0"]
    with pytest.raises(ConfigError, match="unknown variants"):
        resolve_variants("CUT,Pix2Pix")
    with pytest.raises(ConfigError, match="listed twice"):
        resolve_variants(["CUT", "CUT"])
    with pytest.raises(ConfigError, match="unknown preset"):
        Variant("x", "pix2pix")
    with pytest.raises(ConfigError, match="folder name"):
        Variant("a/b", "cut")
    assert Variant.from_dict(VARIANTS["SemST-TS1"].to_dict()) == VARIANTS["SemST-TS1"]


def test_variants_from_a_file(tmp_path):
    from semst.study.variants import read_variants_file

    path = tmp_path / "variants.yaml"
    path.write_text(
        "variants:\n"
        "  - name: SemST-TS4\n    preset: semst\n    overrides: {loss.ts_weight: 4}\n    description: more TS\n"
        "  - name: CUT-long\n    preset: cut\n    overrides:\n      train.max_steps: 9\n"
        "  - name: SemST-small-tiles\n    preset: semst\n    tiling: {tile: 96, overlap: 48}\n"
        "  - name: SemST-last-weights\n    preset: semst\n    weights: last\n"
    )
    extra = read_variants_file(path)
    assert extra["SemST-TS4"] == Variant("SemST-TS4", "semst", {"loss.ts_weight": 4}, "more TS")
    assert [v.name for v in resolve_variants("CUT,SemST-TS4", extra)] == ["CUT", "SemST-TS4"]
    assert extra["SemST-TS4"].multiscale(SCALES["tiny"]) and not extra["CUT-long"].multiscale(SCALES["tiny"])
    assert extra["SemST-small-tiles"].tiling == {"tile": 96, "overlap": 48}
    assert Variant.from_dict(extra["SemST-small-tiles"].to_dict()) == extra["SemST-small-tiles"]
    with pytest.raises(ConfigError, match="unknown tiling settings"):
        Variant("x", "semst", tiling={"tiles": 4})
    assert extra["SemST-last-weights"].weights == "last" and extra["SemST-TS4"].weights == "average"
    assert Variant.from_dict(extra["SemST-last-weights"].to_dict()) == extra["SemST-last-weights"]
    assert "weights" not in extra["SemST-TS4"].to_dict()  # older study.json files stay as they were
    with pytest.raises(ConfigError, match="weights must be one of average, last, got 'first'"):
        Variant("x", "semst", weights="first")
    path.write_text("variants:\n  - name: bad\n    preset: semst\n    overrides: {loss.nope: 1}\n")
    with pytest.raises(ConfigError, match="variant 'bad'.*unknown key 'loss.nope'"):
        read_variants_file(path)
    path.write_text("variants:\n  - name: CUT\n    preset: semst\n")
    with pytest.raises(ConfigError, match="built-in variant"):
        read_variants_file(path)
    path.write_text("something: else\n")
    with pytest.raises(ConfigError, match="a list of variants"):
        read_variants_file(path)


def test_a_variant_is_its_settings_not_its_description():
    """A study extended after a built-in variant's description was reworded still holds the same variant;
    another override is another variant."""
    a = Variant("SemST-x", "semst", {"loss.ts_weight": 1.0}, "old words")
    assert a == Variant("SemST-x", "semst", {"loss.ts_weight": 1.0}, "new words")
    assert a != Variant("SemST-x", "semst", {"loss.ts_weight": 2.0}, "old words")
