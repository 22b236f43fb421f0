"""End-to-end runs of the command line on tiny data: train -> translate -> info, errors, help texts."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from semst import checkpoint as ckpt
from semst.cli import build_parser, main

from ..conftest import TINY_MULTISCALE, TINY_OVERRIDES, write_images


def _train_args(source, target, out, *extra):
    sets = [f"{k}={v}" for k, v in TINY_OVERRIDES.items() if k not in ("data.crop_size", "data.load_size")]
    return [
        "train",
        "--source",
        str(source),
        "--target",
        str(target),
        "--out",
        str(out),
        "--crop-size",
        "32",
        "--no-progress",
        *extra,
        "--set",
        *sets,
    ]


def test_train_then_translate_round_trip(tmp_path, image_folders, capsys):
    source, target = image_folders
    run = tmp_path / "run"
    assert main(_train_args(source, target, run, "--max-steps", "2")) == 0
    assert "translate with: semst translate" in capsys.readouterr().out
    assert (
        (run / "config.yaml").is_file()
        and (run / "scalars.jsonl").is_file()
        and (run / "train.log").is_file()
    )
    assert list((run / "samples").glob("*.png"))
    assert ckpt.read_metadata(ckpt.resolve_checkpoint(run))["step"] == 2
    # inputs: a folder with a nested folder and odd sizes, plus a single file
    inputs = tmp_path / "inputs"
    write_images(inputs, 2, (37, 21), seed=5)
    write_images(inputs / "nested" / "deeper", 1, (8, 8), seed=6, suffix=".jpg")
    single = write_images(tmp_path / "single", 1, (50, 30), seed=7, suffix=".bmp")[0]
    out = tmp_path / "out"
    assert main(["translate", str(run), str(inputs), str(single), "-o", str(out), "--no-progress"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["img_00.bmp", "img_00.png", "img_01.png", "nested/deeper/img_00.jpg"]
    assert Image.open(out / "img_01.png").size == (37, 21)
    assert Image.open(out / "img_00.bmp").size == (50, 30)
    assert Image.open(out / "nested/deeper/img_00.jpg").size == (8, 8)
    assert "translated 4 image(s)" in capsys.readouterr().out
    # --ext png forces the format; --no-overwrite skips what exists
    assert main(["translate", str(run), str(single), "-o", str(out), "--ext", "png", "--no-progress"]) == 0
    assert (out / "img_00.png").is_file()
    assert main(["translate", str(run), str(inputs), "-o", str(out), "--no-overwrite", "--no-progress"]) == 0
    assert "skipped 3 existing" in capsys.readouterr().out
    assert main(["info", str(run)]) == 0
    assert "step        2" in capsys.readouterr().out


def test_translate_skips_corrupt_images_and_fails_overall(tmp_path, image_folders, capsys):
    source, target = image_folders
    run = tmp_path / "run"
    assert main(_train_args(source, target, run, "--max-steps", "1")) == 0
    inputs = tmp_path / "inputs"
    write_images(inputs, 2, (16, 16), seed=3)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    capsys.readouterr()
    assert main(["translate", str(run), str(inputs), "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "translated 2 image(s)" in captured.out and "1 failed" in captured.out
    assert "broken.png" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_00.png", "img_01.png"]


def test_user_errors_are_one_line_messages(tmp_path, image_folders, capsys):
    source, target = image_folders
    assert main(["translate", str(tmp_path / "nowhere"), str(source), "-o", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    pickle_file = tmp_path / "latest_net_G.pth"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    assert main(["translate", str(pickle_file), str(source), "-o", str(tmp_path / "o")]) == 1
    assert "never unpickles" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--source",
                str(source),
                "--target",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "r"),
                "--max-steps",
                "1",
                "--no-progress",
                "--set",
                *[f"{k}={v}" for k, v in TINY_OVERRIDES.items()],
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "semst train: error:" in err and "empty" in err
    assert main(["train", "--out", str(tmp_path / "r2"), "--set", "train.batch_size=zero"]) == 1
    assert "train.batch_size must be an integer" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(tmp_path, capsys):
    assert (
        main(["train", "--out", str(tmp_path / "r"), "--preset", "cut", "--crop-size", "128", "--dry-run"])
        == 0
    )
    text = capsys.readouterr().out
    assert "preset: cut" in text and "crop_size: 128" in text and "load_size: 143" in text
    assert not (tmp_path / "r").exists()


def test_help_documents_every_option_with_defaults():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) == {
        "train",
        "translate",
        "info",
        "refine",
        "prepare",
        "export",
        "convert",
        "world",
        "segmenter",
        "evaluate",
        "study",
        "demo",
    }
    train_help = subparsers["train"].format_help()
    for option in (
        "--source",
        "--target",
        "--out",
        "--preset",
        "--crop-size",
        "--max-steps",
        "--config",
        "--set",
        "--resume",
        "--dry-run",
    ):
        assert option in train_help
    assert "{semst,cut,fastcut}" in train_help
    translate_help = subparsers["translate"].format_help()
    assert "CHECKPOINT_OR_RUN_DIR" in translate_help and "-o OUTDIR" in translate_help
    assert "(default: auto)" in translate_help


def test_python_dash_m_semst_runs():
    result = subprocess.run(
        [sys.executable, "-m", "semst", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("semst ")


def test_demo_quick(tmp_path, capsys):
    """The whole demo on a tiny world: the study of SemST and CUT over two seeds runs, its report and results
    exist, and running the demo again reuses what is complete (same results, nothing retrained)."""
    pytest.importorskip("skimage")
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--jobs", "1"]) == 0
    assert "report.html" in capsys.readouterr().out
    results = json.loads((out / "study" / "results.json").read_text())
    assert sorted((r["variant"], r["seed"]) for r in results["runs"]) == [
        ("CUT", 0),
        ("CUT", 1),
        ("SemST", 0),
        ("SemST", 1),
    ]
    for run in results["runs"]:
        assert 0 <= run["distortion"]["pixel_accuracy"] <= 1 and len(run["distortion"]["per_class_iou"]) == 19
        assert 0 <= run["realism"]["target_share"] <= 1
    assert set(results["references"]) == {"source", "target"}
    translated = sorted(
        p.name for p in (out / "study" / "runs" / "SemST" / "seed0" / "translated").rglob("*.png")
    )
    assert translated == ["test_00000.png", "test_00001.png"]
    page = (out / "study" / "report.html").read_text()
    for part in ("What the seeds say", "Differences from CUT", "Which classes turned into which"):
        assert part in page
    for source in re.findall(r"src='([^']+)'", page):
        assert (out / "study" / source).is_file(), source
    mtime = (out / "study" / "segmenter.safetensors").stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert (out / "study" / "segmenter.safetensors").stat().st_mtime_ns == mtime  # reused, not retrained
    again = json.loads((out / "study" / "results.json").read_text())
    assert again["runs"] == results["runs"]


def test_cut_style_data_root(tmp_path, capsys):
    write_images(tmp_path / "data" / "trainA", 2, (36, 36), seed=1)
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--dry-run"]) == 1
    assert "missing trainB" in capsys.readouterr().err
    write_images(tmp_path / "data" / "trainB", 2, (36, 36), seed=2)
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert (
        f"source: {tmp_path / 'data' / 'trainA'}" in text
        and f"target: {tmp_path / 'data' / 'trainB'}" in text
    )
    assert (
        main(["train", "--data", str(tmp_path / "data"), "--source", "x", "--out", str(tmp_path / "r")]) == 1
    )
    assert "not both" in capsys.readouterr().err


def test_translate_with_tiles(tmp_path, image_folders, capsys):
    source, target = image_folders
    run = tmp_path / "run"
    assert main(_train_args(source, target, run, "--max-steps", "1")) == 0
    big = write_images(tmp_path / "big", 1, (150, 90), seed=9)[0]
    out = tmp_path / "out"
    args = [
        "translate",
        str(run),
        str(big),
        "-o",
        str(out),
        "--tile",
        "64",
        "--tile-overlap",
        "16",
        "--no-progress",
    ]
    assert main(args) == 0
    assert Image.open(out / big.name).size == (150, 90)
    margined = tmp_path / "margined"
    assert main([*args[:4], str(margined), *args[5:], "--margin", "16"]) == 0
    assert Image.open(margined / big.name).size == (150, 90)
    assert Image.open(margined / big.name).tobytes() != Image.open(out / big.name).tobytes()


def test_multiscale_train_translate_with_fusion_panels_and_info(tmp_path, image_folders, capsys):
    """The switch picks the model kind; a multi-scale checkpoint translates at full size and writes the
    fusion picture; info says what it is; the switch also works in the other direction."""
    source, target = image_folders
    run = tmp_path / "run"
    sets = [f"{k}={v}" for k, v in TINY_MULTISCALE.items() if k != "multiscale.enabled"]
    assert main(_train_args(source, target, run, "--max-steps", "2", "--multiscale") + sets) == 0
    assert ckpt.read_metadata(ckpt.resolve_checkpoint(run))["config"]["multiscale"]["enabled"] is True
    assert "multi-scale run" in (run / "train.log").read_text()
    big = write_images(tmp_path / "big", 1, (150, 90), seed=9)[0]
    out, panels = tmp_path / "out", tmp_path / "panels"
    args = ["translate", str(run), str(big), "-o", str(out), "--fusion-panels", str(panels), "--no-progress"]
    assert main(args) == 0
    assert Image.open(out / big.name).size == (150, 90)
    panel = Image.open(panels / big.with_suffix(".png").name)
    assert panel.width > 4 * panel.height  # five images in a row
    assert main(["info", str(run)]) == 0
    assert "multi-scale global 32 px crops of 64 px regions" in capsys.readouterr().out
    for bad, message in (
        (["--tile-overlap", "600"], "must be smaller than the tile (512 px)"),  # the default tile
        (
            ["--tile", "64", "--tile-overlap", "64"],
            "--tile-overlap (64 px) must be smaller than the tile (64 px)",
        ),
        (["--tile-batch", "0"], "--tile-batch must be a positive number"),
        (["--tile-overlap", "-1"], "--tile-overlap must be >= 0"),
        (["--margin", "-2"], "--margin must be >= 0 pixels"),
    ):
        assert main(["translate", str(run), str(big), "-o", str(tmp_path / "bad"), *bad]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written

    single = tmp_path / "single"
    assert main(_train_args(source, target, single, "--max-steps", "1", "--single-scale")) == 0
    capsys.readouterr()
    code = main(
        ["translate", str(single), str(big), "-o", str(tmp_path / "o2"), "--fusion-panels", str(panels)]
    )
    assert code != 0
    assert "single-scale model" in capsys.readouterr().err


def test_scale_switches_in_dry_run(tmp_path, capsys):
    for flag, expected in (("--single-scale", "false"), ("--multiscale", "true")):
        assert main(["train", "--out", str(tmp_path / flag), "--preset", "cut", flag, "--dry-run"]) == 0
        text = capsys.readouterr().out
        assert f"multiscale:\n  enabled: {expected}" in text
    assert main(["train", "--out", str(tmp_path / "x"), "--dry-run"]) == 0
    assert "multiscale:\n  enabled: true" in capsys.readouterr().out  # the semst preset's default
    # --crop-size sets the single-scale crop and both multi-scale crops; explicit --set values win.
    args = ["train", "--out", str(tmp_path / "y"), "--crop-size", "128", "--dry-run"]
    assert main(args + ["--set", "multiscale.local_size=64"]) == 0
    text = capsys.readouterr().out
    assert "crop_size: 128" in text and "global_size: 128" in text and "local_size: 64" in text
