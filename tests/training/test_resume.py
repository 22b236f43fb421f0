"""Resuming continues a run exactly, and checkpoint writes never damage the last good checkpoint."""

from __future__ import annotations

import pytest
import torch

from semst import checkpoint as ckpt
from semst.config import ConfigError
from semst.training import loop
from semst.training.loop import RunDirError, train

from ..conftest import TINY_MULTISCALE


def _all_tensors(path):
    tensors = ckpt.load_tensors(path)
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}


@pytest.mark.parametrize(
    ("preset", "extra"),
    [("semst", {}), ("fastcut", {}), ("semst", TINY_MULTISCALE), ("semst", {"train.ema_std": 0.0})],
    ids=["semst", "fastcut", "semst-multiscale", "semst-no-weight-average"],
)
def test_two_plus_two_steps_equal_four(tmp_path, image_folders, make_config, preset, extra):
    source, target = image_folders
    straight = train(
        make_config(preset, source, target, **{"train.max_steps": 4, **extra}),
        tmp_path / "straight",
        progress=False,
    )
    first = train(
        make_config(preset, source, target, **{"train.max_steps": 2, **extra}),
        tmp_path / "split",
        progress=False,
    )
    assert ckpt.read_metadata(first)["step"] == 2
    resumed = train(
        make_config(preset, source, target, **{"train.max_steps": 4, **extra}),
        tmp_path / "split",
        resume=True,
        progress=False,
    )
    assert ckpt.read_metadata(resumed)["step"] == 4
    a, b = _all_tensors(straight), _all_tensors(resumed)
    assert a.keys() == b.keys()
    assert any(k.startswith("optimizer.translator.state.") for k in a)
    multiscale = extra.get("multiscale.enabled", False)
    assert any(k.startswith("translator.attention." if multiscale else "translator.generator.") for k in a)
    averaged = preset == "semst" and extra.get("train.ema_std") != 0.0  # the semst preset averages
    assert any(k.startswith("ema.translator.") for k in a) == averaged
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming"


def test_same_seed_same_run_different_seed_different_run(tmp_path, image_folders, make_config):
    source, target = image_folders
    runs = [
        train(
            make_config("semst", source, target, **{"train.max_steps": 2, "train.seed": seed}),
            tmp_path / str(i),
            progress=False,
        )
        for i, seed in enumerate((0, 0, 1))
    ]
    a, b, c = (ckpt.load_tensors(p, prefixes=["translator."]) for p in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_changed_settings_and_accepts_run_length(tmp_path, image_folders, make_config):
    source, target = image_folders
    run = tmp_path / "run"
    train(make_config("semst", source, target, **{"train.max_steps": 1}), run, progress=False)
    with pytest.raises(ConfigError, match=r"loss.ts_weight: 2.0 -> 1.0"):
        train(
            make_config("semst", source, target, **{"train.max_steps": 2, "loss.ts_weight": 1.0}),
            run,
            resume=True,
            progress=False,
        )
    last = train(
        make_config("semst", source, target, **{"train.max_steps": 2, "log.log_every": 5}),
        run,
        resume=True,
        progress=False,
    )
    assert ckpt.read_metadata(last)["step"] == 2


def test_a_run_of_an_older_semst_resumes_with_the_settings_it_trained_with(
    tmp_path, image_folders, make_config
):
    """A stored config without a key whose default changed since (semst 0.1 wrote neither) resumes with the
    value it trained with, not today's default; so does the translator built from it."""
    from semst.translators import Translator

    source, target = image_folders
    run = tmp_path / "run"
    config = make_config("semst", source, target, **{"train.max_steps": 1, **TINY_MULTISCALE})
    assert config.loss.ts_projector_gradient == "none"  # the default since experiment 1; semst 0.1: "both"
    first = train(config, run, progress=False)
    meta = ckpt.read_metadata(first)
    del meta["config"]["loss"]["ts_projector_gradient"]  # semst 0.1 did not have the setting
    ckpt.save_checkpoint(first, ckpt.load_tensors(first), meta)
    resumed = loop.resume_config(run, {"train.max_steps": 2})
    assert resumed.loss.ts_projector_gradient == "both"
    assert Translator.from_checkpoint(first).config.loss.ts_projector_gradient == "both"
    with pytest.raises(ConfigError, match=r"loss.ts_projector_gradient: 'both' -> 'none'"):  # not silently
        train(config.replace({"train.max_steps": 2}), run, resume=True, progress=False)
    last = train(resumed, run, resume=True, progress=False)
    assert ckpt.read_metadata(last)["config"]["loss"]["ts_projector_gradient"] == "both"


def test_existing_run_is_never_overwritten(tmp_path, image_folders, make_config):
    source, target = image_folders
    run = tmp_path / "run"
    first = train(make_config("semst", source, target, **{"train.max_steps": 1}), run, progress=False)
    before = first.read_bytes()
    with pytest.raises(RunDirError, match="already holds a run"):
        train(make_config("semst", source, target, **{"train.max_steps": 1}), run, progress=False)
    assert first.read_bytes() == before
    with pytest.raises(RunDirError, match="no checkpoints to resume"):
        train(make_config("semst", source, target), tmp_path / "empty", resume=True, progress=False)


def test_crash_while_checkpointing_keeps_the_last_good_one(tmp_path, image_folders, make_config, monkeypatch):
    source, target = image_folders
    run = tmp_path / "run"
    good = train(make_config("semst", source, target, **{"train.max_steps": 1}), run, progress=False)
    good_bytes = good.read_bytes()

    def killed(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 100)
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(ckpt, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        train(
            make_config("semst", source, target, **{"train.max_steps": 2}), run, resume=True, progress=False
        )
    monkeypatch.undo()
    assert good.read_bytes() == good_bytes
    assert [p.name for p in (run / "checkpoints").iterdir()] == [good.name]
    resumed = train(
        make_config("semst", source, target, **{"train.max_steps": 2}), run, resume=True, progress=False
    )
    assert ckpt.read_metadata(resumed)["step"] == 2


def test_old_checkpoints_are_pruned(tmp_path, image_folders, make_config):
    source, target = image_folders
    run = tmp_path / "run"
    train(
        make_config(
            "semst",
            source,
            target,
            **{"train.max_steps": 5, "log.checkpoint_every": 1, "log.keep_checkpoints": 2},
        ),
        run,
        progress=False,
    )
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        ckpt.checkpoint_name(4),
        ckpt.checkpoint_name(5),
    ]


def test_steps_follow_the_epoch_schedule(image_folders, make_config):
    source, target = image_folders
    config = make_config("semst", source, target, **{"train.constant_epochs": 2, "train.decay_epochs": 3})
    assert loop.total_steps(config, steps_per_epoch=4) == 20
    assert loop.total_steps(make_config("semst", source, target, **{"train.max_steps": 7}), 4) == 7


def test_small_images_get_a_multiscale_warning(tmp_path, make_config):
    from semst.data import UnpairedImages
    from semst.training.loop import size_warning
    from semst.translators import translator_class

    from ..conftest import write_images

    write_images(tmp_path / "A", 2, (50, 40), seed=0)
    write_images(tmp_path / "B", 2, (200, 120), seed=1)
    dataset = UnpairedImages(tmp_path / "A", tmp_path / "B")

    def warning(config):
        return size_warning(translator_class(config).crop_spec(config), dataset)

    text = warning(make_config("semst", **TINY_MULTISCALE))  # global region 64 px
    assert "2 of the first images" in text and "img_00.png (50x40)" in text
    assert "--single-scale" in text
    assert warning(make_config("semst")) is None  # single-scale: no warning
    wide = make_config("semst", **{**TINY_MULTISCALE, "multiscale.image_width": 64})
    assert "(200x120)" in warning(wide)  # judged by the size after the configured resize (64x38)
    assert warning(make_config("semst", **{**TINY_MULTISCALE, "multiscale.image_width": 128})) is None


def test_settings_a_run_never_reads_are_no_difference():
    """A single-scale CUT run stored before a TS or multi-scale setting existed (it then loads with the old
    value) trains as today's: those keys are not differences. A multi-scale run with TS is refused."""
    from semst.config import ExperimentConfig, load_config
    from semst.training.loop import config_differences

    cut = load_config("cut")
    older = cut.replace(
        {
            "loss.ts_projector_gradient": "both",
            "multiscale.local_patch_losses": "local",
            "loss.rsmi_alpha": 0.1,
        }
    )
    assert config_differences(older, cut) == {}
    assert config_differences(older, cut.replace({"train.lr": 1e-3})) == {"train.lr": (2e-4, 1e-3)}
    semst = load_config("semst")
    older_semst = semst.replace(
        {
            "loss.ts_projector_gradient": "both",
            "multiscale.local_patch_losses": "local",
            "loss.rsmi_sigma_min": 0.0,
        }
    )
    assert set(config_differences(older_semst, semst)) == {
        "loss.ts_projector_gradient",
        "multiscale.local_patch_losses",
        "loss.rsmi_sigma_min",
    }
    # a key is ignored only when neither run reads it: switching multi-scale on is a difference of everything
    assert "multiscale.enabled" in config_differences(cut, cut.replace({"multiscale.enabled": True}))
    assert load_config("cut").inert_keys() >= {
        "loss.ts_projector_gradient",
        "loss.rsmi_alpha",
        "loss.ts_taps",
    }
    assert "loss.ts_weight" not in cut.inert_keys() and not ExperimentConfig().inert_keys()
