"""The built-in demo: a small study of SemST against CUT on the procedural labelled world, on a CPU.

``run_demo(out)`` (``semst demo``, ``make demo``):

1. **world**: a procedural world (semst.world): street scenes of a game-like source domain with much sky
   and road, and of a photo-like target domain with much building, vegetation and car, all labelled;
2. **study** (semst.study) of the ``demo`` variants, SemST and CUT, over two seeds at the ``demo`` scale:
   the study trains a target-domain segmenter (with colour augmentation) and a source-vs-target
   classifier, scores the untranslated source and the real target images (floor and ceiling), trains
   every variant and seed (two at a time on a machine with two or more cores), translates the held-out
   source scenes and scores them on semantic distortion and realism;
3. **report**: ``study/report.html`` and ``study/results.json``: means and spreads over seeds, the paired
   differences with a plain statement of whether they exceed the spread, bar charts, class flips, pictures.

Every stage resumes: running the demo again reuses what is complete. It is a CPU-sized study (minutes,
small networks, a few hundred steps): it shows the protocol and what these settings give, not the paper's
numbers, which come from 400k iterations of full-size networks on GPUs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("semst.demo")


@dataclass(frozen=True)
class DemoSettings:
    train_scenes: int  # per domain
    test_scenes: int  # held-out scenes per domain
    size: tuple[int, int]  # (width, height) of the scenes
    scale: str  # semst.study.SCALES
    seeds: tuple[int, ...]
    pictures: int  # held-out scenes drawn in the report


# The world of docs/experiments.md (`semst world --seed 0 --size 384x192 --train 60 --test 20 --no-aerial`):
# the demo's runs are the seeds 0 and 1 of the Table 3 study's SemST and CUT.
DEFAULT = DemoSettings(
    train_scenes=60, test_scenes=20, size=(384, 192), scale="demo", seeds=(0, 1), pictures=2
)
QUICK = DemoSettings(train_scenes=4, test_scenes=2, size=(128, 64), scale="tiny", seeds=(0, 1), pictures=1)


def run_demo(out: str | Path, *, quick: bool = False, progress: bool = True, jobs: int | None = None) -> dict:
    """Run the demo (see the module docstring); returns the paths of the report, results, world and study.

    Args:
        out: the demo's folder (``world/`` and ``study/`` go in it).
        quick: tiny world and networks, a few steps (a smoke test).
        progress: progress bars.
        jobs: runs trained at once (default: 2 on a machine with two or more cores, else 1).
    """
    from semst.study import SCALES, VARIANTS, Study, StudySpec
    from semst.study.data import StudyData
    from semst.study.report import write_study_report
    from semst.study.runner import default_segmenter_photometric
    from semst.world.dataset import write_world

    settings = QUICK if quick else DEFAULT
    out = Path(out)
    log.info("[1/3] generating the labelled world")
    write_world(
        out / "world",
        seed=0,
        train=settings.train_scenes,
        test=settings.test_scenes,
        size=settings.size,
        aerial_size=None,
        progress=progress,
    )
    data = StudyData.from_folder(out / "world" / "street")
    spec = StudySpec(
        data=data.spec,
        segmenter="",
        variants=(VARIANTS["SemST"], VARIANTS["CUT"]),
        seeds=settings.seeds,
        scale=SCALES[settings.scale],
        baseline="CUT",
        title="semst demo: SemST and CUT on the procedural world",
        # a demo folder of an earlier version resumes with its own segmenter
        segmenter_photometric=default_segmenter_photometric(out / "study"),
    )
    log.info("[2/3] the study: segmenter, realism classifier, %d runs", len(spec.runs()))
    study = Study.create(out / "study", spec)
    jobs = jobs if jobs is not None else (2 if (os.cpu_count() or 1) >= 2 else 1)
    study.run(jobs=jobs, progress=progress)
    log.info("[3/3] writing the report")
    notes = [
        "This is a CPU-sized study: small networks and a few hundred steps per run. It shows the protocol "
        "and what these settings give; the paper's numbers come from full-size networks trained for 400k "
        "iterations on GPUs.",
        "Every number on this page was measured by this run; results.json holds them all.",
        "Distortion scores depend on the segmenter: its own scores on real target images (the last row) are "
        "the ceiling; the untranslated source images (the first row) are the floor a translator must beat "
        "while making the images look like the target domain (realism)."
        + (
            " It learned with colour augmentation, so a colour cast that keeps every class is not read as "
            "distortion (docs/study.md)."
            if spec.segmenter_photometric
            else ""
        ),
    ]
    paths = write_study_report(study, pictures=settings.pictures, notes=notes)
    return {**paths, "world": out / "world", "study": study.directory}
