"""Refine a whole labelled data set into the target look, for unsupervised domain adaptation (paper 4.3).

``refine_dataset(model, dataset, out)`` translates every image of a data set (semst.data.datasets) at full
resolution with a trained translator and writes it at the same relative path under ``out``, with the
label maps copied (or hard-linked) unchanged next to them, so a domain-adaptation code base (DAFormer,
HRDA, SePiCo, ProDA, BDL, ...) trains on the refined data by changing only its data root.

* **Resumable.** Every file is written atomically (a temporary file, then a rename), so an interrupted run
  leaves no half-written image; running again skips what exists and writes the rest.
* **Safe.** The output folder may not be the data set's folder or lie inside it; source files are only
  read.
* **Checked.** At the end every sample must have its image (and label) in ``out``; ``out/refine.json`` is a
  manifest of what was written, from which checkpoint, with which settings, and what failed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from semst.data.images import ImageLoadError, load_rgb, save_image
from semst.files import atomic_path, write_json
from semst.tiling import Tiling

log = logging.getLogger("semst.refine")

MANIFEST = "refine.json"


@dataclass
class RefineReport:
    written: int = 0
    skipped: int = 0  # outputs that already existed (a resumed run)
    labels: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    missing: list[str] = field(default_factory=list)  # outputs absent after the run

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing


def _copy_atomic(source: Path, destination: Path, *, link: bool) -> None:
    """Copies or hard-links ``source`` to ``destination``; no half-written file is ever visible there."""
    if link:
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, destination)  # a new name for complete data: atomic by itself
            return
        except OSError:  # another file system, links not allowed, or the name exists: copy instead
            pass
    with atomic_path(destination) as temporary:
        shutil.copy2(source, temporary)


def check_output_folder(root: Path, out: Path) -> None:
    """Refuse an output folder that is the data set's folder or inside it (source files must stay intact)."""
    root, out = root.resolve(), out.resolve()
    if out == root or root in out.parents:
        raise ValueError(
            f"the output folder {out} is the data set's folder {root} or inside it; choose a folder outside "
            "the data set, so that no source file can be overwritten"
        )


def refine_dataset(
    model,
    samples: Sequence,
    out: str | Path,
    *,
    root: str | Path,
    description: dict | None = None,
    link_labels: bool = False,
    progress: bool = True,
    tiling: Tiling | None = None,
) -> RefineReport:
    """Translate ``samples`` (semst.data.datasets.Sample) into ``out``, mirroring their relative paths.

    Args:
        model: a `semst.translators.Translator` (multi-scale ones tile by default; single-scale ones
            translate whole images unless ``tiling.tile`` is given).
        samples: the data set's samples (image, label, relative paths).
        out: the output root.
        root: the data set's root (checked against ``out``).
        description: what to record in the manifest about the data set (name, root, split).
        link_labels: hard-link label maps instead of copying them (falls back to copying).
        tiling: how large images are cut (default: the translator's, `Translator.default_tiling`).
    """
    out = Path(out)
    check_output_folder(Path(root), out)
    out.mkdir(parents=True, exist_ok=True)
    report = RefineReport()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for sample in tqdm(samples, desc="refine", unit="img", disable=not progress, dynamic_ncols=True):
        destination = out / sample.relative
        if destination.is_file():
            report.skipped += 1
        else:
            try:
                image = load_rgb(sample.image)
            except ImageLoadError as exc:
                log.error("skipped %s: %s", sample.image, exc)
                report.failed.append((str(sample.image), str(exc)))
                continue
            try:
                # Large images get a second progress bar over their tile batches.
                big = progress and image.width * image.height > 1_000_000
                save_image(model.translate(image, tiling, progress=big), destination)
            except (OSError, ValueError, RuntimeError) as exc:
                log.error("failed on %s: %s", sample.image, exc)
                report.failed.append((str(sample.image), f"{type(exc).__name__}: {exc}"))
                continue
            report.written += 1
        if sample.label is not None:
            label_destination = out / sample.label_relative
            if not label_destination.is_file():
                _copy_atomic(Path(sample.label), label_destination, link=link_labels)
                report.labels += 1
    # Final check: every sample has its outputs.
    for sample in samples:
        if not (out / sample.relative).is_file():
            report.missing.append(str(sample.relative))
        elif sample.label is not None and not (out / sample.label_relative).is_file():
            report.missing.append(str(sample.label_relative))
    manifest = {
        "format": "semst-refined",
        "dataset": description or {"root": str(root)},
        "checkpoint": str(model.checkpoint_path) if model.checkpoint_path is not None else None,
        "checkpoint_step": model.step,
        "multiscale": model.kind == "multi-scale",
        "tiling": dataclasses.asdict(tiling if tiling is not None else model.default_tiling()),
        "labels": "hard links" if link_labels else "copies",
        "samples": len(samples),
        "written": report.written,
        "skipped_existing": report.skipped,
        "labels_written": report.labels,
        "failed": [{"image": image, "reason": reason} for image, reason in report.failed],
        "missing": report.missing,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(out / MANIFEST, manifest)
    return report
