"""Translate image files and folders with a trained model (what ``semst translate`` runs).

Each input folder is searched recursively and its images are written under the output folder with the
same relative paths; an input file is written under its own name. Unreadable images are reported by name
and skipped; every output is written atomically, so an interrupted run leaves no half-written image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from semst.data.images import IMAGE_EXTENSIONS, ImageLoadError, find_images, load_rgb, save_image
from semst.tiling import Tiling

log = logging.getLogger("semst.translate")


@dataclass
class TranslationReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that existed (overwrite=False)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, reason)

    @property
    def ok(self) -> bool:
        return not self.failed


def plan_outputs(
    inputs: Sequence[str | Path], output_dir: str | Path, ext: str | None = None
) -> list[tuple[Path, Path]]:
    """Pair every input image with its output path; raises if inputs are missing or outputs collide."""
    output_dir = Path(output_dir)
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(
                f"--ext {ext} is not an image extension; use one of {', '.join(sorted(IMAGE_EXTENSIONS))}"
            )
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            pairs += [(p, output_dir / p.relative_to(root)) for p in find_images(root)]
        elif root.exists():
            pairs.append((root, output_dir / root.name))
        else:
            raise FileNotFoundError(f"input {root} does not exist")
    if ext is not None:
        pairs = [(src, dst.with_suffix(ext)) for src, dst in pairs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise ValueError(
                f"{src} and {seen[dst]} would both be written to {dst}; translate them separately"
            )
        if dst.resolve() == src.resolve():
            raise ValueError(f"output {dst} is the input itself; choose another output folder")
        seen[dst] = src
    return pairs


def translate_files(
    translator,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    tiling: Tiling | None = None,
    ext: str | None = None,
    overwrite: bool = True,
    progress: bool = True,
    fusion_dir: str | Path | None = None,
) -> TranslationReport:
    """Translate ``inputs`` (files and folders) into ``output_dir`` with a `semst.translators.Translator`.

    ``tiling`` (default: the translator's) bounds the memory of large images (`Translator.translate_tensor`).
    With ``fusion_dir`` (multi-scale translators), a picture of the global output, local output, M_s and
    fused result is also written there per image, as PNG under the output's relative name.
    """
    pairs = plan_outputs(inputs, output_dir, ext)
    if fusion_dir is not None and not hasattr(translator, "translate_parts"):
        raise ValueError("fusion panels need a multi-scale translator; this one has a single generator")
    output_dir = Path(output_dir)
    report = TranslationReport()
    for src, dst in tqdm(pairs, desc="translate", unit="img", disable=not progress, dynamic_ncols=True):
        if dst.exists() and not overwrite:
            report.skipped.append(dst)
            continue
        try:
            image = load_rgb(src)
        except ImageLoadError as exc:
            log.error("skipped %s: %s", src, exc)
            report.failed.append((src, str(exc)))
            continue
        try:
            # Large images get a second progress bar over their tile batches.
            big = progress and image.width * image.height > 1_000_000
            if fusion_dir is None:
                result = translator.translate(image, tiling, progress=big)
            else:
                from semst.multiscale.visualize import fusion_panel

                parts = translator.translate_parts(image, tiling)
                result = parts["fused"]
                panel = Path(fusion_dir) / dst.relative_to(output_dir).with_suffix(".png")
                save_image(fusion_panel(image, parts), panel)
            save_image(result, dst)
        except (OSError, ValueError, RuntimeError) as exc:  # e.g. out of memory, unwritable output
            log.error("failed on %s: %s", src, exc)
            report.failed.append((src, f"{type(exc).__name__}: {exc}"))
            if isinstance(exc, RuntimeError) and "out of memory" in str(exc) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        report.written.append(dst)
    return report
