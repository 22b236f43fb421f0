"""Running a study: every variant and seed trained, its held-out translations scored, resumably.

A study lives in one folder::

    STUDY/study.json                     what is compared: data, segmenter, variants, seeds, scale, baseline
    STUDY/segmenter.safetensors          the target-domain segmenter (when the study trained it)
    STUDY/realism/                       the realism scorer's classifier and cached reference features
    STUDY/references/{source,target}.json   floor and ceiling: untranslated source, real target images
    STUDY/runs/VARIANT/seedN/            a training run (semst.training.loop) ...
        translated/                      ... its translations of the held-out source images
        scores.json                      ... and their scores (written last: a run with it is complete)

Every score records the instruments that made it (``instruments``: the SHA-256 of the segmenter and of the
realism classifier). Both are trained, and a preparation on another machine or with another thread count
trains other ones (the untranslated source's mIoU moved from 34.7 to 28.3 % between two preparations of one
world: docs/experiments.md, experiment 49), so scores are compared only with scores of the same instruments:
`Study.results` refuses a run scored with others, and `merge_studies` a study prepared apart.

Every stage resumes: an interrupted training run continues from its last checkpoint, translations already
written are kept, a run with ``scores.json`` is done. Runs can be spread over processes (``jobs``) and over
machines (``shard=(i, n)`` takes every n-th run): shards that share the folder need nothing more; shards in
copies of the folder are brought together with `merge_studies`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from semst import checkpoint as ckpt
from semst.config import ExperimentConfig
from semst.data.images import load_rgb, save_image
from semst.evaluation.segmentation import evaluate_segmentation
from semst.files import file_sha256, write_json
from semst.locking import FolderLock
from semst.study.data import StudyData
from semst.study.realism import RealismScorer
from semst.study.variants import Scale, Variant, run_config

__all__ = ["STUDY_FILE", "Study", "StudyError", "StudySpec", "default_segmenter_photometric", "merge_studies"]

log = logging.getLogger("semst.study")

STUDY_FILE = "study.json"
FORMAT = "semst-study"


class StudyError(ValueError):
    """A study folder or its settings cannot be used as asked."""


@dataclass(frozen=True)
class StudySpec:
    """What a study compares (saved as ``study.json``).

    Attributes:
        data: how the labelled data is named (`StudyData.spec`).
        segmenter: the target-domain segmenter's file, or ``""`` for one the study trains itself.
        variants: the translators compared.
        seeds: the seeds every variant is trained with.
        scale: the size of every run.
        baseline: the variant the others are compared with, seed by seed.
        title: a title for the report.
        segmenter_photometric: the segmenter the study trains itself learns with colour augmentation
            (`semst.segmentation.photometric`), so that distortion is read from the classes rather than
            from the palette (docs/study.md; docs/experiments.md, experiment 23): the default. A given
            ``segmenter`` is used as it is (the field then reads False); study.json files written before
            the setting existed read False (their segmenters learned without it).
    """

    data: dict[str, Any]
    segmenter: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    scale: Scale
    baseline: str
    title: str = "semst study"
    segmenter_photometric: bool = True

    def __post_init__(self) -> None:
        if self.segmenter_photometric and self.segmenter:  # how the study would train one: not the case
            object.__setattr__(self, "segmenter_photometric", False)
        names = [v.name for v in self.variants]
        if not names:
            raise StudyError("a study needs at least one variant")
        if self.baseline not in names:
            raise StudyError(
                f"the baseline {self.baseline!r} is not one of the variants ({', '.join(names)})"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise StudyError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")

    def runs(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed), in a fixed order (seed-major, so that a partial study has whole seeds)."""
        return [(variant, seed) for seed in self.seeds for variant in self.variants]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "title": self.title,
            "data": self.data,
            "segmenter": self.segmenter,
            "segmenter_photometric": self.segmenter_photometric,
            "variants": [v.to_dict() for v in self.variants],
            "seeds": list(self.seeds),
            "scale": self.scale.to_dict(),
            "baseline": self.baseline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySpec:
        if data.get("format") != FORMAT:
            raise StudyError(f"not a semst study description (format {data.get('format')!r})")
        return cls(
            data=data["data"],
            segmenter=data["segmenter"],
            variants=tuple(Variant.from_dict(v) for v in data["variants"]),
            seeds=tuple(data["seeds"]),
            scale=Scale.from_dict(data["scale"]),
            baseline=data["baseline"],
            title=data.get("title", "semst study"),
            segmenter_photometric=bool(data.get("segmenter_photometric", False)),  # older studies: without
        )

    def extended_by(self, other: StudySpec) -> StudySpec:
        """This spec with the variants and seeds of ``other`` added; the rest must agree. The baseline and the
        title stay this spec's (extending a study, or merging a shard, does not change what it compares with;
        `Study.relabel` does)."""
        for key in ("data", "segmenter", "segmenter_photometric", "scale"):
            if getattr(self, key) != getattr(other, key):
                raise StudyError(
                    f"the study already holds runs with another {key} ({getattr(self, key)!r}, asked "
                    f"{getattr(other, key)!r}); start a new study folder"
                )
        mine = {v.name: v for v in self.variants}
        for variant in other.variants:
            if variant.name in mine and mine[variant.name] != variant:
                raise StudyError(
                    f"variant {variant.name!r} is defined differently in this study ({mine[variant.name]}) "
                    f"than asked ({variant}); start a new study folder or rename it"
                )
        variants = (*self.variants, *(v for v in other.variants if v.name not in mine))
        seeds = (*self.seeds, *(s for s in other.seeds if s not in self.seeds))
        return replace(self, variants=variants, seeds=seeds)


def default_segmenter_photometric(directory: str | Path) -> bool:
    """Whether a study set up in ``directory`` without saying so trains its segmenter with colour augmentation:
    as the study already there does (so that the command that made it resumes it), else yes (the default)."""
    if (Path(directory) / STUDY_FILE).is_file():
        return Study.open(directory).spec.segmenter_photometric
    return True


def _shard(runs: list, shard: tuple[int, int]) -> list:
    index, count = shard
    if not 0 <= index < count:
        raise StudyError(f"shard {index}/{count}: expected 0 <= i < n")
    return [run for i, run in enumerate(runs) if i % count == index]


class Study:
    """A study folder (see the module docstring). Create one with `Study.create`, reopen with `Study.open`."""

    def __init__(self, directory: str | Path, spec: StudySpec) -> None:
        self.directory = Path(directory)
        self.spec = spec
        self._data: StudyData | None = None
        self._segmenter = None
        self._realism: RealismScorer | None = None
        self._instruments: dict[str, str] | None = None

    # --- the folder -----------------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | Path, spec: StudySpec) -> Study:
        """A new study, or an existing one extended by ``spec``'s variants and seeds."""
        directory = Path(directory)
        path = directory / STUDY_FILE
        if path.exists():
            spec = cls.open(directory).spec.extended_by(spec)
        elif directory.exists() and any(directory.iterdir()):
            raise StudyError(f"{directory} is not empty and holds no {STUDY_FILE}; choose a new folder")
        directory.mkdir(parents=True, exist_ok=True)
        write_json(path, spec.to_dict())
        return cls(directory, spec)

    def relabel(self, *, baseline: str | None = None, title: str | None = None) -> Study:
        """This study with another baseline (one of its variants) or title, written to its study.json; None
        keeps the present one."""
        spec = replace(self.spec, baseline=baseline or self.spec.baseline, title=title or self.spec.title)
        if spec != self.spec:
            write_json(self.directory / STUDY_FILE, spec.to_dict())
        return Study(self.directory, spec)

    @classmethod
    def open(cls, directory: str | Path) -> Study:
        directory = Path(directory)
        path = directory / STUDY_FILE
        if not path.is_file():
            raise StudyError(f"{directory} is not a study folder (no {STUDY_FILE})")
        try:
            return cls(directory, StudySpec.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise StudyError(f"{path} is damaged: {exc}") from exc

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.directory / "runs" / variant / f"seed{seed}"

    def scores_path(self, variant: str, seed: int) -> Path:
        return self.run_dir(variant, seed) / "scores.json"

    @property
    def data(self) -> StudyData:
        if self._data is None:
            self._data = StudyData.from_spec(self.spec.data)
        return self._data

    @property
    def segmenter_path(self) -> Path:
        return Path(self.spec.segmenter) if self.spec.segmenter else self.directory / "segmenter.safetensors"

    # --- preparation: segmenter, realism scorer, floor and ceiling -------------------------------------------

    def prepare(self, *, progress: bool = True) -> None:
        """Train what every run needs (the segmenter if the study owns it, the realism scorer) and score the
        untranslated source and the real target images. Done once; concurrent shards wait for it."""
        (self.directory / "references").mkdir(parents=True, exist_ok=True)
        with FolderLock(self.directory, "semst study (preparation)", wait=True):
            if not self.segmenter_path.is_file():
                if self.spec.segmenter:
                    raise StudyError(f"the segmenter {self.segmenter_path} does not exist")
                self._train_segmenter(progress)
            self.realism.prepare(progress=progress)
            data = self.data
            for name, samples, label_of in (
                ("source", data.source_test_samples, data.source_label),
                ("target", data.target_test_samples, data.target_label),
            ):
                path = self.directory / "references" / f"{name}.json"
                if not path.is_file():
                    images = [s.image for s in samples]
                    scores = self._score(images, samples, label_of, progress)
                    write_json(path, {"name": name, **scores})
                else:
                    recorded = json.loads(path.read_text(encoding="utf-8")).get("instruments")
                    if recorded is not None and recorded != self.instruments():
                        raise StudyError(
                            f"{path} was scored with another {_differing(recorded, self.instruments())} than "
                            f"the one in {self.directory} now: the study's instruments were replaced; restore "
                            "them, or start a new study"
                        )

    def _train_segmenter(self, progress: bool) -> None:
        from semst.segmentation.train import SegmenterTrainConfig, train_segmenter

        data, scale = self.data, self.spec.scale
        if data.spec.get("kind") != "folder":
            raise StudyError(
                "give the study a target-domain segmenter (--segmenter FILE) for these data sets"
            )
        dataset = data.target_test
        train_pairs = [(s.image, s.label) for s in dataset.samples("trainB") if s.label is not None]
        if not train_pairs:
            raise StudyError(f"{dataset.root}/trainB_labels is missing: the study cannot train its segmenter")
        log.info("training the target-domain segmenter on %d labelled target images", len(train_pairs))
        train_segmenter(
            train_pairs,
            SegmenterTrainConfig(
                num_classes=len(data.class_names),
                steps=scale.segmenter_steps,
                crop_size=scale.segmenter_crop,
                batch_size=4,
                lr=2e-3,
                seed=0,
                width=scale.segmenter_width,
                log_every=max(1, scale.segmenter_steps // 6),
                photometric=self.spec.segmenter_photometric,
            ),
            out=self.segmenter_path,
            val_pairs=[(s.image, s.label) for s in data.target_test_samples],
            class_names=data.class_names,
            progress=progress,
        )

    @property
    def segmenter(self):
        if self._segmenter is None:
            from semst.segmentation.loading import load_segmenter

            self._segmenter = load_segmenter(self.segmenter_path)
        return self._segmenter

    @property
    def realism(self) -> RealismScorer:
        if self._realism is None:
            data = self.data
            self._realism = RealismScorer(
                self.directory / "realism",
                source_images=data.source_train_images,
                target_images=data.target_train_images,
                target_labels=data.target_train_labels,
                steps=self.spec.scale.classifier_steps,
            )
        return self._realism

    def segment(
        self, images: list[Path], samples, label_of, *, on_image=None, progress: bool = False
    ) -> dict:
        """The segmenter on ``images`` scored against the labels of ``samples`` (same order): distortion
        scores (`semst.evaluation.segmentation.evaluate_segmentation`, with its ``on_image`` callback)."""
        labels = {str(s.label): s for s in samples}
        return evaluate_segmentation(
            self.segmenter,
            list(zip(images, [s.label for s in samples], strict=True)),
            num_classes=len(self.data.class_names),
            batch_size=4,
            progress=progress,
            on_image=on_image,
            load_label=lambda path: label_of(labels[str(path)]),
        )

    def instruments(self) -> dict[str, str]:
        """What scores this study's runs: the SHA-256 of its segmenter and of its realism classifier (both
        trained by the preparation, so another preparation has other ones; see the module docstring)."""
        if self._instruments is None:
            self._instruments = {
                "segmenter_sha256": file_sha256(self.segmenter_path),
                "realism_classifier_sha256": file_sha256(self.realism.classifier_path),
            }
        return self._instruments

    def _score(self, images: list[Path], samples, label_of, progress: bool) -> dict[str, Any]:
        """Distortion (the segmenter on ``images`` against the samples' labels) and realism of ``images``,
        with the instruments that scored them."""
        distortion = self.segment(images, samples, label_of, progress=progress)
        labels = [s.label for s in samples] if self.data.label_files_are_train_ids else None
        return {
            "distortion": distortion,
            "realism": self.realism.score(images, labels=labels, progress=progress),
            "instruments": self.instruments(),
        }

    # --- runs -----------------------------------------------------------------------------------------------

    def trained_by(self, variant: Variant) -> Variant:
        """The first variant of the study that trains exactly as ``variant`` does (same preset and
        overrides): its runs hold the checkpoints that ``variant`` translates with."""
        return next(
            v
            for v in (*self.spec.variants, variant)
            if (v.preset, v.overrides) == (variant.preset, variant.overrides)
        )

    def pending(self, shard: tuple[int, int] = (0, 1)) -> list[tuple[Variant, int]]:
        """This shard's runs without scores yet."""
        return [
            (variant, seed)
            for variant, seed in _shard(self.spec.runs(), shard)
            if not self.scores_path(variant.name, seed).is_file()
        ]

    def run(self, *, shard: tuple[int, int] = (0, 1), jobs: int = 1, progress: bool = True) -> list[dict]:
        """Prepare, then train, translate and score every pending run of this shard; returns their scores.

        With ``jobs`` > 1 the runs go to that many worker processes, each with an equal share of the CPU
        threads (per-run progress bars are then replaced by one log line per finished run).
        """
        self.prepare(progress=progress)
        todo = self.pending(shard)
        if not todo:
            log.info("every run of this shard is done")
            return []
        for variant, seed in todo:  # before hours of training, not after
            self.check_settings_unchanged(variant, seed, self.run_config(variant, seed))
        results = []
        with tqdm(total=len(todo), desc="study runs", unit="run", disable=not progress, position=0) as bar:
            if jobs <= 1:
                for variant, seed in todo:
                    bar.set_postfix_str(f"{variant.name} seed {seed}")
                    results.append(self.run_one(variant, seed, progress=progress))
                    bar.update(1)
                return results
            threads = max(1, (os.cpu_count() or 1) // jobs)
            gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            note = gpu_sharing_note(jobs, gpu_count)
            if note:
                log.warning(note)
            # Longest runs first (a multi-scale step costs about two single-scale ones), so that the
            # last runs to finish are short ones and no worker idles while one long run goes on alone.
            # Variants that reuse another's training go last, when that training is (mostly) done.
            todo = sorted(
                todo,
                key=lambda run: (
                    self.trained_by(run[0]) is not run[0],
                    -2 if run[0].multiscale(self.spec.scale) else -1,
                ),
            )
            context = multiprocessing.get_context("spawn")
            # With several GPUs, each worker sees one of them (dealt out in turn), so that "auto" runs there.
            gpus = worker_gpus(jobs, gpu_count)
            queue = None
            if gpus:
                queue = context.Queue()
                for gpu in gpus:
                    queue.put(gpu)
                log.info("%d workers on GPUs %s", jobs, ", ".join(sorted(set(gpus), key=gpus.index)))
            with concurrent.futures.ProcessPoolExecutor(
                jobs,
                mp_context=context,
                initializer=_init_worker,
                initargs=(os.getpid(), queue),
            ) as pool:
                futures = {
                    pool.submit(_run_in_worker, str(self.directory), variant.name, seed, threads): (
                        variant,
                        seed,
                    )
                    for variant, seed in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    variant, seed = futures[future]
                    result = future.result()
                    results.append(result)
                    bar.update(1)
                    log.info(
                        "done: %s seed %d (%.0f s): mIoU %.1f%%",
                        variant.name,
                        seed,
                        sum(result["seconds"].values()),
                        100 * (result["distortion"]["mean_iou"] or 0),
                    )
        return results

    def run_one(self, variant: Variant, seed: int, *, progress: bool = True) -> dict[str, Any]:
        """Train (or resume) one run, translate the held-out source images, score them; returns the scores."""
        from semst.training.loop import train
        from semst.translators import Translator

        data = self.data
        run_dir = self.run_dir(variant.name, seed)
        config = self.run_config(variant, seed)
        self.check_settings_unchanged(variant, seed, config)
        # A variant that differs from an earlier one only in how it translates (its tiling, its weights)
        # translates with that variant's trained checkpoints; the lock makes a second process wait for the
        # training.
        trainer = self.trained_by(variant)
        train_dir = self.run_dir(trainer.name, seed)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        with FolderLock(self.directory / "locks" / f"{trainer.name}-seed{seed}", "semst study", wait=True):
            checkpoint = _finished_checkpoint(train_dir, config.train.max_steps)
            if checkpoint is None:
                resume = any((train_dir / "checkpoints").glob(f"*{ckpt.SUFFIX}"))
                if not resume and train_dir.exists():
                    # Stopped before its first checkpoint: nothing to resume; the study's own partial run
                    # (config, logs, samples) would make the new one refuse the folder.
                    log.info(
                        "%s seed %d: restarting from step 0 (stopped before its first checkpoint)",
                        trainer.name,
                        seed,
                    )
                    shutil.rmtree(train_dir)
                checkpoint = train(config, train_dir, resume=resume, progress=progress)
        seconds["train"] = time.perf_counter() - start

        start = time.perf_counter()
        translator = Translator.from_checkpoint(checkpoint, device="auto", weights=variant.weights)
        tiling = translator.tiling(**variant.tiling)
        translated = []
        for sample in tqdm(
            data.source_test_samples, desc="translate", unit="img", disable=not progress, leave=False
        ):
            out = run_dir / "translated" / sample.relative.with_suffix(".png")
            if not out.is_file():
                save_image(translator.translate(load_rgb(sample.image), tiling), out)
            translated.append(out)
        seconds["translate"] = time.perf_counter() - start

        start = time.perf_counter()
        scores = self._score(translated, data.source_test_samples, data.source_label, progress)
        seconds["score"] = time.perf_counter() - start
        result = {
            "variant": variant.name,
            "seed": seed,
            "checkpoint": os.path.relpath(checkpoint, self.directory),
            "step": translator.step,
            "weights": translator.weights,
            "config": config.to_dict(),
            **scores,
            "seconds": seconds,
        }
        write_json(self.scores_path(variant.name, seed), result)
        return result

    def run_config(self, variant: Variant, seed: int) -> ExperimentConfig:
        """The training config of one run."""
        data = self.data
        return run_config(
            variant,
            self.spec.scale.overrides(len(data.source_train_images)),
            source=data.source,
            target=data.target,
            seed=seed,
        )

    def check_settings_unchanged(self, variant: Variant, seed: int, config: ExperimentConfig) -> None:
        """Refuse a run whose settings differ from the variant's scored seeds in more than the seed: a default
        of semst that changed since (a preset-only variant then trains differently) would mix two settings
        in one row of the table."""
        from semst.training.loop import config_differences

        for other in self.spec.seeds:
            path = self.scores_path(variant.name, other)
            if other == seed or not path.is_file():
                continue
            stored = json.loads(path.read_text(encoding="utf-8")).get("config")
            if stored is None:
                continue
            theirs = ExperimentConfig.from_stored(stored, source=str(path))
            changed = config_differences(theirs, config)  # {key: (then, now)}, sorted by key
            changed.pop("train.seed", None)
            if changed:
                then, now = next(iter(changed.values()))
                raise StudyError(
                    f"{variant.name} seed {seed} would train with other settings than seed {other} ({path}): "
                    f"{', '.join(changed)} (now {now!r}, then {then!r}); a default changed since the study "
                    "began: pin the old values in a --variants-file variant, or start a new study"
                )
            return

    def results(self) -> dict[str, Any]:
        """Everything scored so far: ``runs`` (a list of run scores), ``references`` (``source``,
        ``target``) and ``missing`` runs. Read from the stored scores alone (an archived study needs no
        data, checkpoints or instruments).

        Raises:
            StudyError: a score records other instruments than the references' (the first recorded ones
                where the references record none): it was scored by another preparation (a run copied in
                from another study) and cannot be compared with the rest. Scores that record no
                instruments (written before scores recorded them) cannot be checked; a warning names them.
        """
        references, scored = {}, []
        for name in ("source", "target"):
            path = self.directory / "references" / f"{name}.json"
            if path.is_file():
                references[name] = json.loads(path.read_text(encoding="utf-8"))
                scored.append((path, references[name]))
        runs, missing = [], []
        for variant, seed in self.spec.runs():
            path = self.scores_path(variant.name, seed)
            if path.is_file():
                runs.append(json.loads(path.read_text(encoding="utf-8")))
                scored.append((path, runs[-1]))
            else:
                missing.append({"variant": variant.name, "seed": seed})
        _check_same_instruments(scored)
        return {"spec": self.spec.to_dict(), "runs": runs, "references": references, "missing": missing}


def _differing(recorded: dict[str, str], expected: dict[str, str]) -> str:
    """Which instruments differ, in words ("segmenter", "realism classifier" or both)."""
    names = {"segmenter_sha256": "segmenter", "realism_classifier_sha256": "realism classifier"}
    differ = [
        names.get(key, key)
        for key in sorted({*recorded, *expected})
        if recorded.get(key) != expected.get(key)
    ]
    return " and ".join(differ)


def _check_same_instruments(scored: list[tuple[Path, dict]]) -> None:
    """Refuse scores made with other instruments than the first that record theirs (see `Study.results`)."""
    expected, first, unchecked = None, None, []
    for path, scores in scored:
        recorded = scores.get("instruments")
        if recorded is None:
            unchecked.append(path)
        elif expected is None:
            expected, first = recorded, path
        elif recorded != expected:
            raise StudyError(
                f"{path} was scored with another {_differing(recorded, expected)} than {first}: it comes from "
                "another preparation of the study and cannot be compared with it; move it out, and run "
                "`semst study run` to score its run again if its checkpoint is there"
            )
    if unchecked and expected is not None:
        log.warning(
            "%d score file(s) record no instruments (written before scores recorded them; first: %s): "
            "they cannot be checked against the study's segmenter and realism classifier",
            len(unchecked),
            unchecked[0],
        )


def worker_gpus(jobs: int, count: int, visible: str | None = None) -> list[str]:
    """The GPU each of ``jobs`` workers is to see (its ``CUDA_VISIBLE_DEVICES``), dealt out in turn over the
    ``count`` GPUs this process sees (``visible``: its own ``CUDA_VISIBLE_DEVICES``, default from the
    environment, whose entries are kept); empty with fewer than two GPUs (every run then takes the one)."""
    if count < 2:
        return []
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [name.strip() for name in visible.split(",") if name.strip()] if visible else []
    names = names[:count] if len(names) >= count else [str(i) for i in range(count)]
    return [names[i % count] for i in range(jobs)]


def _init_worker(parent: int, queue, interval: float = 2.0) -> None:
    """Worker initializer: stop with the study's process (`_watch_parent`), and see one GPU only when
    ``queue`` deals them out."""
    _watch_parent(parent, interval)
    if queue is not None:
        _take_gpu(queue)


def _watch_parent(parent: int, interval: float) -> None:
    """Ends this process once its parent is no longer ``parent`` (checked every ``interval`` seconds).

    A worker whose study process is killed (``kill``, a batch scheduler's SIGTERM at the end of a job, the
    out-of-memory killer) is not stopped with it and would go on training alone, into folders that a
    restarted study trains again. Its run resumes from its last checkpoint (written atomically).
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                log.error("the study's process (pid %d) is gone: this worker stops too", parent)
                logging.shutdown()
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="semst-study-parent").start()


def _take_gpu(queue) -> None:
    """Worker initializer: see one GPU only (before anything initialises CUDA in this process)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = queue.get()


def gpu_sharing_note(jobs: int, count: int) -> str | None:
    """A warning when more than one of ``jobs`` runs will share one of the ``count`` GPUs without NVIDIA's
    MPS (whose control pipe is in ``$CUDA_MPS_PIPE_DIRECTORY``, default /tmp/nvidia-mps): on an H200, 15
    runs at once gave 5.5x one run's steps a second with MPS and 1.6x without (docs/benchmarks.md, GPU).
    None otherwise (no GPU, or a GPU for every run)."""
    if jobs <= 1 or count == 0 or count >= jobs:
        return None
    pipe = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    if (pipe / "control").exists():
        return None
    return (
        f"{jobs} runs will share {count} GPU(s) without NVIDIA's MPS: their small kernels "
        "then take turns (15 runs on an H200 gave 1.6x one run's steps a second, 5.5x with MPS); start it "
        "first with `nvidia-cuda-mps-control -d` (docs/benchmarks.md, GPU)"
    )


def _finished_checkpoint(run_dir: Path, steps: int | None) -> Path | None:
    """The run's checkpoint at its last step, if training is complete."""
    if not (run_dir / "checkpoints").is_dir():
        return None
    try:
        latest = ckpt.resolve_checkpoint(run_dir)
    except ckpt.CheckpointError:
        return None
    return latest if ckpt.read_metadata(latest).get("step") == steps else None


def _run_in_worker(directory: str, variant: str, seed: int, threads: int) -> dict[str, Any]:
    """One run in a worker process (``Study.run`` with ``jobs`` > 1); log lines name the run."""
    torch.set_num_threads(threads)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    for handler in root.handlers:  # a worker runs several runs in turn
        handler.setFormatter(logging.Formatter(f"%(asctime)s [{variant} seed {seed}] %(message)s"))
    study = Study.open(directory)
    match = {v.name: v for v in study.spec.variants}[variant]
    return study.run_one(match, seed, progress=False)


def merge_studies(into: str | Path, others: list[str | Path]) -> list[tuple[str, int]]:
    """Copy the finished runs' scores of studies run elsewhere (shards in copies of the folder) into ``into``.

    The studies must describe the same data, segmenter and scale, and their realism scorers must be the same
    files; a run scored in two places must have the same scores. Returns the (variant, seed) pairs added.
    """
    target = Study.open(into)
    added = []
    for other_dir in others:
        other = Study.open(other_dir)
        target = Study.create(target.directory, other.spec)  # the union of variants and seeds
        if target.instruments() != other.instruments():
            raise StudyError(
                f"{other_dir} scored with another {_differing(other.instruments(), target.instruments())} "
                f"than {into}; merge only studies whose segmenter and realism/ folder were copied from one "
                "preparation"
            )
        for variant, seed in other.spec.runs():
            source = other.scores_path(variant.name, seed)
            if not source.is_file():
                continue
            destination = target.scores_path(variant.name, seed)
            scores = json.loads(source.read_text(encoding="utf-8"))
            if destination.is_file():
                mine = json.loads(destination.read_text(encoding="utf-8"))
                if {k: v for k, v in mine.items() if k != "seconds"} != {
                    k: v for k, v in scores.items() if k != "seconds"
                }:
                    raise StudyError(
                        f"{variant.name} seed {seed} was scored differently in {into} and {other_dir}"
                    )
                continue
            write_json(destination, scores)
            added.append((variant.name, seed))
    return added
