"""The labelled data a study trains on and scores with.

A study needs, for each domain, training images and held-out labelled images:

- the translators train on the source and target training images (unpaired);
- the held-out source images are translated and scored against their own labels by a target-domain segmenter
  (semantic distortion), and for realism against the target domain;
- the held-out target images with their labels are the ceiling: what the segmenter scores on real target
  images, and how realistic real target images are.

Two ways to name it:

- ``StudyData.from_folder(root)``: a CUT-style root with labels, ``trainA/``, ``trainB/``, ``testA/`` +
  ``testA_labels/``, ``testB/`` + ``testB_labels/`` (train-id PNGs), as ``semst world`` writes under
  ``street/`` (``world:PATH`` names that folder);
- ``StudyData.from_datasets(...)``: data sets as downloaded (``gta5:/data/GTA5``, ``cityscapes:/data/cs``)
  with a held-out split for each domain (semst.data.datasets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semst.data.datasets import DatasetLayout, Sample, open_dataset
from semst.data.labels import TRAIN_ID_NAMES

__all__ = ["StudyData", "open_study_data"]


@dataclass
class StudyData:
    """Training specs and held-out labelled samples of both domains (see the module docstring).

    Attributes:
        source, target: what the translators train on (a folder or ``NAME:PATH``; ``data.source`` and
            ``data.target`` of their configs).
        source_test, target_test: the held-out data sets and their labelled samples.
        source_train_images, target_train_images: the training images (for the realism classifier and the
            realism reference set).
        target_train_labels: the label maps of the target training images as train-id PNGs, in their order,
            or None (then realism is not class-matched).
        label_files_are_train_ids: whether the held-out label files are train-id PNGs (readable without
            the data set's converter), as the class-matched realism scores need.
        class_names: the label classes (Cityscapes train ids).
        spec: how the data was named (saved with the study).
    """

    source: str
    target: str
    source_test: DatasetLayout
    source_test_samples: list[Sample]
    target_test: DatasetLayout
    target_test_samples: list[Sample]
    source_train_images: list[Path]
    target_train_images: list[Path]
    target_train_labels: list[Path] | None
    label_files_are_train_ids: bool
    class_names: list[str]
    spec: dict[str, Any]

    @classmethod
    def from_folder(cls, root: str | Path) -> StudyData:
        """A labelled CUT-style root: trainA, trainB, testA(+_labels), testB(+_labels)."""
        root = Path(root)
        dataset = open_dataset(f"folder:{root}")
        missing = [s for s in ("trainA", "trainB", "testA", "testB") if s not in dataset.splits]
        if missing:
            raise ValueError(
                f"{root} is not a labelled study folder: it lacks {', '.join(missing)} (expected trainA/, trainB/, "
                "testA/ + testA_labels/, testB/ + testB_labels/, as `semst world` writes under street/)"
            )
        source_test = _labelled(dataset, "testA")
        target_test = _labelled(dataset, "testB")
        target_train = dataset.samples("trainB")
        labelled = all(s.label is not None for s in target_train)
        return cls(
            source=str(root / "trainA"),
            target=str(root / "trainB"),
            source_test=dataset,
            source_test_samples=source_test,
            target_test=dataset,
            target_test_samples=target_test,
            source_train_images=[s.image for s in dataset.samples("trainA")],
            target_train_images=[s.image for s in target_train],
            target_train_labels=[s.label for s in target_train] if labelled else None,
            label_files_are_train_ids=True,
            class_names=list(TRAIN_ID_NAMES),
            spec={"kind": "folder", "root": str(root.resolve())},
        )

    @classmethod
    def from_datasets(
        cls, source: str, target: str, *, source_test_split: str, target_test_split: str
    ) -> StudyData:
        """Data sets as downloaded: train on their usual splits, score on the given held-out splits."""
        source_train, target_train = open_dataset(source), open_dataset(target)
        source_test = open_dataset(source, split=source_test_split)
        target_test = open_dataset(target, split=target_test_split)
        for train, test, name in (
            (source_train, source_test, "source"),
            (target_train, target_test, "target"),
        ):
            if train.split == test.split:
                raise ValueError(
                    f"the {name} data set's held-out split '{test.split}' is its training split: a study scores "
                    f"images the translators never saw (splits of {train.root}: {', '.join(train.splits)})"
                )
        return cls(
            source=source,
            target=target,
            source_test=source_test,
            source_test_samples=_labelled(source_test, source_test.split),
            target_test=target_test,
            target_test_samples=_labelled(target_test, target_test.split),
            source_train_images=[s.image for s in source_train.samples()],
            target_train_images=[s.image for s in target_train.samples()],
            target_train_labels=None,  # labels in the data sets' own formats: realism is not class-matched
            label_files_are_train_ids=False,
            class_names=list(TRAIN_ID_NAMES),
            spec={
                "kind": "datasets",
                "source": source,
                "target": target,
                "source_test_split": source_test_split,
                "target_test_split": target_test_split,
            },
        )

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> StudyData:
        """Reopen the data a study was made with (its saved ``spec``)."""
        if spec.get("kind") == "folder":
            return cls.from_folder(spec["root"])
        if spec.get("kind") == "datasets":
            return cls.from_datasets(
                spec["source"],
                spec["target"],
                source_test_split=spec["source_test_split"],
                target_test_split=spec["target_test_split"],
            )
        raise ValueError(f"unknown study data spec {spec!r}")

    def source_label(self, sample: Sample) -> np.ndarray:
        """The train-id label map of a held-out source sample."""
        return self.source_test.load_label(sample)

    def target_label(self, sample: Sample) -> np.ndarray:
        """The train-id label map of a held-out target sample."""
        return self.target_test.load_label(sample)


def _labelled(dataset: DatasetLayout, split: str) -> list[Sample]:
    samples = dataset.samples(split)
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        raise ValueError(
            f"the held-out split '{split}' of {dataset.root} has images without labels (e.g. {unlabelled[0]}); "
            "scoring semantic distortion needs a label map for every held-out image"
        )
    return samples


def open_study_data(data: str) -> StudyData:
    """``world:PATH`` (a `semst world` folder: its ``street/``), or a labelled CUT-style root."""
    if data.startswith("world:"):
        return StudyData.from_folder(Path(data[len("world:") :]).expanduser() / "street")
    return StudyData.from_folder(Path(data).expanduser())
