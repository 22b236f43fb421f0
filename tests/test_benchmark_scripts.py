"""The benchmark scripts run (at tiny sizes: these check that they work, not how fast anything is).

Marked ``slow``; the CUT comparison also needs a checkout of CUT's code, named by ``SEMST_CUT_CHECKOUT``
(``git clone https://github.com/taesungp/contrastive-unpaired-translation``), and is skipped without it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _script_constant(script: str, name: str):
    """A module-level constant of a benchmark script (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.skipif(
    not os.environ.get("SEMST_CUT_CHECKOUT"), reason="SEMST_CUT_CHECKOUT names no CUT checkout"
)
def test_cut_comparison_runs_one_tiny_step_of_every_variant(tmp_path):
    result = _run(
        "cut_comparison.py",
        "--size", "64", "--base-channels", "8", "--num-patches", "32",
        "--steps", "1", "--warmup", "0", "--threads", "1", "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "out.json").read_text())
    assert sorted(figures["median_s"]) == ["cut", "cut-code", "semst", "semst-ms"]
    assert all(len(times) == 1 and times[0] > 0 for times in figures["times_s"].values())
    assert "x CUT's code" in result.stdout


def test_cut_comparison_counts_flops_of_semst_steps_without_cut(tmp_path):
    result = _run(
        "cut_comparison.py", "--variants", "cut,semst,semst-ms", "--flops",
        "--size", "64", "--base-channels", "8", "--num-patches", "32", "--threads", "1",
        "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "out.json").read_text())
    gflop, by_operator = figures["gflop"], figures["gflop_by_operator"]
    assert sorted(gflop) == ["cut", "semst", "semst-ms"] and "GFLOP per training step" in result.stdout
    # the presets share the networks, so their convolutions cost the same; hDCE and TS add matrix products
    for op in ("aten.convolution", "aten.convolution_backward"):
        assert by_operator["cut"][op] == pytest.approx(by_operator["semst"][op])
    assert gflop["semst"] > gflop["cut"]
    # two generators on crops of the same size: about twice the single-scale step's convolutions
    convolutions = {v: by_operator[v]["aten.convolution"] for v in ("semst", "semst-ms")}
    assert 1.8 < convolutions["semst-ms"] / convolutions["semst"] < 2.2


def test_cut_comparison_names_a_folder_that_is_not_cut(tmp_path):
    result = _run("cut_comparison.py", str(tmp_path), "--steps", "1", "--warmup", "0")
    assert result.returncode != 0 and "is not a checkout of CUT" in result.stderr


def test_train_step_times_and_profiles_every_preset():
    result = _run(
        "train_step.py",
        "--size", "32", "--base-channels", "8", "--steps", "1", "--warmup", "0",
        "--presets", "cut,semst,semst-ms", "--precision", "bf16", "--profile", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "semst-ms / semst = " in result.stdout
    for preset in ("cut", "semst", "semst-ms"):
        assert f"{preset}, bf16: the 5 costliest operators (self CPU time)" in result.stdout
    assert "Self CPU time total" in result.stdout


def test_input_pipeline_runs_at_tiny_size(tmp_path):
    result = _run(
        "input_pipeline.py",
        "--width", "160", "--height", "96", "--images", "2", "--passes", "1", "--workers", "0,1",
        "--crop-size", "32", "--load-size", "36", "--global-size", "32", "--local-size", "32", "--image-width", "128",
        "--steps-per-second", "4", "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "out.json").read_text())
    specs = _script_constant("input_pipeline.py", "SPECS")
    assert specs[0] == "decode" and len(specs) == 6
    assert [row["spec"] for row in figures["results"]] == [
        "decode",
        *[spec for spec in specs[1:] for _ in (0, 1)],
    ]
    assert all(row["images_per_second"] > 0 for row in figures["results"])
    assert "workers for 4 steps/s" in result.stdout


def test_translate_fullres_takes_the_tile_batch_and_precision(tmp_path):
    result = _run(
        "translate_fullres.py",
        "--sizes", "72x40", "--modes", "multiscale,single-whole,single-tiled", "--tile-batch", "2",
        "--precision", "bf16", "--threads", "1", "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [row["mode"] for row in rows] == ["multiscale", "single-whole", "single-tiled"]
    assert all("error" not in row and row["tile_batch"] == 2 and row["precision"] == "bf16" for row in rows)


def test_translate_fullres_counts_the_flops_and_the_floor(tmp_path):
    result = _run(
        "translate_fullres.py",
        "--sizes", "72x40,144x80", "--modes", "single-whole", "--threads", "1", "--flops",
        "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    small, large = json.loads((tmp_path / "out.json").read_text())
    # A fully convolutional generator: its FLOPs grow with the pixels (4x, within 0.1 %).
    assert large["gflop"] == pytest.approx(4 * small["gflop"], rel=1e-3) and small["gflop"] > 0
    for row in (small, large):
        assert row["floor_seconds"] == pytest.approx(row["gflop"] / row["matmul_gflops"])
    assert "GFLOP/s: floor" in result.stdout


def test_gpu_check_dry_run_lists_every_part(tmp_path):
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "SEMST_CUT_CHECKOUT": str(tmp_path / "cut")}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = (tmp_path / "out" / "status.txt").read_text()
    for part in (
        "pytest_gpu",
        "train_step_bf16",
        "cut_bf16_compile",
        "translate_multiscale_bf16_batch8",
        "input_pipeline",
    ):
        assert f"{part}: not run (dry run)" in status
    assert (tmp_path / "out" / "summary.md").is_file()


def test_discriminator_batching_times_both_ways():
    result = _run("discriminator_batching.py", "--size", "32", "--base-channels", "8", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "separate" in line]
    assert len(lines) == 4 and all("joined" in line for line in lines)  # D and G update, single and multi


def test_branch_scores_reproduces_the_studys_fused_score_and_scores_each_branch(tmp_path):
    pytest.importorskip("skimage")  # the world's target textures
    from semst.study import SCALES, VARIANTS, Study, StudySpec
    from semst.study.data import open_study_data
    from semst.world.dataset import write_world

    world = tmp_path / "world"
    write_world(world, seed=0, train=4, test=2, size=(128, 64), aerial_size=None, progress=False)
    spec = StudySpec(
        data=open_study_data(f"world:{world}").spec,
        segmenter="",
        variants=(VARIANTS["SemST"], VARIANTS["CUT"]),
        seeds=(0,),
        scale=SCALES["tiny"],
        baseline="CUT",
        title="tiny study",
    )
    study = Study.create(tmp_path / "study", spec)
    study.run(progress=False)
    stored = json.loads(study.scores_path("SemST", 0).read_text())

    out = tmp_path / "branches.json"
    # No --seeds: every scored seed of the variant.
    result = _run("branch_scores.py", str(study.directory), "--variant", "SemST", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["seeds"] == [0] and 0 <= figures["attention_mean"][0] <= 1
    # The fused images are the study's translations again: the same score.
    assert figures["fused"]["mean_iou"][0] == pytest.approx(100 * stored["distortion"]["mean_iou"], abs=1e-6)
    assert figures["fused"]["kid"][0] == pytest.approx(stored["realism"]["kid"], abs=1e-6)
    assert figures["fused"]["confusion_matrix"][0] == stored["distortion"]["confusion_matrix"]
    assert figures["fused"]["per_class_iou"][0] == stored["distortion"]["per_class_iou"]
    for part in ("local", "global"):
        assert len(list((study.directory / "branches" / "SemST" / "seed0" / part).rglob("*.png"))) == 2
        assert 0 <= figures[part]["mean_iou"][0] <= 100
    assert "| global |" in result.stdout
    # Per class: a row for each class the fused output's score has, and each part's largest flips.
    names = [
        n for n, v in zip(study.data.class_names, stored["distortion"]["per_class_iou"]) if v is not None
    ]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| class: IoU (%) |"))
    assert lines[header].endswith("| fused | local | global | mean M_s |")
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(line)
    assert [row.split(" | ")[0][2:] for row in rows] == names
    assert all(f"largest flips, {part}:" in result.stdout for part in ("fused", "local", "global"))
    # The mean M_s over each true class's pixels: a value in [0, 1] exactly for the classes the labels hold.
    labels = [study.data.source_label(s) for s in study.data.source_test_samples]
    present = set(np.unique(np.concatenate([label.ravel() for label in labels]))) - {255}
    by_class = figures["attention_by_class"][0]
    assert {c for c, v in enumerate(by_class) if v is not None} == present
    assert all(0 <= v <= 1 for v in by_class if v is not None)
    assert "fusions" not in figures and "half" not in figures

    fused_out = tmp_path / "fusions.json"
    fusions = _run(
        "branch_scores.py", str(study.directory), "--variant", "SemST", "--fusions", "--out", str(fused_out)
    )
    assert fusions.returncode == 0, fusions.stderr[-3000:]
    with_fusions = json.loads(fused_out.read_text())
    assert with_fusions["local"] == figures["local"]  # the saved branches are scored again, unchanged
    folder = study.directory / "branches" / "SemST" / "seed0"
    local_iou, global_iou = figures["local"]["per_class_iou"][0], figures["global"]["per_class_iou"][0]
    oracle = {
        c
        for c in present
        if local_iou[c] is not None and (global_iou[c] is None or local_iou[c] >= global_iou[c])
    }
    smooth = _script_constant("branch_scores.py", "_smooth")
    block = 4 * stored["config"]["multiscale"]["scale"]  # M_s comes from G_g's bottleneck (stride 4)
    ones = np.ones((20, 28), np.float32)  # not a multiple of the block: partial blocks at the edges
    assert np.allclose(smooth(ones, block), ones)
    for sample, label in zip(study.data.source_test_samples, labels):
        name = sample.relative.with_suffix(".png")
        image = {
            part: np.asarray(Image.open(folder / part / name), dtype=np.float64)
            for part in ("local", "global", "recomposed", "half", "class-oracle", "smooth-oracle")
        }
        study_fused = np.asarray(
            Image.open(study.run_dir("SemST", 0) / "translated" / name), dtype=np.float64
        )
        # The model's own M_s on the 8-bit branches: the study's translation up to the branches' rounding.
        assert np.abs(image["recomposed"] - study_fused).max() <= 1
        assert np.abs(image["half"] - (image["local"] + image["global"]) / 2).max() <= 0.5
        from_local = np.isin(label, sorted(oracle))[..., None]  # (H, W, 1)
        assert np.array_equal(image["class-oracle"], np.where(from_local, image["local"], image["global"]))
        # The smooth oracle: the same map averaged over blocks as coarse as M_s's grid, a blend at borders.
        weights = smooth(from_local[..., 0].astype(np.float32), block)[..., None]  # (H, W, 1)
        assert weights.shape[:2] == label.shape and weights.min() >= 0 and weights.max() <= 1
        expected = np.rint(weights * image["local"] + (1 - weights) * image["global"])
        assert np.abs(image["smooth-oracle"] - expected).max() <= 1
    for part in ("recomposed", "half", "class-oracle", "smooth-oracle"):
        assert f"| {part} |" in fusions.stdout and 0 <= with_fusions[part]["mean_iou"][0] <= 100
    recomposed = with_fusions["recomposed"]["mean_iou"][0]
    assert recomposed == pytest.approx(with_fusions["fused"]["mean_iou"][0], abs=2.0)

    # benchmarks/class_texture.py on the same study: a row per class of the source labels, per variant.
    texture_out = tmp_path / "texture.json"
    textured = _run(
        "class_texture.py", str(study.directory), "--variants", "SemST,CUT", "--out", str(texture_out)
    )
    assert textured.returncode == 0, textured.stderr[-3000:]
    texture_figures = json.loads(texture_out.read_text())
    assert set(texture_figures) == {"source", "target", "SemST", "CUT"}
    assert list(texture_figures["SemST"]["seeds"]) == ["0"]
    class_names = study.data.class_names
    for title in ("texture (x100)", "colour spread (x100)"):
        assert f"| {title} | source | real target | SemST | CUT |" in textured.stdout
    rows = [line.split(" | ")[0][2:] for line in textured.stdout.splitlines() if line.startswith("| ")]
    source_texture = texture_figures["source"]["texture"]
    assert {name for name in rows if name in class_names} == {
        class_names[c] for c, v in enumerate(source_texture) if v is not None
    }
    assert {c for c, v in enumerate(source_texture) if v is not None} <= present
    assert texture_figures["CUT"]["seeds"]["0"]["border_band"] >= 0
    unknown_variant = _run("class_texture.py", str(study.directory), "--variants", "SemST,CUT-x")
    assert unknown_variant.returncode == 2 and "no variant 'CUT-x'" in unknown_variant.stderr

    single = _run("branch_scores.py", str(study.directory), "--variant", "CUT", "--seeds", "1")
    assert single.returncode == 2 and "not a multi-scale translator" in single.stderr
    missing = _run("branch_scores.py", str(study.directory), "--variant", "SemST", "--seeds", "1,")
    assert missing.returncode == 2 and "seed1/scores.json: no scores" in missing.stderr
    trailing = _run("branch_scores.py", str(study.directory), "--variant", "SemST", "--seeds", "0,")
    assert trailing.returncode == 0, trailing.stderr[-3000:]  # one seed as `semst study run` writes it
    assert "| SemST, 1 seeds |" in trailing.stdout
    for bad_seeds in ("zero", "0", "1,-1"):
        bad = _run("branch_scores.py", str(study.directory), "--variant", "SemST", "--seeds", bad_seeds)
        assert bad.returncode == 2, bad_seeds
        assert f"expected a count (3) or a list of seeds (0,1,5), got '{bad_seeds}'" in bad.stderr
    unscored = Study.create(tmp_path / "unscored", spec)  # prepared, nothing trained
    nothing = _run("branch_scores.py", str(unscored.directory), "--variant", "SemST")
    assert nothing.returncode == 2 and "no scored run of SemST: run the study first" in nothing.stderr
    unknown = _run("branch_scores.py", str(study.directory), "--variant", "SemST-bf16")
    assert unknown.returncode == 2 and "no variant 'SemST-bf16' (the study has: SemST, CUT)" in unknown.stderr


def test_ts_gradient_compares_settings_at_initialisation(tmp_path):
    from semst.config import load_config

    config = load_config(
        "semst",
        overrides={
            "generator.base_channels": 8,
            "discriminator.base_channels": 8,
            "data.crop_size": 32,
            "multiscale.global_size": 32,
            "multiscale.local_size": 32,
            "projection.num_patches": 16,
            "projection.dim": 32,
        },
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config.to_yaml())
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = _run(
        "ts_gradient.py", str(run), str(images), "--init", "--images", "2", "--branch", "local",
        "--set", "ts_weight=4", "--set", "ts_estimator=grid",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "branch local, 2 images, crop 32" in result.stdout
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:5]
        for line in result.stdout.splitlines()
        if "x TS (" in line
    }
    assert set(rows) == {"2 x TS (the run's own)", "4 x TS (ts_weight=4)", "2 x TS (ts_estimator=grid)"}
    own, doubled = float(rows["2 x TS (the run's own)"][0]), float(rows["4 x TS (ts_weight=4)"][0])
    assert doubled == pytest.approx(2 * own, rel=1e-3)  # the gradient is linear in lambda_TS
    assert rows["4 x TS (ts_weight=4)"][2] == rows["2 x TS (the run's own)"][2]  # same rSMI

    unknown = _run("ts_gradient.py", str(run), str(images), "--init", "--set", "ts_wieght=4")
    assert (
        unknown.returncode == 2 and "--set ts_wieght=4: " in unknown.stderr and "ts_wieght" in unknown.stderr
    )
    out_of_range = _run("ts_gradient.py", str(run), str(images), "--init", "--set", "rsmi_alpha=1.5")
    assert out_of_range.returncode == 2 and "loss.rsmi_alpha must be in [0, 1)" in out_of_range.stderr
    untrained = _run("ts_gradient.py", str(run), str(images))
    assert untrained.returncode == 2 and "no checkpoint (*.safetensors)" in untrained.stderr
