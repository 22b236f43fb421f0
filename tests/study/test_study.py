"""A study end to end on a tiny world: every run scored, the report, resuming, shards and merging, worker
processes, extending a study and refusing to mix settings."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from semst.cli import main
from semst.cli.study import parse_seeds
from semst.study import SCALES, VARIANTS, Study, StudyError, StudySpec, merge_studies
from semst.study.data import open_study_data
from semst.study.realism import RealismScorer
from semst.study.report import write_study_report

pytest.importorskip("skimage")  # the world's target textures


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from semst.world.dataset import write_world

    root = tmp_path_factory.mktemp("world")
    write_world(root, seed=0, train=4, test=2, size=(128, 64), aerial_size=None, progress=False)
    return root


def _spec(world: Path, **changes) -> StudySpec:
    spec = StudySpec(
        data=open_study_data(f"world:{world}").spec,
        segmenter="",
        variants=(VARIANTS["SemST"], VARIANTS["CUT"]),
        seeds=(0, 1),
        scale=SCALES["tiny"],
        baseline="CUT",
        title="tiny study",
    )
    return replace(spec, **changes)


@pytest.fixture(scope="module")
def prepared(world, tmp_path_factory) -> Path:
    """A study whose segmenter, realism scorer and references are ready (copied by the tests that run)."""
    directory = tmp_path_factory.mktemp("prepared") / "study"
    Study.create(directory, _spec(world)).prepare(progress=False)
    return directory


@pytest.fixture(scope="module")
def complete(prepared, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("complete") / "study"
    shutil.copytree(prepared, directory)
    study = Study.open(directory)
    study.run(progress=False)
    write_study_report(study, pictures=1)
    return directory


def _scores(directory: Path) -> dict:
    study = Study.open(directory)
    return {
        (r["variant"], r["seed"]): (r["distortion"]["confusion_matrix"], r["realism"]["kid"])
        for r in study.results()["runs"]
    }


def test_every_run_is_scored_and_reported(complete):
    study = Study.open(complete)
    results = study.results()
    assert results["missing"] == [] and len(results["runs"]) == 4
    for run in results["runs"]:
        assert 0 <= run["distortion"]["pixel_accuracy"] <= 1 and len(run["distortion"]["per_class_iou"]) == 19
        assert 0 <= run["realism"]["target_share"] <= 1 and run["step"] == 2
        translated = sorted(
            p.name
            for p in (complete / "runs" / run["variant"] / f"seed{run['seed']}" / "translated").rglob("*.png")
        )
        assert translated == ["test_00000.png", "test_00001.png"]
    assert set(results["references"]) == {"source", "target"}
    summary = json.loads((complete / "results.json").read_text())["summary"]
    assert summary["variants"] == ["SemST", "CUT"] and summary["baseline"] == "CUT"
    assert set(summary["differences"]) == {"SemST"}
    page = (complete / "report.html").read_text()
    for part in (
        "What the seeds say",
        "Scores (mean ± std over seeds)",
        "Differences from CUT",
        "untranslated source",
        "real target",
        "Which classes turned into which",
        "Where semantics changed",
        "Every run",
    ):
        assert part in page, part
    for source in re.findall(r"src='([^']+)'", page):
        assert (complete / source).is_file(), source


def test_the_report_draws_every_seed_on_request(complete, tmp_path, capsys):
    from PIL import Image

    copy = tmp_path / "study"
    shutil.copytree(complete, copy)
    grid = copy / "report_files" / "grid_test_00000.png"
    lowest = Image.open(grid).size  # untranslated, SemST seed 0, CUT seed 0
    assert main(["study", "report", str(copy), "--pictures", "1", "--every-seed"]) == 0
    assert str(copy / "report.html") in capsys.readouterr().out
    every = Image.open(grid).size  # untranslated, SemST seeds 0 and 1, CUT seeds 0 and 1
    assert every[0] == lowest[0] and every[1] * 3 == lowest[1] * 5


def test_a_finished_study_is_not_run_again(complete, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(complete, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    assert Study.open(copy).run(progress=False) == []
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()} == before


def test_an_interrupted_study_resumes(prepared, complete, tmp_path, monkeypatch):
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    original = Study.run_one
    calls = []

    def interrupted(self, variant, seed, **kwargs):
        calls.append((variant.name, seed))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, variant, seed, **kwargs)

    monkeypatch.setattr(Study, "run_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Study.open(directory).run(progress=False)
    monkeypatch.setattr(Study, "run_one", original)
    assert len(Study.open(directory).pending()) == 3
    assert len(Study.open(directory).run(progress=False)) == 3
    assert _scores(directory).keys() == _scores(complete).keys()
    for key, (confusion, kid) in _scores(directory).items():
        assert confusion == _scores(complete)[key][0]  # the same weights, translations and labels
        assert kid == pytest.approx(_scores(complete)[key][1], rel=1e-4)


def test_a_run_stopped_before_its_first_checkpoint_starts_again(prepared, complete, tmp_path):
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    study = Study.open(directory)
    partial = study.run_dir("CUT", 0)  # what a run killed before its first checkpoint leaves
    (partial / "checkpoints").mkdir(parents=True)
    (partial / "config.yaml").write_text("preset: cut\n")
    (partial / "train.log").write_text("step 1/2\n")
    study.run(progress=False)
    assert _scores(directory)[("CUT", 0)][0] == _scores(complete)[("CUT", 0)][0]


def test_shards_in_copies_are_merged(prepared, complete, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(prepared, first)
    shutil.copytree(prepared, second)
    Study.open(first).run(shard=(0, 2), progress=False)
    Study.open(second).run(shard=(1, 2), progress=False)
    assert len(Study.open(first).pending()) == 2
    added = merge_studies(first, [second])
    assert sorted(added) == [("CUT", 0), ("CUT", 1)]  # seed-major order: shard 1 had the CUT runs
    assert Study.open(first).pending() == []
    assert {k: v[0] for k, v in _scores(first).items()} == {k: v[0] for k, v in _scores(complete).items()}
    assert merge_studies(first, [second]) == []  # merging again adds nothing


def test_every_score_records_the_instruments_that_made_it(complete):
    from semst.files import file_sha256

    expected = {
        "segmenter_sha256": file_sha256(complete / "segmenter.safetensors"),
        "realism_classifier_sha256": file_sha256(complete / "realism" / "classifier.safetensors"),
    }
    paths = [*complete.glob("references/*.json"), *complete.glob("runs/*/seed*/scores.json")]
    assert len(paths) == 6
    for path in paths:
        assert json.loads(path.read_text())["instruments"] == expected, path


def _another_segmenter(study: Path) -> None:
    """Replace a study's segmenter by other weights (as another preparation would train)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = study / "segmenter.safetensors"
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(path), metadata=metadata)


def test_scores_of_another_preparation_are_refused(complete, tmp_path, capsys, caplog):
    copy = tmp_path / "study"
    shutil.copytree(complete, copy)
    # A run copied in from another preparation of the study (here: its record says another segmenter).
    path = copy / "runs" / "CUT" / "seed1" / "scores.json"
    scores = json.loads(path.read_text())
    scores["instruments"]["segmenter_sha256"] = "0" * 64
    path.write_text(json.dumps(scores))
    with pytest.raises(StudyError, match=r"CUT/seed1/scores.json was scored with another segmenter than"):
        Study.open(copy).results()
    assert main(["study", "table", str(copy)]) == 1
    error = capsys.readouterr().err.strip()
    assert "CUT/seed1/scores.json was scored with another segmenter" in error and "\n" not in error
    # A score written before scores recorded their instruments is read, with a warning naming it.
    del scores["instruments"]
    path.write_text(json.dumps(scores))
    with caplog.at_level("WARNING", logger="semst.study"):
        assert len(Study.open(copy).results()["runs"]) == 4
    assert "1 score file(s) record no instruments" in caplog.text and "CUT/seed1/scores.json" in caplog.text
    # The study's instruments replaced under its references: the study refuses to go on.
    _another_segmenter(copy)
    with pytest.raises(StudyError, match=r"references/source.json was scored with another segmenter than"):
        Study.open(copy).run(progress=False)


def test_studies_prepared_apart_are_not_merged(complete, prepared, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(prepared, first)
    shutil.copytree(complete, second)
    _another_segmenter(second)
    with pytest.raises(StudyError, match="scored with another segmenter than"):
        merge_studies(first, [second])
    assert Study.open(first).results()["runs"] == []


def test_worker_processes_give_the_same_scores(prepared, tmp_path):
    """Two worker processes of one thread each compute what one process with one thread computes."""
    import torch

    parallel, sequential = tmp_path / "parallel", tmp_path / "sequential"
    shutil.copytree(prepared, parallel)
    shutil.copytree(prepared, sequential)
    assert len(Study.open(parallel).run(jobs=2, progress=False)) == 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Study.open(sequential).run(progress=False)
    finally:
        torch.set_num_threads(threads)
    assert {k: v[0] for k, v in _scores(parallel).items()} == {
        k: v[0] for k, v in _scores(sequential).items()
    }


def _run_a_translation_only_variant(world, complete, tmp_path, variant, trainer: str) -> tuple:
    """Adds ``variant`` (trained as ``trainer``, translated otherwise) to a copy of the complete study and runs
    it; checks that nothing was trained and that it translated every held-out image with the trainer's
    checkpoints. Returns the study and the variant's results."""
    directory = tmp_path / "study"
    shutil.copytree(complete, directory)
    study = Study.create(directory, _spec(world, variants=(VARIANTS["SemST"], VARIANTS["CUT"], variant)))
    assert study.trained_by(variant) is next(v for v in study.spec.variants if v.name == trainer)
    checkpoints = sorted(directory.rglob("*.safetensors"))
    results = study.run(progress=False)
    assert [(r["variant"], r["seed"]) for r in results] == [(variant.name, 0), (variant.name, 1)]
    assert sorted(directory.rglob("*.safetensors")) == checkpoints  # nothing was trained again
    for result in results:
        seed = result["seed"]
        assert result["checkpoint"] == f"runs/{trainer}/seed{seed}/checkpoints/step_000000002.safetensors"
        run = directory / "runs" / variant.name / f"seed{seed}"
        assert not (run / "checkpoints").exists()
        assert len(list((run / "translated").rglob("*.png"))) == 2
    return study, results


def test_a_variant_that_only_tiles_differently_reuses_the_training(world, complete, tmp_path):
    tiled = replace(VARIANTS["CUT"], name="CUT-tiled", tiling={"tile": 32, "overlap": 16})
    _run_a_translation_only_variant(world, complete, tmp_path, tiled, "CUT")


def test_a_variant_that_translates_with_the_last_weights_reuses_the_training(world, complete, tmp_path):
    last = VARIANTS["SemST-last"]
    study, results = _run_a_translation_only_variant(world, complete, tmp_path, last, "SemST")
    for result in results:
        assert result["weights"] == "last"
        averaged = json.loads(study.scores_path("SemST", result["seed"]).read_text(encoding="utf-8"))
        assert averaged["weights"] == "average"
    assert Study.open(study.directory).spec.variants[2] == last  # the weights survive study.json


def test_a_study_trains_its_segmenter_with_colour_augmentation_unless_told_not_to(world, tmp_path):
    from semst.checkpoint import read_metadata
    from semst.study.runner import default_segmenter_photometric

    spec = _spec(world)
    assert spec.segmenter_photometric  # the default
    assert StudySpec.from_dict(spec.to_dict()) == spec
    legacy = spec.to_dict()
    del legacy["segmenter_photometric"]  # a study.json written before the setting existed
    assert not StudySpec.from_dict(legacy).segmenter_photometric
    # a given segmenter is used as it is: the study trains none, so it records no augmentation
    assert not _spec(world, segmenter="/some/segmenter.safetensors").segmenter_photometric
    plain = _spec(world, segmenter_photometric=False)
    with pytest.raises(StudyError, match="another segmenter_photometric"):
        plain.extended_by(spec)
    study = Study.create(tmp_path / "study", spec)
    study.prepare(progress=False)
    assert read_metadata(study.segmenter_path)["config"]["photometric"] is True
    plain_study = Study.create(tmp_path / "plain", plain)
    plain_study.prepare(progress=False)
    assert read_metadata(plain_study.segmenter_path)["config"]["photometric"] is False
    # a study set up without saying so resumes with its own setting; a new one gets the default
    assert default_segmenter_photometric(tmp_path / "plain") is False
    assert default_segmenter_photometric(tmp_path / "study") is True
    assert default_segmenter_photometric(tmp_path / "new") is True


def test_the_command_line_chooses_the_segmenters_augmentation(world, tmp_path, capsys):
    plain = tmp_path / "plain"
    args = ["study", "run", str(plain), "--data", f"world:{world}", "--scale", "tiny", "--seeds", "1"]
    assert main([*args, "--variants", "CUT", "--no-segmenter-photometric", "--no-progress"]) == 0
    assert Study.open(plain).spec.segmenter_photometric is False
    # the same command without the flag resumes the study as it was (extends it by FastCUT)
    assert main([*args, "--variants", "FastCUT", "--no-progress", "--no-report"]) == 0
    assert Study.open(plain).spec.segmenter_photometric is False
    assert main([*args, "--segmenter-photometric", "--no-progress", "--no-report"]) == 1
    assert "another segmenter_photometric" in capsys.readouterr().err
    given = ["--segmenter", str(plain / "segmenter.safetensors"), "--segmenter-photometric"]
    assert main(["study", "run", str(tmp_path / "given"), "--data", f"world:{world}", *given]) == 1
    err = capsys.readouterr().err
    assert "applies to the segmenter a study trains itself" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "given").exists()


def test_extending_a_study_and_refusing_other_settings(world, prepared, tmp_path):
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    extended = Study.create(
        directory,
        _spec(
            world,
            seeds=(0, 1, 2),
            variants=(VARIANTS["SemST"], VARIANTS["CUT"], VARIANTS["FastCUT"]),
            baseline="FastCUT",
            title="another title",
        ),
    )
    assert extended.spec.seeds == (0, 1, 2) and [v.name for v in extended.spec.variants] == [
        "SemST",
        "CUT",
        "FastCUT",
    ]
    assert len(extended.pending()) == 9
    # extending keeps what the study compares with and its title; relabel changes them, on disk too
    assert (extended.spec.baseline, extended.spec.title) == ("CUT", "tiny study")
    relabelled = extended.relabel(baseline="FastCUT")
    assert Study.open(directory).spec == relabelled.spec
    assert (relabelled.spec.baseline, relabelled.spec.title) == ("FastCUT", "tiny study")
    with pytest.raises(StudyError, match="the baseline 'DRIT' is not one of the variants"):
        relabelled.relabel(baseline="DRIT")
    assert Study.open(directory).spec.baseline == "FastCUT"
    with pytest.raises(StudyError, match="another scale"):
        Study.create(directory, _spec(world, scale=SCALES["demo"]))
    changed = replace(VARIANTS["CUT"], overrides={"loss.contrastive_weight": 2.0})
    with pytest.raises(StudyError, match="defined differently"):
        Study.create(directory, _spec(world, variants=(VARIANTS["SemST"], changed)))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="not empty"):
        Study.create(tmp_path / "busy", _spec(world))
    with pytest.raises(StudyError, match="baseline"):
        _spec(world, baseline="FastCUT")
    with pytest.raises(StudyError, match="not a study folder"):
        Study.open(tmp_path)


def test_the_command_line_extends_a_study_without_changing_its_baseline(world, prepared, tmp_path):
    """`semst study run STUDY --variants NEW`: a default baseline does not replace the study's; --baseline
    names any variant of the extended study, and a new study's must be one of its own."""
    from semst.cli import build_parser
    from semst.cli.study import _spec as spec_from_args

    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)

    def args(folder, *more):
        return build_parser().parse_args(
            [
                "study",
                "run",
                str(folder),
                "--data",
                f"world:{world}",
                "--scale",
                "tiny",
                "--seeds",
                "2",
                *more,
            ]
        )

    spec = spec_from_args(args(directory, "--variants", "FastCUT", "--baseline", "CUT"))
    study = Study.create(directory, spec).relabel(baseline="CUT")
    assert study.spec.baseline == "CUT" and study.spec.title == "tiny study"
    assert [v.name for v in Study.open(directory).spec.variants] == ["SemST", "CUT", "FastCUT"]
    with pytest.raises(StudyError, match="the baseline 'CUT' is not one of the variants"):
        spec_from_args(args(tmp_path / "new", "--variants", "FastCUT", "--baseline", "CUT"))


def test_the_command_line_extends_a_study_without_its_data(prepared, tmp_path):
    """`semst study run STUDY --seeds 4` (or --variants) on an existing study, without --data: the study's
    own data, scale and variants, with the seeds (variants) added; nothing asked, nothing changed."""
    from semst.cli import build_parser
    from semst.cli.study import _extension

    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    before = Study.open(directory).spec

    def extension(*more):
        return _extension(build_parser().parse_args(["study", "run", str(directory), *more]), before)

    assert extension() is None
    assert extension("--jobs", "2") is None
    more_seeds = extension("--seeds", "4")
    assert more_seeds.seeds == (0, 1, 2, 3) and more_seeds.variants == before.variants
    assert more_seeds.data == before.data and more_seeds.scale == before.scale
    extended = Study.create(directory, more_seeds)
    assert extended.spec.seeds == (0, 1, 2, 3) and extended.spec.title == before.title
    with_fastcut = Study.create(directory, extension("--variants", "FastCUT"))
    assert [v.name for v in with_fastcut.spec.variants] == [*(v.name for v in before.variants), "FastCUT"]
    assert with_fastcut.spec.seeds == (0, 1, 2, 3) and with_fastcut.spec.baseline == before.baseline
    with pytest.raises(StudyError, match="another scale"):
        Study.create(directory, extension("--scale", "demo"))


def test_a_default_changed_since_the_first_seeds_is_refused(world, complete, tmp_path):
    """A preset-only variant trained by an older semst (stored config without today's default) is not extended
    with seeds that would train differently; the study names the setting."""
    directory = tmp_path / "study"
    shutil.copytree(complete, directory)
    study = Study.create(directory, _spec(world, seeds=(0, 1, 2)))
    for seed in (0, 1):  # as semst 0.1 stored them: the TS loss trained F, and the setting did not exist
        path = study.scores_path("SemST", seed)
        scores = json.loads(path.read_text())
        del scores["config"]["loss"]["ts_projector_gradient"]
        path.write_text(json.dumps(scores))
    with pytest.raises(
        StudyError, match=r"SemST seed 2 .*: loss.ts_projector_gradient \(now 'none', then 'both'\)"
    ):
        study.run(progress=False)
    assert not study.run_dir("SemST", 2).exists() and not study.run_dir("CUT", 2).exists()  # refused first
    study.check_settings_unchanged(VARIANTS["CUT"], 2, study.run_config(VARIANTS["CUT"], 2))  # CUT's did not


def test_the_command_line(world, prepared, tmp_path, capsys):
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)  # same data, segmenter, scale: the CLI extends it by a variant
    args = [
        "study",
        "run",
        str(directory),
        "--data",
        f"world:{world}",
        "--scale",
        "tiny",
        "--variants",
        "SemST,CUT,SemST-TS0",
        "--seeds",
        "1",
        "--shard",
        "0/2",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "report" in out and "3 run(s) of the study are not scored yet" in out  # the other shard's
    study = Study.open(directory)
    assert [v.name for v in study.spec.variants] == ["SemST", "CUT", "SemST-TS0"] and study.spec.seeds == (
        0,
        1,
    )
    assert main(["study", "report", str(directory), "--pictures", "0"]) == 0
    assert (directory / "report.html").is_file()
    assert main(["study", "table", str(directory), "--variants", "SemST,SemST-TS0"]) == 0
    table = capsys.readouterr().out
    assert (
        "| SemST | 1 |" in table
        and "| *untranslated source* |" in table
        and "| minus CUT, per seed |" in table
    )
    assert main(["study", "table", str(directory), "--variants", "Pix2Pix"]) == 1
    assert "not in this study: Pix2Pix" in capsys.readouterr().err
    assert main(["study", "variants"]) == 0
    assert "SemST-PatchNCE" in capsys.readouterr().out
    assert main(["study", "run", str(tmp_path / "nothing"), "--no-progress"]) == 1
    assert "holds no study yet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seeds"), [("3", (0, 1, 2)), ("0,1,5", (0, 1, 5)), ("0,", (0,)), (" 2 , 4", (2, 4))]
)
def test_seeds_are_a_count_or_a_list(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-2", "zero", ",", "1,-1", "1.5"])
def test_seeds_that_name_no_run_are_refused(text, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "run", str(tmp_path / "study"), "--seeds", text])
    assert exit_info.value.code == 2 and not (tmp_path / "study").exists()
    assert f"expected a count (3) or a list of seeds (0,1,5), got '{text}'" in capsys.readouterr().err


def test_the_table_reads_an_archived_study_without_its_data(complete, tmp_path, capsys):
    # What a study keeps of its runs when its checkpoints, translations, realism scorer and data are gone
    # (docs/studies/): study.json, references/ and every run's scores.json, the data moved elsewhere.
    archive = tmp_path / "archive"
    for path in [
        complete / "study.json",
        *complete.glob("references/*.json"),
        *complete.glob("runs/*/*/scores.json"),
    ]:
        (archive / path.relative_to(complete)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, archive / path.relative_to(complete))
    spec = json.loads((archive / "study.json").read_text())
    spec["data"]["root"] = str(tmp_path / "moved")
    (archive / "study.json").write_text(json.dumps(spec))
    assert main(["study", "table", str(complete)]) == 0
    full = capsys.readouterr().out
    assert main(["study", "table", str(archive)]) == 0
    assert capsys.readouterr().out == full and "| mean IoU (%) |" in full and "| SemST |" in full
    # Class-matched KID is a column where the runs scored it (a data set with labelled target images).
    with_class_kid = [{"realism": {"kid": 0.1, "class_kid": 0.2}}, {"realism": {"kid": 0.1}}]
    assert RealismScorer.stored_metrics(with_class_kid)[-1].key == "realism.class_kid"
    assert "realism.class_kid" not in [m.key for m in RealismScorer.stored_metrics(with_class_kid[1:])]


def test_the_table_gives_every_seeds_own_scores_on_request(complete, capsys):
    # Read back from the runs' scores.json files, not from the summary the table is drawn from.
    stored = {}
    for path in complete.glob("runs/*/seed*/scores.json"):
        scores = json.loads(path.read_text())
        stored[(scores["variant"], scores["seed"])] = scores
    assert main(["study", "table", str(complete), "--per-seed"]) == 0
    text = capsys.readouterr().out
    per_seed = text.split("| per seed | seed |", 1)[1].splitlines()[2:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in per_seed if line]
    assert {(name, int(seed)) for name, seed, *_ in rows} == set(stored) and len(rows) == len(stored)
    names = [variant.name for variant in Study.open(complete).spec.variants]
    order = [(name, int(seed)) for name, seed, *_ in rows]
    assert order == sorted(order, key=lambda key: (names.index(key[0]), key[1]))  # variant by variant
    for name, seed, pixel, _class, miou, *_ in rows:
        distortion = stored[(name, int(seed))]["distortion"]
        assert pixel == f"{100 * distortion['pixel_accuracy']:.1f}"
        assert miou == f"{100 * distortion['mean_iou']:.1f}"
    assert main(["study", "table", str(complete)]) == 0
    assert "| per seed |" not in capsys.readouterr().out


def test_the_report_renders_in_a_headless_browser(complete, tmp_path):
    """Chromium draws the report with its chart (CI installs Debian's chromium; skipped where none is)."""
    import subprocess

    import numpy as np
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser installed (Debian: apt install chromium)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            (complete / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert pixels.std() > 10  # text, tables and figures, not a blank page
    # The bar chart's first two bars are matplotlib's tab10 blue and orange.
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - colour).sum(axis=1) < 30).sum() > 200, colour
