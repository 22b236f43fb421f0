"""Pairing images with their label maps (semantic distortion) and predictions with targets (maps).

Files are matched by name without extension and without a role suffix. Cityscapes names an image
``aachen/aachen_000000_000019_leftImg8bit.png`` and its train-id map
``aachen/aachen_000000_000019_gtFine_labelTrainIds.png``: with ``image_suffix="_leftImg8bit"`` and
``label_suffix="_gtFine_labelTrainIds"`` both become the key ``aachen/aachen_000000_000019``. Keys are paths
relative to the searched folder, so equal names in different sub-folders stay apart; when the folders are
laid out differently (translated images written flat, labels in city folders), a file whose bare name (the
last part of its key) is unique on both sides is matched by that name.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semst.data.images import IMAGE_EXTENSIONS, find_images

__all__ = ["CITYSCAPES_IMAGE_SUFFIX", "CITYSCAPES_LABEL_SUFFIX", "match_pairs", "match_prediction_pairs"]

log = logging.getLogger("semst.evaluation")

CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
"""The suffix of Cityscapes image names (``*_leftImg8bit.png``)."""

CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelTrainIds"
"""The suffix of Cityscapes train-id maps (``*_gtFine_labelTrainIds.png``, made by cityscapesScripts)."""

_SHOWN = 5  # file names listed in an error message


@dataclass(frozen=True)
class _Entry:
    path: Path
    key: str  # relative path without extension and suffix, POSIX form; the bare name for listed files
    name: str  # the last part of the key


def _shown(names: Sequence[str]) -> str:
    listed = ", ".join(names[:_SHOWN])
    return (
        f"{listed}, ... ({len(names)} in all)" if len(names) > _SHOWN else f"{listed} ({len(names)} in all)"
    )


def _strip(path: Path, root: Path | None, suffix: str) -> str | None:
    """The key of ``path``, or ``None`` when its name does not end with ``suffix``."""
    relative = path.relative_to(root) if root is not None else Path(path.name)
    stem = relative.name[: -len(relative.suffix)] if relative.suffix else relative.name
    if suffix:
        if not stem.endswith(suffix):
            return None
        stem = stem[: -len(suffix)]
    return (relative.parent / stem).as_posix() if relative.parent != Path(".") else stem


def _list(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], role: str
) -> tuple[list[Path], Path | None]:
    """The files of a folder (recursively) with the folder as key root, or listed files with no root."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists():
            raise FileNotFoundError(f"The {role} folder '{root}' does not exist.")
        if not root.is_dir():
            return [root], None
        try:
            return find_images(root), root
        except ValueError as error:
            raise ValueError(f"The {role} folder '{root}' holds no images: {error}") from error
    files = [Path(item) for item in source]
    if not files:
        raise ValueError(f"The list of {role} files is empty.")
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"These {role} files do not exist: {_shown(missing)}.")
    return files, None


def _index(files: list[Path], root: Path | None, suffix: str, role: str) -> list[_Entry]:
    entries = []
    for path in files:
        key = _strip(path, root, suffix)
        if key is not None:
            entries.append(_Entry(path, key, key.rsplit("/", 1)[-1]))
    duplicates = sorted(key for key, count in Counter(entry.key for entry in entries).items() if count > 1)
    if duplicates:
        where = f"'{root}'" if root is not None else "the list"
        raise ValueError(
            f"Several {role} files in {where} have the same name apart from the extension"
            + (f" and suffix '{suffix}'" if suffix else "")
            + f", so they cannot be told apart: {_shown(duplicates)}. Keep one file per name."
        )
    return entries


def _unsuffixed(files: list[Path], entries: list[_Entry]) -> list[str]:
    """The files that :func:`_index` left out because their names lack the suffix."""
    keyed = {entry.path for entry in entries}
    return [str(path) for path in files if path not in keyed]


def _match(
    sources: list[_Entry], targets: list[_Entry]
) -> tuple[list[tuple[Path, Path]], list[_Entry], list[_Entry]]:
    """Pairs by key, then by unique bare name; returns pairs, unmatched sources and unused targets."""
    by_key = {entry.key: entry for entry in targets}
    source_names = Counter(entry.name for entry in sources)
    target_names = Counter(entry.name for entry in targets)
    by_name = {entry.name: entry for entry in targets if target_names[entry.name] == 1}
    # Exact keys first, so that a fallback by name never takes a target that another source matches exactly.
    matched: dict[int, _Entry] = {
        i: by_key[entry.key] for i, entry in enumerate(sources) if entry.key in by_key
    }
    used = {target.key for target in matched.values()}
    for i, entry in enumerate(sources):
        target = by_name.get(entry.name)
        if (
            i not in matched
            and source_names[entry.name] == 1
            and target is not None
            and target.key not in used
        ):
            matched[i] = target
            used.add(target.key)
    pairs = [(entry.path, matched[i].path) for i, entry in enumerate(sources) if i in matched]
    unmatched = [entry for i, entry in enumerate(sources) if i not in matched]
    unused = [entry for entry in targets if entry.key not in used]
    return pairs, unmatched, unused


def _suffix_note(first_role: str, first_suffix: str, second_role: str, second_suffix: str) -> str:
    return f"{first_role} suffix '{first_suffix}', {second_role} suffix '{second_suffix}'"


def match_pairs(
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    labels: str | os.PathLike[str],
    *,
    image_suffix: str = "",
    label_suffix: str = "",
) -> list[tuple[Path, Path]]:
    """Pairs every image with its label map.

    Both folders are searched recursively (:func:`semst.data.images.find_images`). An image's key is its path
    relative to ``images`` without extension and without ``image_suffix``; a label map's key likewise with
    ``label_suffix``. Images whose key equals a label's key are paired; an image left over is paired by its
    bare name when that name is unique among the images and among the labels. Files in ``labels`` whose name
    does not end with ``label_suffix`` are not label maps of this kind and are skipped (a Cityscapes ``gtFine``
    folder also holds ``_color``, ``_labelIds`` and ``_instanceIds`` maps). Label maps without an image are
    allowed (the images may be a subset) and reported in a logged warning.

    Args:
        images: A folder of images, an image file, or a list of image files (listed files are keyed by name).
        labels: The folder of label maps.
        image_suffix: Removed from the end of image names before matching; every image must end with it.
        label_suffix: Removed from the end of label names before matching; other files are skipped.

    Returns:
        ``(image, label)`` paths in the order of the images (sorted by relative path for a folder).

    Raises:
        FileNotFoundError: A folder or a listed image does not exist.
        ValueError: A folder holds no images, no label name ends with ``label_suffix``, an image name does not
            end with ``image_suffix``, two images (or labels) have the same key, or images have no label
            map (up to 5 names are listed with the count, and the suffixes used are given).
    """
    image_files, image_root = _list(images, "image")
    if not isinstance(labels, (str, os.PathLike)):
        raise TypeError(f"labels must be a folder, got {type(labels).__name__}.")
    label_files, label_root = _list(labels, "label")
    if label_root is None:
        raise ValueError(f"labels must be a folder of label maps, but '{labels}' is a file.")

    image_entries = _index(image_files, image_root, image_suffix, "image")
    wrong = _unsuffixed(image_files, image_entries)
    if wrong:
        raise ValueError(
            f"Image names must end with image_suffix '{image_suffix}' (before the extension), but these do "
            f"not: {_shown(wrong)}."
        )
    label_entries = _index(label_files, label_root, label_suffix, "label")
    if not label_entries:
        raise ValueError(
            f"No label map in '{label_root}' has a name ending with label_suffix '{label_suffix}' (before the "
            f"extension); the image files there are: {_shown([path.name for path in label_files])}."
        )

    pairs, unmatched, unused = _match(image_entries, label_entries)
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} of {len(image_entries)} images have no label map in '{label_root}' "
            f"({_suffix_note('image', image_suffix, 'label', label_suffix)}): "
            f"{_shown([str(entry.path) for entry in unmatched])}. Images and labels are matched by their path "
            f"relative to their folder, without extension and suffix (or by the bare name when it is unique); "
            f"check the folders and suffixes."
        )
    if unused:
        log.warning(
            "%d label maps in '%s' have no image and are not used: %s",
            len(unused),
            label_root,
            _shown([entry.key for entry in unused]),
        )
    return pairs


def match_prediction_pairs(
    pred_dir: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    pred_suffix: str = "",
    target_suffix: str = "",
) -> list[tuple[Path, Path]]:
    """Pairs translated images with their true images, for the paired (maps) protocol.

    Both folders are searched recursively and files are matched by their path relative to the folder without
    extension (any of :data:`semst.data.images.IMAGE_EXTENSIONS`, so ``a.png`` matches ``a.jpg``) and
    without the given suffixes, falling back to the bare name when it is unique on both sides. CycleGAN's
    ``maps`` data names a photo ``testA/1_A.jpg`` and its map ``testB/1_B.jpg``: translations of ``testA``
    keep the photo's name, so use ``pred_suffix="_A", target_suffix="_B"``. Every prediction needs a target and
    every target a prediction, so a failed or partial translation run cannot be scored on a subset unnoticed.

    Args:
        pred_dir: The folder of translated images.
        target_dir: The folder of true images.
        pred_suffix: Removed from the end of prediction names before matching; every name must end with it.
        target_suffix: Removed from the end of target names before matching; every name must end with it.

    Returns:
        ``(prediction, target)`` paths in the order of the predictions (sorted by relative path).

    Raises:
        FileNotFoundError: A folder does not exist.
        ValueError: A folder holds no images, a name lacks its suffix, two files have the same key, or a file
            on either side has no partner (up to 5 names are listed with the count).
    """
    roles = (("prediction", pred_dir, pred_suffix), ("target", target_dir, target_suffix))
    indexed = []
    for role, folder, suffix in roles:
        files, root = _list(folder, role)
        if root is None:
            raise ValueError(f"The {role} path '{folder}' must be a folder, not a file.")
        entries = _index(files, root, suffix, role)
        wrong = _unsuffixed(files, entries)
        if wrong:
            raise ValueError(
                f"{role.capitalize()} names must end with the suffix '{suffix}' (before the extension), but "
                f"these do not: {_shown(wrong)}."
            )
        indexed.append(entries)

    pairs, unmatched, unused = _match(indexed[0], indexed[1])
    note = _suffix_note("prediction", pred_suffix, "target", target_suffix)
    extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} of {len(indexed[0])} predictions have no target in '{target_dir}' ({note}): "
            f"{_shown([str(entry.path) for entry in unmatched])}. Files are matched by their relative path "
            f"without extension ({extensions}) and suffix."
        )
    if unused:
        raise ValueError(
            f"{len(unused)} of {len(indexed[1])} targets have no prediction in '{pred_dir}' ({note}): "
            f"{_shown([str(entry.path) for entry in unused])}. Translate every target's source image, or score "
            f"a folder holding only the targets you translated."
        )
    return pairs
