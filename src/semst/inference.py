"""Translate image files and folders with a trained model (what ``semst translate`` runs).

Each input folder is searched recursively and its images are written under the output folder with the
same relative paths; an input file is written under its own name. Unreadable images, and images of more than
``max_pixels`` pixels, are reported by name and skipped; every output is written atomically, so an
interrupted run leaves no half-written image. Nothing is written over an input: an output folder (or fusion
panel folder) that holds an input image or the checkpoint is refused before anything is read
(`semst.overlap.refuse_overlap`). A full disk stops the run with an error naming the file it could not write.

Under torchrun (``torchrun --nproc_per_node N -m semst translate ...``) every process plans the same list of
files and translates its share (`semst.runtime.Distributed.shard`); with ``overwrite=False`` the outputs that
already exist are found first, by all processes together, and only the missing ones are shared out, so a
run that was stopped resumes evenly across the processes. Every process returns the merged report.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from semst.data.images import IMAGE_EXTENSIONS, ImageLoadError, find_images, load_rgb, save_image
from semst.overlap import refuse_overlap
from semst.runtime import Distributed, check_job_precision
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
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"the output folder {output_dir} is a file; choose a folder")
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
        seen[dst] = src
    # Against the whole input set, not only each output's own input: translating nest into nest/sub would
    # replace nest/sub/a.png with the translation of nest/a.png.
    refuse_overlap([src for src, _ in pairs], folders=[output_dir])
    return pairs


def panel_paths(
    pairs: Sequence[tuple[Path, Path]], output_dir: str | Path, fusion_dir: str | Path
) -> list[Path]:
    """Where ``--fusion-panels`` writes each image's panel (PNG, under the output's relative name).

    Raises:
        semst.overlap.OverlapError: The panel folder holds an input, or a panel would replace a translation.
    """
    output_dir, fusion_dir = Path(output_dir), Path(fusion_dir)
    if fusion_dir.exists() and not fusion_dir.is_dir():
        raise ValueError(f"--fusion-panels {fusion_dir} is a file; choose a folder")
    refuse_overlap([src for src, _ in pairs], folders=[fusion_dir])
    panels = [fusion_dir / dst.relative_to(output_dir).with_suffix(".png") for _, dst in pairs]
    outputs = {dst.resolve() for _, dst in pairs}
    for panel in panels:
        if panel.resolve() in outputs:
            raise ValueError(
                f"--fusion-panels {fusion_dir}: the panel {panel} would replace a translation; choose a panel "
                "folder outside the output folder"
            )
    return panels


@contextlib.contextmanager
def _size_checked_here() -> Iterator[None]:
    """Pillow's own decompression-bomb check off (restored afterwards): `translate_files` reads every image's
    size from its header first and refuses one above ``max_pixels`` by name, before decoding it."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_large(path: Path, max_pixels: int) -> str | None:
    """Why ``path`` is refused for its size (read from its header), or None; unreadable files pass here
    (loading them reports why)."""
    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except Exception:  # noqa: BLE001 - load_rgb reports unreadable files
        return None
    if width * height > max_pixels:
        return (
            f"{width}x{height} = {width * height} pixels is above --max-pixels {max_pixels} (raise it to "
            "translate this image; large images are translated in tiles)"
        )
    return None


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
    max_pixels: int | None = None,
    shards: Distributed | None = None,
) -> TranslationReport:
    """Translate ``inputs`` (files and folders) into ``output_dir`` with a `semst.translators.Translator`.

    ``tiling`` (default: the translator's) bounds the memory of large images and sets the precision of the
    passes (`Translator.translate_tensor`). With ``fusion_dir`` (multi-scale translators), a picture of the
    global output, local output, M_s and fused result is also written there per image, as PNG under the
    output's relative name. Images of more than ``max_pixels`` pixels (default: Pillow's
    ``Image.MAX_IMAGE_PIXELS``) are reported as failed and skipped. ``shards`` (a torchrun job's
    `semst.runtime.Distributed`) shares the files out among the processes; every process returns the report
    of the whole job, its lists in the order of the inputs.

    Raises:
        semst.overlap.OverlapError: An output or panel folder holds an input image or the checkpoint.
        OSError: The disk is full (the message names the file that could not be written).
        ValueError: The tiling's precision cannot run on the translator's device (fp16 off CUDA).
    """
    shards = shards if shards is not None else Distributed()
    pairs = plan_outputs(inputs, output_dir, ext)
    if fusion_dir is not None and not hasattr(translator, "translate_parts"):
        raise ValueError("fusion panels need a multi-scale translator; this one has a single generator")
    checkpoint = getattr(translator, "checkpoint_path", None)
    refuse_overlap([checkpoint], folders=[output_dir, fusion_dir])
    panels = panel_paths(pairs, output_dir, fusion_dir) if fusion_dir is not None else [None] * len(pairs)
    max_pixels = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"--max-pixels must be a positive number of pixels, got {max_pixels!r}")
    if tiling is not None:
        check_job_precision(translator.device, tiling.precision, log, is_main=shards.is_main)
    everyone = range(len(pairs))
    existing: set[int] = set()
    if not overwrite:  # found by all processes together, before any of them writes
        found = [i for i in shards.shard(everyone) if pairs[i][1].exists()]
        existing = {i for share in shards.all_gather_object(found) for i in share}
    mine = shards.shard([i for i in everyone if i not in existing])
    written: list[int] = []
    failed: list[tuple[int, str]] = []
    bar = tqdm(
        mine, desc="translate", unit="img", disable=not (progress and shards.is_main), dynamic_ncols=True
    )
    with _size_checked_here(), bar:
        for i in bar:
            (src, dst), panel = pairs[i], panels[i]
            reason = _too_large(src, max_pixels)
            if reason is not None:
                log.error("skipped %s: %s", src, reason)
                failed.append((i, reason))
                continue
            try:
                image = load_rgb(src)
            except ImageLoadError as exc:
                log.error("skipped %s: %s", src, exc)
                failed.append((i, str(exc)))
                continue
            try:
                _translate_one(translator, image, dst, panel, tiling, progress)
            except (OSError, ValueError, RuntimeError) as exc:  # e.g. out of memory, unwritable output
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    # Every further write would fail too: stop, saying where.
                    where = exc.filename or dst
                    raise OSError(
                        exc.errno,
                        f"{exc.strerror or os.strerror(exc.errno)}; stopped after writing "
                        f"{len(written)} image(s)",
                        str(where),
                    ) from exc
                log.error("failed on %s: %s", src, exc)
                failed.append((i, f"{type(exc).__name__}: {exc}"))
                if (
                    isinstance(exc, RuntimeError)
                    and "out of memory" in str(exc)
                    and torch.cuda.is_available()
                ):
                    torch.cuda.empty_cache()
                continue
            written.append(i)
    shares = shards.all_gather_object((written, failed))
    return TranslationReport(
        written=[pairs[i][1] for i in sorted(i for done, _ in shares for i in done)],
        skipped=[pairs[i][1] for i in sorted(existing)],
        failed=[(pairs[i][0], reason) for i, reason in sorted(item for _, bad in shares for item in bad)],
    )


def _translate_one(
    translator, image, dst: Path, panel: Path | None, tiling: Tiling | None, progress: bool
) -> None:
    # Large images get a second progress bar over their tile batches.
    big = progress and image.width * image.height > 1_000_000
    if panel is None:
        result = translator.translate(image, tiling, progress=big)
    else:
        from semst.multiscale.visualize import fusion_panel

        parts = translator.translate_parts(image, tiling)
        result = parts["fused"]
        save_image(fusion_panel(image, parts), panel)
    save_image(result, dst)
