"""Running the paper's two paired protocols over a data set (SemST section 4.2).

- :func:`evaluate_segmentation`: semantic distortion. A fixed segmenter labels each (translated) image; one
  confusion matrix over the whole set gives pixel accuracy, class accuracy and mean IoU
  (:func:`semst.evaluation.metrics.segmentation_scores`).
- :func:`evaluate_paired`: photo -> map. Translated maps against true maps: RMSE and the accuracy at delta 5
  and 10 (:class:`semst.evaluation.metrics.PairedAccumulator`).

Typical use on Cityscapes (photo -> label direction of the paper: translate labels to photos, then segment)::

    pairs = match_pairs("translated/", "gtFine/val", image_suffix="_leftImg8bit",
                        label_suffix="_gtFine_labelTrainIds")
    scores = evaluate_segmentation(segmenter, pairs, num_classes=19, device="cuda")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from semst.data.images import image_to_tensor, load_rgb
from semst.data.labels import IGNORE_INDEX, load_label_map
from semst.evaluation.metrics import PairedAccumulator, confusion_counts, segmentation_scores

__all__ = ["evaluate_paired", "evaluate_segmentation", "predict_labels", "unwrap_logits"]

log = logging.getLogger("semst.evaluation")

OnImage = Callable[[Path, Path, np.ndarray], None]


def unwrap_logits(output: object, source: str = "The segmenter") -> object:
    """The logits in torchvision's ``{"out": logits, "aux": ...}``; any other output is returned unchanged.

    Args:
        output: What a segmenter returned.
        source: The segmenter, as error messages name it.

    Raises:
        ValueError: ``output`` is a mapping without the key ``"out"``.
    """
    if isinstance(output, Mapping):
        if "out" not in output:
            raise ValueError(
                f"{source} returned a dict without the key 'out' (keys: {', '.join(map(str, output))}); "
                f"expected logits (B, C, h, w) or a dict with them under 'out', as torchvision segmenters return."
            )
        return output["out"]
    return output


def _logits_of(output: object) -> torch.Tensor:
    """The logits of a segmenter's output: a tensor, or torchvision's ``{"out": tensor, "aux": ...}``."""
    output = unwrap_logits(output)
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"The segmenter must return a tensor of logits (B, C, h, w), got {type(output).__name__}."
        )
    return output


def _predict(
    segmenter: Callable[[torch.Tensor], object],
    images: list[torch.Tensor],
    size: tuple[int, int],
    num_classes: int,
    device: torch.device,
) -> np.ndarray:
    """Class ids ``(B, H, W)`` uint8 of a batch of same-size ``(3, H, W)`` images in [0, 1]."""
    batch = torch.stack(images).to(device)  # (B, 3, H, W)
    with torch.inference_mode():
        logits = _logits_of(segmenter(batch))
        if logits.dim() != 4 or logits.shape[0] != batch.shape[0] or logits.shape[1] != num_classes:
            raise ValueError(
                f"The segmenter must return logits of shape (B, C, h, w) with B = {batch.shape[0]} and "
                f"C = num_classes = {num_classes}, got shape {tuple(logits.shape)}."
            )
        predictions = []
        # One image at a time: full-resolution float logits of a whole batch can take gigabytes.
        for i in range(logits.shape[0]):
            one = logits[i : i + 1].float()  # (1, C, h, w)
            if tuple(one.shape[-2:]) != size:
                one = F.interpolate(one, size=size, mode="bilinear", align_corners=False)  # (1, C, H, W)
            predictions.append(one.argmax(dim=1).to(torch.uint8).cpu())  # (1, H, W)
    return torch.cat(predictions).numpy()  # (B, H, W)


def predict_labels(
    segmenter: Callable[[torch.Tensor], object],
    image: Image.Image,
    *,
    num_classes: int,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The segmenter's ``(H, W)`` ``uint8`` class ids for one RGB image, computed exactly as
    :func:`evaluate_segmentation` computes them (float32 RGB in [0, 1], logits resized to the image, argmax).

    Used to score images that are in memory (``semst refine --check-with`` scores each frame as it is refined).
    """
    tensor = (image_to_tensor(image) + 1.0) * 0.5  # (3, H, W) in [0, 1]
    return _predict(segmenter, [tensor], (image.height, image.width), num_classes, torch.device(device))[0]


def evaluate_segmentation(
    segmenter: Callable[[torch.Tensor], object],
    pairs: Sequence[tuple[Path, Path]],
    *,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_image: OnImage | None = None,
    load_label: Callable[[Path], np.ndarray] = load_label_map,
) -> dict:
    """Segments every image and scores the predictions against the label maps over the whole set.

    Each image is loaded as RGB (:func:`semst.data.images.load_rgb`) and given to the segmenter as float32 in
    ``[0, 1]`` (normalisation, if the segmenter needs one, is its own business). Logits whose size differs
    from the label map's are resized bilinearly (``align_corners=False``) to it before the argmax, as
    segmenters that predict at a reduced stride need. Images are batched while consecutive images have the
    same size.

    Args:
        segmenter: A callable (e.g. an ``nn.Module`` in eval mode) taking ``(B, 3, H, W)`` float32 RGB in
            ``[0, 1]`` on ``device`` and returning logits ``(B, C, h, w)``, or a dict with them under ``"out"``
            (torchvision's segmentation models).
        pairs: ``(image, label map)`` paths, e.g. from :func:`semst.evaluation.matching.match_pairs`. Label maps
            are read with :func:`semst.data.labels.load_label_map` and must hold class ids (train ids).
        num_classes: Number of classes ``C`` (19 for Cityscapes); the logits must have ``C`` channels.
        ignore_index: Label value of unscored pixels.
        batch_size: Images per segmenter call.
        device: Where the segmenter runs.
        progress: Show a progress bar.
        on_image: Called after each image as ``on_image(image_path, label_path, prediction)`` with the
            ``(H, W)`` ``uint8`` predicted class ids (to draw distortion maps, say).
        load_label: Reads a label path as ``(H, W)`` train ids (default: PNG class-id maps); a data set's own
            format can be read with its converter (`semst.data.datasets.DatasetLayout.load_label`).

    Returns:
        :func:`semst.evaluation.metrics.segmentation_scores` of the accumulated confusion matrix, plus
        ``num_images``.

    Raises:
        ValueError: ``pairs`` is empty, ``batch_size`` or ``num_classes`` is out of range, an image and its
            label map differ in size (both files and sizes are named), the segmenter's output has the wrong
            shape, or a label map holds a value that is neither a class nor ``ignore_index`` (the file is named).
        ImageLoadError: An image or label map cannot be read.
    """
    if not pairs:
        raise ValueError("No (image, label) pairs to evaluate.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if not 1 <= num_classes <= 256:
        raise ValueError(
            f"num_classes must lie in 1..256 (predictions are stored as uint8), got {num_classes}."
        )
    if isinstance(segmenter, torch.nn.Module) and segmenter.training:
        log.warning("The segmenter is in training mode; call .eval() for batch norm and dropout to be fixed.")
    device = torch.device(device)
    counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)  # (C, C + 1)
    pending: list[tuple[Path, Path, torch.Tensor, np.ndarray]] = []

    def flush() -> None:
        nonlocal counts
        if not pending:
            return
        size = tuple(pending[0][3].shape)
        predictions = _predict(segmenter, [item[2] for item in pending], size, num_classes, device)
        for (image_path, label_path, _, label), prediction in zip(pending, predictions):
            counts += confusion_counts(prediction, label, num_classes, ignore_index)
            if on_image is not None:
                on_image(image_path, label_path, prediction)
        bar.update(len(pending))
        pending.clear()

    with tqdm(total=len(pairs), desc="segment", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for image_path, label_path in pairs:
            image_path, label_path = Path(image_path), Path(label_path)
            image = load_rgb(image_path)
            label = load_label(label_path)  # (H, W)
            _check_class_ids(label, label_path, num_classes, ignore_index)
            if (image.height, image.width) != label.shape:
                raise ValueError(
                    f"Image '{image_path}' is {image.width}x{image.height} but its label map '{label_path}' is "
                    f"{label.shape[1]}x{label.shape[0]} (width x height); translated images must keep the "
                    f"size of their source."
                )
            tensor = (image_to_tensor(image) + 1.0) * 0.5  # (3, H, W) in [0, 1]
            if pending and pending[0][3].shape != label.shape:
                flush()
            pending.append((image_path, label_path, tensor, label))
            if len(pending) == batch_size:
                flush()
        flush()

    return {**segmentation_scores(counts), "num_images": len(pairs)}


def _check_class_ids(label: np.ndarray, path: Path, num_classes: int, ignore_index: int) -> None:
    """Refuses a label map with ids that are neither classes of the segmenter nor ``ignore_index``, naming it."""
    unknown = (label >= num_classes) & (label != ignore_index)
    if unknown.any():
        values = np.unique(label[unknown])
        shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise ValueError(
            f"Label map '{path}' holds class ids {shown}, but the segmenter has {num_classes} classes "
            f"(0..{num_classes - 1}; {ignore_index} = ignore). Check --num-classes, and that the label maps hold "
            f"train ids (e.g. Cityscapes *_labelTrainIds.png, not *_labelIds.png)."
        )


def evaluate_paired(pairs: Sequence[tuple[Path, Path]], progress: bool = True) -> dict:
    """Scores translated images against their true images pixel by pixel (the maps protocol).

    Args:
        pairs: ``(prediction, target)`` paths, e.g. from
            :func:`semst.evaluation.matching.match_prediction_pairs`; both are loaded as 8-bit RGB.
        progress: Show a progress bar.

    Returns:
        :meth:`semst.evaluation.metrics.PairedAccumulator.scores`: ``rmse``, ``accuracy_delta_5``,
        ``accuracy_delta_10``, ``num_pixels``, ``num_images``.

    Raises:
        ValueError: ``pairs`` is empty, or a prediction and its target differ in size (both are named).
        ImageLoadError: An image cannot be read.
    """
    if not pairs:
        raise ValueError("No (prediction, target) pairs to evaluate.")
    accumulator = PairedAccumulator()
    for pred_path, target_path in tqdm(
        pairs, desc="compare", unit="img", disable=not progress, dynamic_ncols=True
    ):
        accumulator.update(
            np.asarray(load_rgb(pred_path)),
            np.asarray(load_rgb(target_path)),
            str(pred_path),
            str(target_path),
        )
    return accumulator.scores()
