"""Realism of translated images: does a translation LOOK like the target domain? Offline scores.

The semantic-distortion score (:mod:`semst.evaluation.segmentation`) rewards a translation that keeps every
label, which an identity "translation" does perfectly while doing nothing. These scores measure the other
half: how far the translated images are from real target images.

- **target share** (with a domain classifier, :mod:`semst.evaluation.domain_classifier`): the fraction of
  the translated images' crops that a source-vs-target classifier trained on real images calls "target",
  and its mean probability. Reported with the classifier's held-out accuracy and with the share it gives
  the real reference images (the ceiling).
- **KID** (and FID) between features of the translated images and of real target images, for each
  :class:`~semst.evaluation.features.FeatureExtractor` given: the domain classifier's penultimate
  features, the target segmenter's encoder, or the FID Inception network from a local weights file.
- **class-matched KID** (when label maps are given for both sets; after EPE's sKVD): KID computed class
  by class between crops dominated by the same class, then averaged with the translated crops' class
  frequencies as weights, so that realism is not confounded with the different class statistics of the
  domains (a source scene with more road than a target scene is not less realistic for it).

How images are fed: crop extractors (classifier, segmenter) see a fixed grid of square crops of each
image after resizing it to the :class:`~semst.evaluation.crops.CropView`'s short side (so images of any
size are judged at one scale and every region counts); whole-image extractors (Inception) see each image at
its stored size and resize it themselves. Features are accumulated, never images, so memory grows with the
number of crops times the feature dimension (for 3000 frames: about 100 000 crops, 50 MB per 128-d
extractor).

For many runs on one data set (``semst study``): train the classifier once, compute the reference features
once (:func:`extract_features` on the real target images, ``FeatureSet.save``/``load`` to cache them on
disk), then call :func:`realism_scores` for every run with that :class:`FeatureSet`::

    classifier = load_domain_classifier("classifier.safetensors")
    segmenter = SegmenterEncoderExtractor.from_file("segmenter.safetensors")
    reference = extract_features("world/street/testB", [classifier, segmenter],
                                 view=classifier.view, labels="world/street/testB_labels")
    reference.save("reference.safetensors")
    for run in runs:
        scores = realism_scores(run / "translated", reference, extractors=[segmenter],
                                classifier=classifier, labels="world/street/testA_labels")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semst.checkpoint import CheckpointError, load_tensors, read_metadata, save_checkpoint
from semst.data.images import find_images, load_rgb
from semst.data.labels import TRAIN_ID_NAMES, load_label_map
from semst.evaluation.crops import CropView, crop_classes, grid_positions, take_crops
from semst.evaluation.domain_classifier import DomainClassifierExtractor
from semst.evaluation.features import FeatureExtractor
from semst.evaluation.fid import fid
from semst.evaluation.kid import DEFAULT_SEED, DEFAULT_SUBSET_SIZE, DEFAULT_SUBSETS, kid
from semst.evaluation.matching import match_pairs

__all__ = ["FeatureSet", "ImageInput", "extract_features", "realism_scores"]

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""A folder of images (searched recursively) or a list of image files."""

KIND = "realism-features"
_FEATURES, _CLASSES = "features.", "crop_classes"
_MAX_BUFFERED_PIXELS = 16 * 2048 * 1024  # whole images per extractor call: at most ~400 MB of float RGB


@dataclass
class FeatureSet:
    """Features of one image set for several extractors: computed once, compared many times.

    Attributes:
        features: Extractor name -> features (N, D) float32; N is the number of crops for crop extractors
            and the number of images for whole-image extractors.
        extractors: Extractor name -> its ``describe()`` at extraction time.
        view: The crop view of the crop extractors.
        num_images: Number of images.
        num_crops: Number of crops (0 without crop extractors).
        crop_classes: Class of each crop (N_crops,) int16, -1 where no class dominates; None without labels.
        source: A description of the images (folder or file count), for score files.
        meta: Free JSON-serialisable notes saved with the set (e.g. the data set's name).
    """

    features: dict[str, np.ndarray]
    extractors: dict[str, dict[str, Any]]
    view: CropView
    num_images: int
    num_crops: int
    crop_classes: np.ndarray | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the set as a semst safetensors file (``kind: "realism-features"``), atomically."""
        tensors = {
            _FEATURES + name: torch.from_numpy(np.ascontiguousarray(f)) for name, f in self.features.items()
        }
        if self.crop_classes is not None:
            tensors[_CLASSES] = torch.from_numpy(self.crop_classes.astype(np.int16))
        meta = {
            "kind": KIND,
            "extractors": self.extractors,
            "view": self.view.as_dict(),
            "num_images": self.num_images,
            "num_crops": self.num_crops,
            "source": self.source,
            "meta": self.meta,
        }
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSet:
        """Reads a set written by :meth:`save`.

        Raises:
            CheckpointError: Missing, not a semst file, or not a feature set.
        """
        path = Path(path)
        meta = read_metadata(path)
        if meta.get("kind") != KIND:
            raise CheckpointError(
                f"{path} is a semst {meta.get('kind') or 'translation model'} file, not realism features"
            )
        tensors = load_tensors(path)
        classes = tensors.get(_CLASSES)
        return cls(
            features={k[len(_FEATURES) :]: t.numpy() for k, t in tensors.items() if k.startswith(_FEATURES)},
            extractors=meta["extractors"],
            view=CropView(**meta["view"]),
            num_images=int(meta["num_images"]),
            num_crops=int(meta["num_crops"]),
            crop_classes=None if classes is None else classes.numpy(),
            source=str(meta.get("source", "")),
            meta=dict(meta.get("meta") or {}),
        )


def _files(images: ImageInput, what: str) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        return find_images(images)
    files = [Path(p) for p in images]
    if not files:
        raise ValueError(f"no {what} given")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path} does not exist")
    return files


def _label_files(images: ImageInput, files: list[Path], labels: ImageInput) -> list[Path]:
    """Label maps in the order of ``files``: matched by name in a folder, or a list of the same length."""
    if isinstance(labels, (str, os.PathLike)):
        pairs = dict(match_pairs(images if isinstance(images, (str, os.PathLike)) else files, labels))
        return [pairs[path] for path in files]
    label_files = [Path(p) for p in labels]
    if len(label_files) != len(files):
        raise ValueError(
            f"{len(files)} images but {len(label_files)} label maps; give one label map per image"
        )
    return label_files


def _describe(extractor: FeatureExtractor) -> dict[str, Any]:
    return dict(extractor.describe())


def _check_extractors(extractors: Sequence[FeatureExtractor]) -> None:
    names = [e.name for e in extractors]
    if len(set(names)) != len(names):
        raise ValueError(f"feature extractors need distinct names, got {names}")
    for extractor in extractors:
        if not isinstance(extractor, FeatureExtractor):
            raise TypeError(
                f"{extractor!r} is not a FeatureExtractor (name, dim, whole_images, describe, __call__)"
            )


def extract_features(
    images: ImageInput,
    extractors: Sequence[FeatureExtractor],
    *,
    view: CropView | None = None,
    labels: ImageInput | None = None,
    min_class_fraction: float = 0.5,
    batch_size: int = 128,
    progress: bool = True,
    desc: str = "features",
) -> FeatureSet:
    """Features of a set of images for every extractor (crops or whole images, see the module docstring).

    Args:
        images: A folder (searched recursively) or a list of image files, any size and format.
        extractors: Feature extractors; crop extractors share one grid of crops per image.
        view: The crop view (default: a domain classifier's among the extractors, else ``CropView()``).
        labels: Label maps of the images (a folder matched by name, or a list in image order), for
            class-matched KID: each crop gets the class covering ``min_class_fraction`` of it.
        min_class_fraction: See ``labels``.
        batch_size: Crops (or same-size whole images) per extractor call.
        progress: Show a progress bar.
        desc: Progress bar label.

    Returns:
        The :class:`FeatureSet`.

    Raises:
        FileNotFoundError, ValueError: Missing files, a folder without images, unmatched label maps,
            extractors with the same name or contradicting crop views.
        semst.data.images.ImageLoadError: An image that cannot be decoded (the message names it).
    """
    _check_extractors(extractors)
    if not extractors:
        raise ValueError("extract_features needs at least one feature extractor")
    view = _resolve_view(extractors, view)
    files = _files(images, "image")
    label_files = _label_files(images, files, labels) if labels is not None else None
    batches = _Batches(extractors, batch_size)
    classes: list[np.ndarray] = []
    num_crops = 0
    for index, path in enumerate(tqdm(files, desc=desc, unit="img", disable=not progress)):
        image = load_rgb(path)
        if batches.image_extractors:
            batches.add_image(torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0))
        if batches.crop_extractors:
            pixels = view.resize_image(image)  # (H', W', 3)
            positions = grid_positions(pixels.shape[0], pixels.shape[1], view.crop_size)
            crops = take_crops(pixels, positions, view.crop_size)
            num_crops += len(positions)
            if label_files is not None:
                label = load_label_map(label_files[index])
                if label.shape != (image.size[1], image.size[0]):
                    raise ValueError(
                        f"label map {label_files[index]} is {label.shape[1]}x{label.shape[0]} but image {path} "
                        f"is {image.size[0]}x{image.size[1]}"
                    )
                resized = view.resize_labels(label)
                classes.append(
                    crop_classes(resized, positions, view.crop_size, min_fraction=min_class_fraction)
                )
            batches.add_crops(crops)
    source = str(images) if isinstance(images, (str, os.PathLike)) else f"{len(files)} files"
    return FeatureSet(
        features=batches.features(),
        extractors={e.name: _describe(e) for e in extractors},
        view=view,
        num_images=len(files),
        num_crops=num_crops,
        crop_classes=np.concatenate(classes) if classes else None,
        source=source,
    )


class _Batches:
    """Buffers crops and whole images, runs the extractors on each full batch and keeps their features."""

    def __init__(self, extractors: Sequence[FeatureExtractor], batch_size: int):
        self.crop_extractors = [e for e in extractors if not e.whole_images]
        self.image_extractors = [e for e in extractors if e.whole_images]
        self.batch_size = batch_size
        self._chunks: dict[str, list[np.ndarray]] = {e.name: [] for e in extractors}
        self._crops: list[np.ndarray] = []  # (n, S, S, 3) uint8 each
        self._images: list[torch.Tensor] = []  # (3, H, W) float in [0, 1] each, one size

    def add_image(self, tensor: torch.Tensor) -> None:
        """Adds a (3, H, W) image; the buffer is run first if the image has another size or it is full."""
        buffered = len(self._images) * self._images[0][0].numel() if self._images else 0
        # Whole images can be large (a 2048x1024 frame is 25 MB as float): bound the pixels as well.
        if self._images and (
            self._images[0].shape != tensor.shape
            or len(self._images) >= self.batch_size
            or buffered >= _MAX_BUFFERED_PIXELS
        ):
            self._run_images()
        self._images.append(tensor)

    def add_crops(self, crops: np.ndarray) -> None:
        """Adds (n, S, S, 3) uint8 crops; runs the buffer once it holds a batch."""
        self._crops.append(crops)
        if sum(len(c) for c in self._crops) >= self.batch_size:
            self._run_crops()

    def features(self) -> dict[str, np.ndarray]:
        """Runs what is buffered; extractor name -> features (N, D) float32."""
        self._run_crops()
        self._run_images()
        return {name: np.concatenate(parts).astype(np.float32) for name, parts in self._chunks.items()}

    def _run_crops(self) -> None:
        if not self._crops:
            return
        batch = np.concatenate(self._crops)  # (B, S, S, 3)
        self._crops.clear()
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
        for extractor in self.crop_extractors:
            self._chunks[extractor.name].append(_checked(extractor, x))

    def _run_images(self) -> None:
        if not self._images:
            return
        x = torch.stack(self._images)  # (B, 3, H, W), one size
        self._images.clear()
        for extractor in self.image_extractors:
            self._chunks[extractor.name].append(_checked(extractor, x))


def _checked(extractor: FeatureExtractor, x: torch.Tensor) -> np.ndarray:
    features = extractor(x)
    if not isinstance(features, torch.Tensor) or features.shape != (x.shape[0], extractor.dim):
        shape = list(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(
            f"feature extractor {extractor.name!r} returned {shape} for {x.shape[0]} inputs; "
            f"expected ({x.shape[0]}, {extractor.dim})"
        )
    return features.detach().float().cpu().numpy()


def _resolve_view(extractors: Iterable[FeatureExtractor], view: CropView | None) -> CropView:
    """The crop view: the one given, else a classifier's (which it was trained with), else the default."""
    trained = {e.name: e.view for e in extractors if isinstance(e, DomainClassifierExtractor)}
    for name, own in trained.items():
        if view is not None and own != view:
            raise ValueError(f"the {name} was trained on crops of {own} but the scores were asked for {view}")
        view = own
    return view if view is not None else CropView()


def _comparable(description: dict[str, Any]) -> dict[str, Any]:
    """A description without the file path: a moved file with the same hash gives the same features."""
    return {k: v for k, v in description.items() if k != "file"}


def _class_name(class_id: int, class_names: Sequence[str] | None) -> str:
    names = class_names if class_names is not None else TRAIN_ID_NAMES
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


def _class_matched_kid(
    features: np.ndarray,
    classes: np.ndarray,
    reference: np.ndarray,
    reference_classes: np.ndarray,
    *,
    min_crops: int,
    class_names: Sequence[str] | None,
    subsets: int,
    subset_size: int,
    seed: int,
) -> dict[str, Any]:
    per_class: dict[str, Any] = {}
    weighted, weight = 0.0, 0
    for class_id in sorted(set(classes[classes >= 0].tolist())):
        ours, theirs = features[classes == class_id], reference[reference_classes == class_id]
        entry: dict[str, Any] = {"crops": len(ours), "reference_crops": len(theirs), "kid": None}
        if len(ours) >= min_crops and len(theirs) >= min_crops:
            value = kid(ours, theirs, subsets=subsets, subset_size=subset_size, seed=seed)
            entry.update(kid=value.mean, kid_std=value.std)
            weighted += value.mean * len(ours)
            weight += len(ours)
        per_class[_class_name(class_id, class_names)] = entry
    matched_crops = int((classes >= 0).sum())
    return {
        "kid": weighted / weight if weight else None,
        "scored_crops": weight,
        "coverage": weight / len(classes) if len(classes) else 0.0,
        "class_crops": matched_crops,
        "min_crops": min_crops,
        "classes": per_class,
    }


def realism_scores(
    images: ImageInput | FeatureSet,
    reference: ImageInput | FeatureSet,
    *,
    extractors: Sequence[FeatureExtractor] = (),
    classifier: DomainClassifierExtractor | None = None,
    labels: ImageInput | None = None,
    reference_labels: ImageInput | None = None,
    view: CropView | None = None,
    kid_subsets: int = DEFAULT_SUBSETS,
    kid_subset_size: int = DEFAULT_SUBSET_SIZE,
    seed: int = DEFAULT_SEED,
    min_class_crops: int = 20,
    min_class_fraction: float = 0.5,
    class_names: Sequence[str] | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Realism scores of ``images`` against real target images ``reference``.

    Args:
        images: The images to score (folder or file list, e.g. translated source images), or their features.
        reference: Real target images (folder or file list), or their features computed once with
            :func:`extract_features` (every extractor here must be in it, with the same description).
        extractors: Feature extractors for KID/FID (see :mod:`semst.evaluation.features`).
        classifier: A domain classifier (:func:`~semst.evaluation.domain_classifier.load_domain_classifier`):
            adds the target share, and KID on its features; it also fixes the crop view.
        labels: Label maps of ``images`` (for translated source images: the source label maps), for
            class-matched KID.
        reference_labels: Label maps of the reference images (when ``reference`` is images).
        view: Crop view for crop extractors (default: the classifier's, else ``CropView()``).
        kid_subsets: KID subsets (torch-fidelity: 100).
        kid_subset_size: KID subset size (torch-fidelity: 1000), clamped to the set sizes.
        seed: Seed of the KID subsets.
        min_class_crops: Class-matched KID scores a class only with this many crops on both sides.
        min_class_fraction: Share of a crop the dominant class must cover to assign the crop to it.
        class_names: Names of the class ids (default: Cityscapes train ids).
        batch_size: Crops or images per extractor call.
        progress: Show progress bars.

    Returns:
        A JSON-serialisable dict: ``num_images``, ``reference_images``, ``view``, and one entry per
        extractor name with ``kid`` (mean, std, subsets, subset_size), ``fid``, ``class_matched_kid`` (with
        labels) and, for the classifier, ``target_share``, ``target_probability``,
        ``reference_target_share`` and ``held_out`` (its accuracy on held-out real images).

    Raises:
        ValueError: No extractor, reference features that lack an extractor or were computed with another
            one, bad files (see :func:`extract_features`).
    """
    every = list(extractors) + ([classifier] if classifier is not None else [])
    if not every:
        raise ValueError(
            "realism_scores needs a domain classifier or at least one feature extractor "
            "(train a classifier with `semst evaluate train-classifier`)"
        )
    _check_extractors(every)
    view = _resolve_view(every, view)
    sets = {}
    for role, data, role_labels in (("reference", reference, reference_labels), ("images", images, labels)):
        if isinstance(data, FeatureSet):
            if role_labels is not None:
                raise ValueError(f"labels of the {role} are given but its features were computed already")
            _check_feature_set(data, every, view, role)
            sets[role] = data
        else:
            sets[role] = extract_features(
                data,
                every,
                view=view,
                labels=role_labels,
                min_class_fraction=min_class_fraction,
                batch_size=batch_size,
                progress=progress,
                desc=role,
            )
    ours, theirs = sets["images"], sets["reference"]
    scores: dict[str, Any] = {
        "num_images": ours.num_images,
        "num_crops": ours.num_crops,
        "reference_images": theirs.num_images,
        "reference_crops": theirs.num_crops,
        "images": ours.source,
        "reference": theirs.source,
        "view": view.as_dict(),
    }
    kid_settings = {"subsets": kid_subsets, "subset_size": kid_subset_size, "seed": seed}
    for extractor in every:
        scores[extractor.name] = _extractor_scores(
            extractor, ours, theirs, kid_settings, min_class_crops=min_class_crops, class_names=class_names
        )
    return scores


def _extractor_scores(
    extractor: FeatureExtractor,
    ours: FeatureSet,
    theirs: FeatureSet,
    kid_settings: dict[str, int],
    *,
    min_class_crops: int,
    class_names: Sequence[str] | None,
) -> dict[str, Any]:
    """KID and FID on one extractor's features; the target share for a classifier; class-matched KID where
    both sets have crop classes."""
    a, b = ours.features[extractor.name], theirs.features[extractor.name]
    value = kid(a, b, **kid_settings)
    entry: dict[str, Any] = {
        "features": _comparable(extractor.describe()),
        "dim": extractor.dim,
        "kid": value.as_dict(),
        "fid": fid(a, b),
    }
    if isinstance(extractor, DomainClassifierExtractor):
        probability = extractor.target_probability(a)
        entry.update(
            target_share=float((probability > 0.5).mean()),
            target_probability=float(probability.mean()),
            reference_target_share=float((extractor.target_probability(b) > 0.5).mean()),
            held_out=extractor.held_out,
        )
    if not extractor.whole_images and (ours.crop_classes is None) != (theirs.crop_classes is None):
        missing = "images" if ours.crop_classes is None else "reference"
        log.warning(f"no class-matched KID for {extractor.name}: the {missing} have no label maps")
    if not extractor.whole_images and ours.crop_classes is not None and theirs.crop_classes is not None:
        entry["class_matched_kid"] = _class_matched_kid(
            a,
            ours.crop_classes,
            b,
            theirs.crop_classes,
            min_crops=min_class_crops,
            class_names=class_names,
            **kid_settings,
        )
    return entry


def _check_feature_set(
    data: FeatureSet, extractors: Sequence[FeatureExtractor], view: CropView, role: str
) -> None:
    for extractor in extractors:
        if extractor.name not in data.features:
            raise ValueError(
                f"the {role} features ({data.source}) hold {sorted(data.features)}, not {extractor.name!r}; "
                f"compute them with every extractor used for scoring"
            )
        stored, now = _comparable(data.extractors.get(extractor.name, {})), _comparable(extractor.describe())
        if stored != now:
            raise ValueError(
                f"the {role} features of {extractor.name!r} were computed with {stored}, not {now}; recompute them"
            )
    if any(not e.whole_images for e in extractors) and data.view != view:
        raise ValueError(
            f"the {role} features were computed on crops of {data.view}, not {view}; recompute them"
        )
