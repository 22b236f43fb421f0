"""Public data sets in the layouts their users download: GTA5, SYNTHIA, Cityscapes, pix2pix Maps, CUT folders.

A data set is named on the command line as ``"name:/path"`` (``gta5:/data/GTA5``, ``cityscapes:/data/cityscapes``)
and opened with :func:`open_dataset`. Every data set lists its samples (:class:`Sample`: image, optional label and
their paths relative to the root, so a translated copy can mirror the layout) and converts its labels to the 19
Cityscapes train ids with :meth:`DatasetLayout.load_label`. :func:`check` verifies, reading image headers only,
that every label has the size of its image before a long run starts.

Layouts (``ROOT`` is the path given after the colon):

- ``gta5``: ``ROOT/images/*.png`` and ``ROOT/labels/*.png`` (Cityscapes label ids). One split, ``"all"``.
- ``synthia``: SYNTHIA-RAND-CITYSCAPES, ``ROOT/RGB/*.png`` and ``ROOT/GT/LABELS/*.png`` (16-bit, SYNTHIA ids in
  the first channel; :mod:`semst.data.synthia_labels`). One split, ``"all"``; 16 of the 19 classes occur.
- ``cityscapes``: ``ROOT/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
  ``ROOT/gtFine/{split}/{city}/*_gtFine_labelTrainIds.png``, or ``*_gtFine_labelIds.png`` where the train-id
  file is absent. Splits ``train``, ``val``, ``test``; ``test`` is unlabelled.
- ``cityscapes_parsing``: the parsing-to-image task; the source images are the colour maps
  ``ROOT/gtFine/{split}/{city}/*_gtFine_color.png`` and the labels are the same frames' train ids.
- ``maps``: pix2pix's Maps, ``ROOT/train/*.jpg`` and ``ROOT/val/*.jpg``, photo (left) and map (right) side by
  side; :func:`split_pair` and :func:`write_unaligned_maps` cut them into ``trainA/ trainB/ valA/ valB/``.
- ``folder``: CUT's unaligned folders ``ROOT/trainA``, ``trainB``, ``valA``, ``valB``, ``testA``, ``testB``
  (each split is one of these folders); optional labels (train ids, as :func:`semst.data.labels.save_label_map`
  writes them) in ``ROOT/<split>_labels/`` with the images' relative paths and stems.

:meth:`DatasetLayout.check_label` validates one label file before it is used or copied: it decodes, has its image's size,
and holds only ids of the data set's own label table (or 255). A symbolic link whose target is missing is listed
like a file (it is not silently left out), so the error that follows names it (:func:`dangling_link`).

Labels are optional everywhere: when a data set's label folder is absent (a Cityscapes download without
``gtFine``, a folder without ``*_labels``), samples have ``label=None`` and :meth:`DatasetLayout.load_label` says
so. When the label folder exists, every image must have a label, otherwise the images without one are listed.

To add a layout: subclass :class:`DatasetLayout`, implement ``_find_splits``, ``_samples`` and ``_read_label``, add
the class to :data:`DATASETS` and a fixture tree to ``tests/data/test_datasets.py``. (The base class is not called
``Dataset``, so that it is never mistaken for ``torch.utils.data.Dataset``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from semst.data.images import IMAGE_EXTENSIONS, ImageLoadError, load_rgb, save_image
from semst.data.labels import (
    CITYSCAPES_LABELS,
    IGNORE_INDEX,
    NUM_TRAIN_IDS,
    ids_to_train_ids,
    load_label_map,
)
from semst.data.synthia_labels import (
    SYNTHIA_LABELS,
    SYNTHIA_PRESENT_TRAIN_IDS,
    load_synthia_ids,
    load_synthia_label,
)

__all__ = [
    "DATASETS",
    "Cityscapes",
    "CityscapesParsing",
    "DatasetError",
    "DatasetLayout",
    "GTA5",
    "LabelError",
    "Maps",
    "Sample",
    "Synthia",
    "TRAIN_ID_TABLE",
    "UnalignedFolders",
    "check",
    "check_label_file",
    "dangling_link",
    "open_dataset",
    "split_pair",
    "write_unaligned_maps",
]

# How many offending files an error message names before it only counts the rest.
_MAX_LISTED = 5
# EXIF orientations that swap width and height (load_rgb and load_label_map apply them).
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


# The ids a label file may hold, per kind of file (the data set's own label table), besides IGNORE_INDEX.
TRAIN_ID_TABLE: frozenset[int] = frozenset(range(NUM_TRAIN_IDS))
"""The ids a train-id label map may hold besides 255: 0..18."""
_CITYSCAPES_IDS = frozenset(label.id for label in CITYSCAPES_LABELS if label.id >= 0)
# GTA5 label files use the Cityscapes ids; 34 is accepted too (the licence plate's id -1 has no 8-bit value, and
# files may hold 34 for it). Both 34 and the ids without a train id convert to IGNORE_INDEX.
_GTA5_IDS = _CITYSCAPES_IDS | {34}
_SYNTHIA_IDS = frozenset(label.id for label in SYNTHIA_LABELS)


class DatasetError(ValueError):
    """A data set's files do not have the expected layout; the message names the path and what was expected."""


class LabelError(DatasetError):
    """A label file cannot be used: unreadable, not its image's size, or ids outside the label table.

    Attributes:
        path: The label file.
        reason: What is wrong with it (without the path).
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Label '{path}': {reason}")


def dangling_link(path: Path) -> str | None:
    """``"a symbolic link to 'TARGET', which does not exist"`` for a dangling link, else ``None``."""
    if path.is_symlink() and not path.exists():
        try:
            target = os.readlink(path)
        except OSError:  # pragma: no cover - raced away
            target = "?"
        return f"a symbolic link to '{target}', which does not exist"
    return None


@dataclass(frozen=True)
class Sample:
    """One image of a data set, with its label file if it has one.

    Attributes:
        image: The image file.
        label: The label file in the data set's own format (:meth:`DatasetLayout.load_label` converts it), or
            ``None``.
        relative: ``image`` relative to the data-set root, e.g. ``leftImg8bit/val/lindau/x_leftImg8bit.png``;
            a translated copy written to ``OUT / relative`` mirrors the layout.
        label_relative: ``label`` relative to the data-set root, or ``None``.
    """

    image: Path
    label: Path | None
    relative: Path
    label_relative: Path | None


def _listing(items: Sequence[object], limit: int = _MAX_LISTED) -> str:
    """``"a, b, c"`` or ``"a, b, c, ... (12 in all)"`` for error messages."""
    shown = ", ".join(str(item) for item in items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


def _subfolders(folder: Path) -> list[str]:
    return sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )


def _oriented_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image as loaded (after EXIF orientation), from its header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format in ("JPEG", "TIFF", "WEBP"):  # PNG getexif() would decode the image
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
                if orientation in _TRANSPOSING_ORIENTATIONS:
                    width, height = height, width
    except Exception as error:
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error
    return width, height


def _images_in(folder: Path, *, suffix: str | None, recursive: bool) -> list[Path]:
    """Sorted image files in ``folder`` (ending in ``suffix`` when given), hidden names skipped.

    Dangling symbolic links with an image name are listed too, so that reading them fails with their name
    instead of the file silently missing from the data set."""
    pattern = "**/*" if recursive else "*"
    found = []
    for path in folder.glob(pattern):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not path.is_file() and dangling_link(path) is None:
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if suffix is not None and not path.name.endswith(suffix):
            continue
        found.append(path)
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


class DatasetLayout:
    """A data set on disk: its splits, its samples and its labels as Cityscapes train ids.

    Construct one with :func:`open_dataset` or a subclass directly (``GTA5("/data/GTA5")``). The root's layout is
    checked on construction; the files of a split are listed by :meth:`samples`.

    Attributes:
        name: The registry name, e.g. ``"gta5"``.
        root: The data-set root.
        splits: The splits found under ``root``, e.g. ``("train", "val", "test")``.
        split: The split :meth:`samples` lists when called without one.
        num_classes: Size of the label space: the 19 Cityscapes train ids for every data set.
        present_classes: The train ids the data set annotates (16 for SYNTHIA, none for Maps).
    """

    name: ClassVar[str] = ""
    expected_layout: ClassVar[str] = ""
    default_split: ClassVar[str] = ""
    num_classes: ClassVar[int] = NUM_TRAIN_IDS
    present_classes: ClassVar[tuple[int, ...]] = tuple(range(NUM_TRAIN_IDS))

    def __init__(self, root: str | os.PathLike[str], *, split: str | None = None) -> None:
        """Opens the data set at ``root``.

        Args:
            root: The data-set root (the folder the download unpacks to).
            split: The default split of :meth:`samples`; ``None`` picks the data set's usual one (``"all"`` or
                ``"train"``, or for folders the first of ``trainA``, ``valA``, ``testA`` ... that exists).

        Raises:
            DatasetError: ``root`` is missing or not a folder, does not have the expected sub-folders (the
                message names them and what ``root`` holds), or ``split`` is not one of its splits.
        """
        self.root = Path(root)
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a folder"
            raise DatasetError(
                f"{self.name} data set root '{self.root}' {what}; expected a folder with {self.expected_layout}."
            )
        self.splits: tuple[str, ...] = tuple(self._find_splits())
        if not self.splits:
            raise self._wrong_root()
        self.split = self._resolve_split(split if split is not None else self._usual_split())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r})"

    # Subclasses implement these three.
    def _find_splits(self) -> list[str]:
        raise NotImplementedError

    def _samples(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def _read_label(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def _label_ids(self, path: Path) -> tuple[np.ndarray, frozenset[int]]:
        """A label file's ids in the data set's own format, and the ids its label table allows (besides
        :data:`IGNORE_INDEX`). Subclasses with labels implement it."""
        raise NotImplementedError

    def _usual_split(self) -> str:
        return self.default_split if self.default_split in self.splits else self.splits[0]

    def _wrong_root(self) -> DatasetError:
        found = _subfolders(self.root)
        holds = f"it holds the folders {_listing(found, 10)}" if found else "it holds no folders"
        return DatasetError(
            f"'{self.root}' is not a {self.name} data set root: expected {self.expected_layout}; {holds}."
        )

    def _resolve_split(self, split: str | None) -> str:
        if split is None:
            return self.split
        if split not in self.splits:
            raise DatasetError(
                f"Split '{split}' is not available in the {self.name} data set at '{self.root}'; available "
                f"splits: {', '.join(self.splits)} (expected layout: {self.expected_layout})."
            )
        return split

    def samples(self, split: str | None = None) -> list[Sample]:
        """Lists a split's samples, sorted by their path relative to the root (the same on every machine).

        Args:
            split: One of :attr:`splits`; ``None`` lists :attr:`split`.

        Returns:
            The samples; ``label`` is ``None`` where the data set has no labels for the split.

        Raises:
            DatasetError: The split is unknown, its folder holds no images, or its label folder exists but some
                images have no label (the first five and the count are named).
        """
        return self._samples(self._resolve_split(split))

    def load_image(self, sample: Sample) -> Image.Image:
        """Loads a sample's image as 8-bit RGB (:func:`semst.data.images.load_rgb`)."""
        return load_rgb(sample.image)

    def load_label(self, sample: Sample) -> np.ndarray:
        """Loads a sample's label as Cityscapes train ids, converted from the data set's own ids.

        Args:
            sample: A sample of this data set with a label.

        Returns:
            ``(H, W)`` ``uint8`` train ids 0..18, 255 (:data:`semst.data.labels.IGNORE_INDEX`) for ignored pixels.

        Raises:
            DatasetError: The sample has no label, or the label's size differs from its image's.
            ImageLoadError: A file cannot be read.
        """
        if sample.label is None:
            raise DatasetError(
                f"Image '{sample.image}' of the {self.name} data set at '{self.root}' has no label; expected "
                f"{self.expected_layout}."
            )
        train_ids = self._read_label(sample.label)  # (H, W)
        label_size = (train_ids.shape[1], train_ids.shape[0])
        image_size = _oriented_size(sample.image)
        if label_size != image_size:
            raise DatasetError(_size_message(sample, image_size, label_size))
        return train_ids

    def check_label(self, sample: Sample) -> None:
        """Validates a sample's label file completely (it is decoded): it is readable, has its image's size,
        and holds only ids of the data set's label table or 255 (:func:`check_label_file`).

        Args:
            sample: A sample of this data set with a label.

        Raises:
            LabelError: What is wrong, naming the label file (and the image for a size mismatch).
        """
        if sample.label is None:
            raise DatasetError(f"Image '{sample.image}' of the {self.name} data set has no label to check.")
        check_label_file(Path(sample.label), Path(sample.image), self._label_ids, self.name)

    # Shared helpers for subclasses.
    def _require_images(
        self, folder: Path, *, suffix: str | None = None, recursive: bool = False
    ) -> list[Path]:
        if not folder.is_dir():
            raise self._wrong_root()
        images = _images_in(folder, suffix=suffix, recursive=recursive)
        if not images:
            wanted = f"*{suffix}" if suffix else f"images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            raise DatasetError(
                f"No images in '{folder}'{' or its sub-folders' if recursive else ''}: expected {wanted} files "
                f"({self.name} layout: {self.expected_layout})."
            )
        return images

    def _pair(
        self, images: Iterable[Path], label_folder: Path | None, label_of: dict[Path, Path | None]
    ) -> list[Sample]:
        """Builds samples; ``label_of[image]`` is its label or ``None``; missing labels are an error when
        ``label_folder`` exists."""
        samples = []
        missing = []
        for image in images:
            label = label_of.get(image)
            if label is None and label_folder is not None:
                missing.append(image.relative_to(self.root).as_posix())
            samples.append(
                Sample(
                    image=image,
                    label=label,
                    relative=image.relative_to(self.root),
                    label_relative=None if label is None else label.relative_to(self.root),
                )
            )
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) of the {self.name} data set at '{self.root}' have no label in "
                f"'{label_folder}' (expected {self.expected_layout}): {_listing(missing)}."
            )
        return samples

    def _pair_by_name(self, images: list[Path], label_folder: Path) -> list[Sample]:
        """Builds samples whose label is the file of the image's name in ``label_folder`` (GTA5, SYNTHIA);
        unlabelled samples when that folder is absent."""
        if not label_folder.is_dir():
            return self._pair(images, None, {})
        label_of = {image: label_folder / image.name for image in images}
        label_of = {
            image: (label if label.is_file() or dangling_link(label) else None)
            for image, label in label_of.items()
        }
        return self._pair(images, label_folder, label_of)


def check_label_file(
    label: Path,
    image: Path,
    read: Callable[[Path], tuple[np.ndarray, frozenset[int]]],
    table: str,
) -> None:
    """Validates a label file: readable, the size of its image, only ids of its label table or 255.

    Args:
        label: The label file.
        image: Its image (only the header is read). An image whose header cannot be read is not the label's
            fault: the sizes are then not compared.
        read: Returns the file's ids ``(H, W)`` in its own format and the ids its table allows (besides
            :data:`~semst.data.labels.IGNORE_INDEX`), e.g. ``lambda p: (load_label_map(p), TRAIN_ID_TABLE)``.
        table: The table's name for messages (``"gta5"``).

    Raises:
        LabelError: What is wrong, naming the label file (and the image for a size mismatch).
    """
    dangling = dangling_link(label)
    if dangling is not None:
        raise LabelError(label, f"is {dangling}")
    try:
        values, allowed = read(label)  # (H, W)
    except ImageLoadError as error:
        raise LabelError(label, f"cannot be decoded ({error.reason or error})") from error
    except ValueError as error:
        raise LabelError(label, str(error)) from error
    try:
        image_size = _oriented_size(image)
    except ImageLoadError:
        image_size = None
    label_size = (values.shape[1], values.shape[0])
    if image_size is not None and label_size != image_size:
        raise LabelError(
            label,
            f"is {label_size[0]}x{label_size[1]} (width x height) but its image '{image}' is "
            f"{image_size[0]}x{image_size[1]}",
        )
    unknown = [int(v) for v in np.unique(values) if int(v) not in allowed and int(v) != IGNORE_INDEX]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise LabelError(
            label,
            f"holds the ids {shown}, which are not in the {table} label table ({_id_ranges(allowed)}, or "
            f"{IGNORE_INDEX} for ignored pixels)",
        )


def _id_ranges(ids: frozenset[int]) -> str:
    """``"0..18"`` or ``"0..5, 7..9"``: a set of ids as ranges."""
    runs: list[list[int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)


def _size_message(sample: Sample, image_size: tuple[int, int], label_size: tuple[int, int]) -> str:
    return (
        f"Label '{sample.label}' is {label_size[0]}x{label_size[1]} (width x height) but its image "
        f"'{sample.image}' is {image_size[0]}x{image_size[1]}; a label must have its image's size."
    )


class GTA5(DatasetLayout):
    """GTA5 ("Playing for Data"): ``images/*.png`` and ``labels/*.png`` holding Cityscapes label ids.

    The download's optional split files are not used: the one split is ``"all"``.
    """

    name = "gta5"
    expected_layout = "the sub-folders images/ and labels/ (images/00001.png, labels/00001.png)"
    default_split = "all"

    def _find_splits(self) -> list[str]:
        return ["all"] if (self.root / "images").is_dir() else []

    def _samples(self, split: str) -> list[Sample]:
        return self._pair_by_name(self._require_images(self.root / "images"), self.root / "labels")

    def _read_label(self, path: Path) -> np.ndarray:
        return ids_to_train_ids(load_label_map(path))

    def _label_ids(self, path: Path) -> tuple[np.ndarray, frozenset[int]]:
        return load_label_map(path), _GTA5_IDS


class Synthia(DatasetLayout):
    """SYNTHIA-RAND-CITYSCAPES: ``RGB/*.png`` and ``GT/LABELS/*.png`` (16-bit, SYNTHIA id in the first channel).

    Labels are mapped into the Cityscapes train ids by :data:`semst.data.synthia_labels.SYNTHIA_LABELS`; the 16
    train ids that occur are :attr:`present_classes` (terrain, truck and train never occur).
    """

    name = "synthia"
    expected_layout = "the sub-folders RGB/ and GT/LABELS/ (RGB/0000000.png, GT/LABELS/0000000.png)"
    default_split = "all"
    present_classes = SYNTHIA_PRESENT_TRAIN_IDS

    def _find_splits(self) -> list[str]:
        return ["all"] if (self.root / "RGB").is_dir() else []

    def _samples(self, split: str) -> list[Sample]:
        return self._pair_by_name(self._require_images(self.root / "RGB"), self.root / "GT" / "LABELS")

    def _read_label(self, path: Path) -> np.ndarray:
        return load_synthia_label(path)

    def _label_ids(self, path: Path) -> tuple[np.ndarray, frozenset[int]]:
        return load_synthia_ids(path), _SYNTHIA_IDS


_CITYSCAPES_SPLITS = ("train", "val", "test")
_CITYSCAPES_UNLABELLED_SPLITS = frozenset({"test"})


def _cityscapes_label(frame_prefix: Path) -> Path | None:
    """The frame's label file: ``*_gtFine_labelTrainIds.png``, else ``*_gtFine_labelIds.png``, else ``None``.

    ``frame_prefix`` is ``gtFine/{split}/{city}/{city}_{seq}_{frame}``.
    """
    for ending in ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png"):
        candidate = frame_prefix.with_name(frame_prefix.name + ending)
        if candidate.is_file() or dangling_link(candidate):
            return candidate
    return None


def _read_cityscapes_label(path: Path) -> np.ndarray:
    values = load_label_map(path)
    return values if path.name.endswith("_labelTrainIds.png") else ids_to_train_ids(values)


class Cityscapes(DatasetLayout):
    """Cityscapes: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with labels from ``gtFine/{split}/{city}/``.

    A frame's label is ``*_gtFine_labelTrainIds.png`` (written by cityscapesScripts' ``createTrainIdLabelImgs``)
    when present, else ``*_gtFine_labelIds.png`` converted with :func:`semst.data.labels.ids_to_train_ids`. The
    ``test`` split's public labels are all-ignore, so its samples are unlabelled; so are a split's samples when
    ``gtFine/{split}`` is absent (only ``leftImg8bit`` downloaded).
    """

    name = "cityscapes"
    expected_layout = (
        "the sub-folders leftImg8bit/{train,val,test}/{city}/*_leftImg8bit.png and, for labels, "
        "gtFine/{split}/{city}/*_gtFine_labelTrainIds.png or *_gtFine_labelIds.png"
    )
    default_split = "train"
    _image_folder = "leftImg8bit"
    _image_suffix = "_leftImg8bit.png"

    def _find_splits(self) -> list[str]:
        folder = self.root / self._image_folder
        return [split for split in _CITYSCAPES_SPLITS if (folder / split).is_dir()]

    def _samples(self, split: str) -> list[Sample]:
        images = self._require_images(
            self.root / self._image_folder / split, suffix=self._image_suffix, recursive=True
        )
        label_folder = self.root / "gtFine" / split
        if split in _CITYSCAPES_UNLABELLED_SPLITS or not label_folder.is_dir():
            return self._pair(images, None, {})
        label_of = {}
        for image in images:
            city = image.parent.name
            frame = image.name[: -len(self._image_suffix)]
            label_of[image] = _cityscapes_label(label_folder / city / frame)
        return self._pair(images, label_folder, label_of)

    def _read_label(self, path: Path) -> np.ndarray:
        return _read_cityscapes_label(path)

    def _label_ids(self, path: Path) -> tuple[np.ndarray, frozenset[int]]:
        train_ids = path.name.endswith("_labelTrainIds.png")
        return load_label_map(path), TRAIN_ID_TABLE if train_ids else _CITYSCAPES_IDS


class CityscapesParsing(Cityscapes):
    """Cityscapes' parsing-to-image task: the colour maps ``gtFine/{split}/{city}/*_gtFine_color.png`` are the
    source images; their labels are the same frames' train ids (as in :class:`Cityscapes`)."""

    name = "cityscapes_parsing"
    expected_layout = (
        "the sub-folder gtFine/{train,val,test}/{city}/ holding *_gtFine_color.png with "
        "*_gtFine_labelTrainIds.png or *_gtFine_labelIds.png"
    )
    _image_folder = "gtFine"
    _image_suffix = "_gtFine_color.png"


class Maps(DatasetLayout):
    """pix2pix's Maps: ``train/*.jpg`` and ``val/*.jpg``, each an aerial photo (left half) beside its map (right).

    The samples are the side-by-side images, without labels; :func:`split_pair` cuts one and
    :func:`write_unaligned_maps` writes all halves as unaligned folders for ``semst train``.
    """

    name = "maps"
    expected_layout = "the sub-folders train/ and val/ holding photo|map side-by-side images (train/1.jpg)"
    default_split = "train"
    present_classes = ()

    def _find_splits(self) -> list[str]:
        return [split for split in ("train", "val", "test") if (self.root / split).is_dir()]

    def _samples(self, split: str) -> list[Sample]:
        return self._pair(self._require_images(self.root / split), None, {})

    def _read_label(self, path: Path) -> np.ndarray:  # pragma: no cover - samples never have labels
        raise DatasetError(f"The maps data set has no labels ('{path}').")


_FOLDER_SPLITS = ("trainA", "trainB", "valA", "valB", "testA", "testB")
_LABEL_FOLDER_SUFFIX = "_labels"


class UnalignedFolders(DatasetLayout):
    """CUT's unaligned folders: ``trainA/``, ``trainB/``, ``valA/``, ``valB/``, ``testA/``, ``testB/``.

    Each existing folder is a split (images searched recursively). Labels are optional: ``<split>_labels/`` holds
    train-id maps (as :func:`semst.data.labels.save_label_map` writes) with the images' relative paths and
    stems, any lossless image extension (``trainA/x/1.jpg`` -> ``trainA_labels/x/1.png``).
    """

    name = "folder"
    expected_layout = "one or more of the sub-folders " + ", ".join(f"{split}/" for split in _FOLDER_SPLITS)
    default_split = "trainA"

    def _find_splits(self) -> list[str]:
        return [split for split in _FOLDER_SPLITS if (self.root / split).is_dir()]

    def _samples(self, split: str) -> list[Sample]:
        folder = self.root / split
        images = self._require_images(folder, recursive=True)
        label_folder = self.root / (split + _LABEL_FOLDER_SUFFIX)
        if not label_folder.is_dir():
            return self._pair(images, None, {})
        labels_by_stem: dict[str, Path] = {}
        for label in _images_in(label_folder, suffix=None, recursive=True):
            stem = label.relative_to(label_folder).with_suffix("").as_posix()
            if stem in labels_by_stem:
                raise DatasetError(
                    f"Two label files in '{label_folder}' have the stem '{stem}': '{labels_by_stem[stem]}' and "
                    f"'{label}'; expected one label per image."
                )
            labels_by_stem[stem] = label
        label_of = {
            image: labels_by_stem.get(image.relative_to(folder).with_suffix("").as_posix())
            for image in images
        }
        return self._pair(images, label_folder, label_of)

    def _read_label(self, path: Path) -> np.ndarray:
        return load_label_map(path)

    def _label_ids(self, path: Path) -> tuple[np.ndarray, frozenset[int]]:
        return load_label_map(path), TRAIN_ID_TABLE


DATASETS: dict[str, type[DatasetLayout]] = {
    "gta5": GTA5,
    "synthia": Synthia,
    "cityscapes": Cityscapes,
    "cityscapes_parsing": CityscapesParsing,
    "maps": Maps,
    "folder": UnalignedFolders,
}
"""Data-set classes by the name used in ``"name:/path"`` specs."""


def is_dataset_spec(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` names a data set as ``NAME:PATH`` with a known name (not a plain folder path)."""
    name, colon, root = str(text).partition(":")
    return bool(colon and root) and name.strip().lower() in DATASETS


def open_dataset(spec: str, *, split: str | None = None) -> DatasetLayout:
    """Opens a data set named by ``"name:/path"``, e.g. ``"gta5:/data/GTA5"`` or ``"cityscapes:/data/cs"``.

    Args:
        spec: A name from :data:`DATASETS`, a colon, and the data-set root. Only the first colon separates, so
            ``"folder:C:/data"`` works.
        split: The default split of :meth:`DatasetLayout.samples`; ``None`` picks the data set's usual one.

    Returns:
        The data set.

    Raises:
        DatasetError: The spec has no colon, no path, or an unknown name (the valid names are listed), or the
            data set's layout or split is wrong.
    """
    valid = ", ".join(DATASETS)
    name, colon, root = spec.partition(":")
    if not colon:
        raise DatasetError(
            f"Data set '{spec}' must be written as NAME:PATH, e.g. gta5:/data/GTA5; valid names: {valid}."
        )
    name = name.strip().lower()
    if name not in DATASETS:
        raise DatasetError(
            f"Unknown data set '{name}' in '{spec}'; valid names: {valid} (written as NAME:PATH)."
        )
    if not root:
        raise DatasetError(f"Data set '{spec}' has no path after the colon; expected {name}:PATH.")
    return DATASETS[name](Path(root).expanduser(), split=split)


def check(dataset: DatasetLayout, split: str | None = None) -> list[Sample]:
    """Verifies a split up front: every image has a label if any has one, and every label has its image's size.

    Only image headers are read (fast: no decoding), so this suits a start-of-run check over a whole data set.

    Args:
        dataset: The data set.
        split: One of its splits; ``None`` checks :attr:`DatasetLayout.split`.

    Returns:
        The split's samples.

    Raises:
        DatasetError: The split is unknown or empty, images lack labels, or labels differ in size from their
            images (the first five are named, with the count).
        ImageLoadError: A file's header cannot be read.
    """
    samples = dataset.samples(split)
    mismatches = []
    for sample in samples:
        if sample.label is None:
            continue
        image_size = _oriented_size(sample.image)
        label_size = _oriented_size(sample.label)
        if image_size != label_size:
            mismatches.append(_size_message(sample, image_size, label_size))
    if mismatches:
        shown = "\n  ".join(mismatches[:_MAX_LISTED])
        more = f"\n  ... ({len(mismatches)} in all)" if len(mismatches) > _MAX_LISTED else ""
        raise DatasetError(
            f"{len(mismatches)} label(s) of the {dataset.name} data set at '{dataset.root}' (split "
            f"'{split or dataset.split}') differ in size from their images:\n  {shown}{more}"
        )
    return samples


def split_pair(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Cuts a pix2pix side-by-side image into its left and right halves (Maps: photo, map).

    Args:
        image: The side-by-side image, of even width.

    Returns:
        ``(left, right)``, each ``width / 2`` wide.

    Raises:
        ValueError: The width is odd, so the halves are ambiguous.
    """
    width, height = image.size
    if width % 2:
        raise ValueError(
            f"A side-by-side pair must have an even width (two halves of equal size), got {width}x{height}."
        )
    half = width // 2
    return image.crop((0, 0, half, height)), image.crop((half, 0, width, height))


def write_unaligned_maps(
    dataset: Maps,
    destination: str | os.PathLike[str],
    *,
    splits: Sequence[str] | None = None,
    extension: str = ".png",
) -> dict[str, int]:
    """Writes a Maps data set's halves as unaligned folders for ``semst train``: photos in ``{split}A/``, maps in
    ``{split}B/``, named ``{stem}_A{extension}`` and ``{stem}_B{extension}`` (CycleGAN's maps naming).

    Args:
        dataset: The Maps data set.
        destination: The output root (created); existing files of the same names are replaced atomically.
        splits: The splits to write; ``None`` writes all of :attr:`DatasetLayout.splits`.
        extension: The output format; ``".png"`` (default) avoids compressing the JPEG halves a second time.

    Returns:
        The number of pairs written per split.

    Raises:
        DatasetError: A split is unknown or empty.
        ValueError: An image has an odd width (the file is named).
        ImageLoadError: An image cannot be read.
    """
    destination = Path(destination)
    counts = {}
    for split in dataset.splits if splits is None else splits:
        samples = dataset.samples(split)
        for sample in samples:
            try:
                photo, map_image = split_pair(dataset.load_image(sample))
            except ValueError as exc:
                raise ValueError(f"'{sample.image}': {exc}") from exc
            stem = sample.relative.stem
            save_image(photo, destination / f"{split}A" / f"{stem}_A{extension}")
            save_image(map_image, destination / f"{split}B" / f"{stem}_B{extension}")
        counts[split] = len(samples)
    return counts
