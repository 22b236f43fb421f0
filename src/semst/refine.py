"""Refine a whole labelled data set into the target look, for unsupervised domain adaptation (paper 4.3).

``refine_dataset(model, samples, out)`` translates every image of a data set (semst.data.datasets) at full
resolution with a trained translator and writes it at the same relative path under ``out``, with the
label maps copied (or hard-linked) unchanged next to them, so a domain-adaptation code base (DAFormer,
HRDA, SePiCo, ProDA, BDL, ...) trains on the refined data by changing only its data root.

* **One producer per folder.** ``out/refine.json`` names the translator that made the outputs (the checkpoint's
  SHA-256 and step, the tiling) and records every output file with its own SHA-256. The manifest is written
  before the first image, and each output is appended to ``out/.refine-journal.jsonl`` as soon as it is
  written, so even a killed run leaves a record. A run into a folder made by another checkpoint (or holding
  files refine did not write) is refused, naming what made them: outputs of two checkpoints never mix.
* **Resumable.** Every file is written atomically (a temporary file, then a rename); running again keeps the
  recorded outputs that are intact (same size and time, or same SHA-256) and writes the rest; temporary files
  of a killed run are removed.
* **Exclusive.** The output folder is locked while refine runs (`semst.locking.FolderLock`): a second refine
  into it stops at once.
* **Safe.** The output folder may not be the data set's folder or lie inside it, and no output may be one of
  the inputs, symbolic links followed (`check_outputs_against_inputs`); source files are only read.
* **Checked.** Label maps are validated before any work (decodable, the image's size, ids of the data set's
  label table or 255); bad ones stop the run, each named, or with ``bad_labels="skip"`` their samples are left
  out and listed. Dangling symbolic links are reported. At the end every sample must have its image (and
  label) in ``out``.
* **Quality gate** (`QualityGate`): a target-domain segmenter scores every refined frame against its own source
  labels as it is refined (pixel accuracy, mean IoU); frames below a threshold are flagged or left out, and the
  manifest summarises which classes turned into which across the data set.
* **Many processes** (``torchrun ... -m semst refine``; ``shards``, a `semst.runtime.Distributed`): process 0
  holds the folder's lock (so processes of one job never refuse each other, and a second job is refused as
  before), reads what is there and writes the running manifest; the images still to refine are dealt out to
  the processes in turn (`Distributed.shard`), label maps are validated the same way, and each process appends
  what it writes to its own journal (``.refine-journal.RANK.jsonl``). At the end process 0 merges every
  process's report, records and quality-gate scores into one manifest, the same as one process would have
  written (apart from times, the ``processes`` count and each record's ``rank``). A process that dies costs
  only the images it had not finished: the journals of all processes are read on the next run, whatever its
  number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semst.data.datasets import TRAIN_ID_TABLE, LabelError, check_label_file, dangling_link
from semst.data.images import ImageLoadError, load_rgb, save_image
from semst.data.labels import IGNORE_INDEX, NUM_TRAIN_IDS, TRAIN_ID_NAMES, load_label_map
from semst.files import atomic_path, file_sha256, remove_temporaries, write_json
from semst.locking import LOCK_NAME, FolderLock
from semst.runtime import Distributed, check_job_precision
from semst.tiling import Tiling

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger("semst.refine")

MANIFEST = "refine.json"
JOURNAL = ".refine-journal.jsonl"  # one process; with several, .refine-journal.RANK.jsonl each
JOURNAL_PATTERN = ".refine-journal*.jsonl"
FORMAT_VERSION = 2
BAD_LABEL_MODES = ("fail", "skip")
# Formats whose written file differs from the image in memory: the quality gate scores the file.
_LOSSY = frozenset({".jpg", ".jpeg", ".webp"})
# Offending files named in one error message at most.
_MAX_LISTED = 100
_TOP_FLIPS = 10


class RefineError(ValueError):
    """refine cannot run as asked: outputs would overwrite inputs, the output folder holds another producer's
    files, label maps are bad, or the quality gate cannot be used. The message names the files."""


@dataclass
class QualityGate:
    """Scores every refined frame with a target-domain segmenter against the frame's own source labels.

    Attributes:
        segmenter: A callable taking (B, 3, H, W) float RGB in [0, 1] and returning logits (B, C, h, w), e.g.
            `semst.segmentation.loading.load_segmenter`'s `Segmenter`.
        num_classes: C, the classes of the labels (train ids 0..C-1; 255 is ignored).
        class_names: Names of the label ids, for the flip summary (default: the Cityscapes train ids').
        flag_below: Frames whose pixel accuracy is below this fraction are flagged (listed), or None.
        drop_below: Frames whose pixel accuracy is below this fraction are not written (listed), or None.
        device: Where the segmenter runs.
        identity: What to record about the segmenter (its file and SHA-256).
    """

    segmenter: Callable[[torch.Tensor], object]
    num_classes: int = NUM_TRAIN_IDS
    class_names: Sequence[str] | None = None
    flag_below: float | None = None
    drop_below: float | None = None
    device: str | torch.device = "cpu"
    identity: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("flag_below", "drop_below"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise RefineError(f"{name} must be a pixel accuracy between 0 and 1 (0.8 = 80%), got {value}")

    def name_of(self, class_id: int) -> str:
        names = list(self.class_names) if self.class_names is not None else list(TRAIN_ID_NAMES)
        return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


@dataclass
class RefineReport:
    written: int = 0
    skipped: int = 0  # outputs that already existed, recorded and intact (a resumed run)
    labels: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    missing: list[str] = field(default_factory=list)  # outputs absent after the run
    rewritten: list[str] = field(default_factory=list)  # outputs present but unrecorded or changed: redone
    bad_labels: list[tuple[str, str]] = field(default_factory=list)  # (label, reason), skipped samples
    dropped: list[str] = field(default_factory=list)  # frames left out by the quality gate
    flagged: list[str] = field(default_factory=list)  # frames below the quality gate's flag threshold
    quality: dict | None = None  # the quality gate's summary (as in the manifest)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing


# --- checks before any work -------------------------------------------------------------------------------


def check_output_folder(root: Path, out: Path) -> None:
    """Refuse an output folder that is the data set's folder or inside it (source files must stay intact)."""
    root, out = root.resolve(), out.resolve()
    if out == root or root in out.parents:
        raise RefineError(
            f"the output folder {out} is the data set's folder {root} or inside it; choose a folder outside "
            "the data set, so that no source file can be overwritten"
        )


def journal_name(rank: int = 0, world_size: int = 1) -> str:
    """The journal file of process ``rank`` of ``world_size`` (`JOURNAL` for a single process)."""
    return JOURNAL if world_size <= 1 else f".refine-journal.{rank}.jsonl"


def check_outputs_against_inputs(samples: Sequence, out: str | Path, world_size: int = 1) -> None:
    """Refuse to run when a file refine would write is one of its inputs, paths resolved (symbolic links
    followed): a data set whose ``trainA`` links to ``OUT/trainA``, or an ``OUT/images`` linking into the
    data set, would make refine skip the sources as "already refined" or overwrite them.

    Raises:
        RefineError: The first colliding output and input are named.
    """
    out = Path(out)
    inputs: dict[str, Path] = {}
    for sample in samples:
        for path in (sample.image, sample.label):
            if path is not None:
                inputs.setdefault(os.path.realpath(path), Path(path))
    journals = [journal_name(rank, world_size) for rank in range(world_size)]
    outputs = [out / name for name in (MANIFEST, LOCK_NAME, *journals)]
    for sample in samples:
        outputs.append(out / sample.relative)
        if sample.label_relative is not None:
            outputs.append(out / sample.label_relative)
    for output in outputs:
        resolved = os.path.realpath(output)
        source = inputs.get(resolved)
        if source is not None:
            raise RefineError(
                f"the output {output} is the input {source} (both are {resolved}, through a symbolic link): "
                "refine would overwrite its own source, or take it for a refined image. Choose an output folder "
                "that shares no files with the data set; nothing was written"
            )


def _check_train_id_label(sample) -> None:
    """Validates a label of train ids (0..18 or 255), for samples without a data-set layout."""
    check_label_file(
        Path(sample.label),
        Path(sample.image),
        lambda path: (load_label_map(path), TRAIN_ID_TABLE),
        "train-id",
    )


# --- who made the outputs ---------------------------------------------------------------------------------


def _weights_sha256(model) -> str:
    """The SHA-256 of a model's weights (names, shapes and bytes), for translators without a checkpoint file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def producer_identity(model, tiling: Tiling) -> dict[str, Any]:
    """What makes a refined image: the checkpoint (file SHA-256, step) and the tiling that shapes the output.

    A translator built in memory (no checkpoint file) is identified by the SHA-256 of its weights instead.
    The tile batch size is recorded but not part of the identity: it changes speed, not the pixels. The
    precision (``tiling.precision``) is part of it: bf16 and fp32 outputs differ.
    """
    path = getattr(model, "checkpoint_path", None)
    identity = {
        "checkpoint": str(path) if path is not None else None,
        "checkpoint_sha256": file_sha256(path) if path is not None else None,
        "weights_sha256": None if path is not None else _weights_sha256(model),
        "checkpoint_step": model.step,
        "weights": getattr(model, "weights", None) or "last",
        "translator": model.kind,
        "tiling": dataclasses.asdict(tiling),
    }
    return identity


def _identity_key(producer: dict[str, Any]) -> tuple:
    # Manifests written before the precision and the margin were tiling settings were made in fp32 without
    # a margin.
    tiling = {"precision": "fp32", "margin": 0, **(producer.get("tiling") or {})}
    tiling = {k: v for k, v in tiling.items() if k != "batch"}
    return (
        producer.get("checkpoint_sha256") or producer.get("weights_sha256"),
        producer.get("checkpoint_step"),
        producer.get("weights") or "last",  # manifests from before weight averages: the last step's
        producer.get("translator"),
        tuple(sorted(tiling.items())),
    )


def _describe_producer(producer: dict[str, Any]) -> str:
    digest = producer.get("checkpoint_sha256") or producer.get("weights_sha256") or "?"
    where = producer.get("checkpoint") or "a translator without a checkpoint file"
    return (
        f"{where} (SHA-256 {digest[:12]}..., step {producer.get('checkpoint_step')}, weights "
        f"{producer.get('weights') or 'last'}, tiling {producer.get('tiling')})"
    )


def _file_record(path: Path, **extra: Any) -> dict[str, Any]:
    stat = path.stat()
    return {"sha256": file_sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **extra}


def _intact(path: Path, record: dict[str, Any] | None) -> bool:
    """Whether ``path`` is the file ``record`` describes: same size and time, or failing that, same SHA-256."""
    if record is None or not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size == record.get("size") and stat.st_mtime_ns == record.get("mtime_ns"):
        return True
    return stat.st_size == record.get("size") and file_sha256(path) == record.get("sha256")


def _read_records(out: Path) -> tuple[dict | None, dict[str, dict]]:
    """The manifest (or None) and every output record: the manifest's, then the journal's."""
    manifest = None
    records: dict[str, dict] = {}
    path = out / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise RefineError(
                f"{path} is not a readable refine manifest ({error}); refine into a new folder"
            ) from error
        if not isinstance(manifest, dict) or manifest.get("format") != "semst-refined":
            raise RefineError(f"{path} is not a semst refine manifest; refine into a new folder")
        records.update(manifest.get("outputs") or {})
    for journal in _journals(out):
        for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                records[entry.pop("output")] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a kill: that output is redone
    return manifest, records


def _journals(out: Path) -> list[Path]:
    """The journals of every process of earlier runs (any number of processes), in a fixed order."""
    return sorted(path for path in out.glob(JOURNAL_PATTERN) if path.is_file())


def _check_producer(
    out: Path, manifest: dict | None, records: dict, producer: dict, samples: Sequence
) -> None:
    """Refuse a folder whose outputs another producer made, or that holds files refine did not write."""
    if manifest is None and not records:
        present = [
            out / rel
            for sample in samples
            for rel in (sample.relative, sample.label_relative)
            if rel is not None and (out / rel).exists()
        ]
        if present:
            raise RefineError(
                f"{out} already holds files that no refine recorded (e.g. {present[0]}; {len(present)} in all) "
                "and has no refine.json: refine would take them for refined images or overwrite them. Choose "
                "an empty or new output folder; nothing was written"
            )
        return
    old = (manifest or {}).get("producer")
    if old is None:
        raise RefineError(
            f"{out / MANIFEST} was written by an earlier semst that did not record which checkpoint made each "
            "output, so the outputs there cannot be verified; refine into a new folder"
        )
    if _identity_key(old) != _identity_key(producer):
        present = [rel for rel in records if (out / rel).exists()]
        if present:
            raise RefineError(
                f"{out} holds {len(present)} output(s) made by {_describe_producer(old)}; this refine uses "
                f"{_describe_producer(producer)}. Outputs of two producers would mix: refine into another "
                "folder, or delete this one to start over; nothing was written"
            )


# --- writing ----------------------------------------------------------------------------------------------


def _copy_atomic(source: Path, destination: Path, *, link: bool) -> None:
    """Copies or hard-links ``source`` to ``destination``; no half-written file is ever visible there."""
    if link:
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.parent / f".{destination.name}.{uuid.uuid4().hex}.tmp"
        try:
            os.link(source, temporary)  # a new name for complete data, then renamed over the destination
            os.replace(temporary, destination)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            temporary.unlink(missing_ok=True)
    with atomic_path(destination) as temporary:
        shutil.copy2(source, temporary)


def _journal_add(journal, output: str, record: dict[str, Any]) -> None:
    """Appends an output's record to the open journal, flushed at once, so a killed run leaves its records."""
    journal.write(json.dumps({"output": output, **record}) + "\n")
    journal.flush()


class _Scorer:
    """The quality gate's running state: per-frame scores and the confusion over the whole data set."""

    def __init__(self, gate: QualityGate, load_label: Callable) -> None:
        from semst.evaluation import confusion_counts, segmentation_scores
        from semst.evaluation.segmentation import predict_labels

        self.gate = gate
        self.load_label = load_label
        self._counts_of = confusion_counts
        self._scores_of = segmentation_scores
        self._predict = predict_labels
        self.total = np.zeros((gate.num_classes, gate.num_classes + 1), dtype=np.int64)  # (C, C + 1)
        self.frames: dict[str, dict[str, float | None]] = {}
        self.unscored: list[str] = []

    def score(self, sample, image) -> dict[str, float | None] | None:
        """Scores one refined frame (a PIL image) against its sample's labels; None without labels."""
        if sample.label is None:
            self.unscored.append(Path(sample.relative).as_posix())
            return None
        label = self.load_label(sample)  # (H, W) train ids
        prediction = self._predict(
            self.gate.segmenter, image, num_classes=self.gate.num_classes, device=self.gate.device
        )  # (H, W)
        counts = self._counts_of(prediction, label, self.gate.num_classes, IGNORE_INDEX)  # (C, C + 1)
        self.total += counts
        scores = self._scores_of(counts)
        frame = {"pixel_accuracy": scores["pixel_accuracy"], "mean_iou": scores["mean_iou"]}
        self.frames[Path(sample.relative).as_posix()] = frame
        return frame

    def state(self) -> dict[str, Any]:
        """What this scorer gathered (for merging the shares of several processes, `merge`)."""
        return {"total": self.total, "frames": self.frames, "unscored": self.unscored}

    @classmethod
    def merge(
        cls, gate: QualityGate, load_label: Callable, states: Sequence[dict], position: dict[str, int]
    ) -> _Scorer:
        """One scorer holding the `state` of several, frames in sample order (``position``: frame -> index)."""
        merged = cls(gate, load_label)
        for state in states:
            merged.total += state["total"]
        frames = {name: frame for state in states for name, frame in state["frames"].items()}
        merged.frames = {name: frames[name] for name in sorted(frames, key=position.__getitem__)}
        merged.unscored = sorted(
            (name for state in states for name in state["unscored"]), key=position.__getitem__
        )
        return merged

    def below(self, frame: dict | None, threshold: float | None) -> bool:
        if frame is None or threshold is None or frame["pixel_accuracy"] is None:
            return False
        return frame["pixel_accuracy"] < threshold

    def summary(self, flagged: list[str], dropped: list[str]) -> dict[str, Any]:
        overall = self._scores_of(self.total)
        num_pixels = overall["num_pixels"]
        label_total = self.total.sum(axis=1)  # (C,)
        flips = []
        for true_id, predicted_id in zip(*np.nonzero(self.total)):
            if true_id == predicted_id:
                continue
            pixels = int(self.total[true_id, predicted_id])
            flips.append(
                {
                    "true_id": int(true_id),
                    "true": self.gate.name_of(int(true_id)),
                    "predicted_id": int(predicted_id) if predicted_id < self.gate.num_classes else None,
                    "predicted": self.gate.name_of(int(predicted_id))
                    if predicted_id < self.gate.num_classes
                    else "no class",
                    "pixels": pixels,
                    "share": pixels / num_pixels,
                    "share_of_true": pixels / int(label_total[true_id]),
                }
            )
        flips.sort(key=lambda flip: (-flip["pixels"], flip["true_id"], flip["predicted_id"] or 0))
        worst = sorted(
            (name for name, frame in self.frames.items() if frame["pixel_accuracy"] is not None),
            key=lambda name: (self.frames[name]["pixel_accuracy"], name),
        )
        return {
            **self.gate.identity,
            "metric": "pixel_accuracy",
            "flag_below": self.gate.flag_below,
            "drop_below": self.gate.drop_below,
            "scored": len(self.frames),
            "unscored": self.unscored,
            "pixel_accuracy": overall["pixel_accuracy"],
            "class_accuracy": overall["class_accuracy"],
            "mean_iou": overall["mean_iou"],
            "num_pixels": num_pixels,
            "flagged": flagged,
            "dropped": dropped,
            "worst": [{"frame": name, **self.frames[name]} for name in worst[:5]],
            "flips": flips[:_TOP_FLIPS],
            "frames": self.frames,
        }


def _bad_labels_of(
    samples: Sequence, indices: Sequence[int], check: Callable, records: dict, out: Path, progress: bool
) -> list[tuple[int, str, str]]:
    """The labels of ``samples[i]`` for ``i`` in ``indices`` not yet copied intact into ``out``, validated;
    returns ``(i, label file, reason)`` of the bad ones."""
    pending = [
        i
        for i in indices
        if samples[i].label is not None
        and not _intact(
            out / samples[i].label_relative, records.get(Path(samples[i].label_relative).as_posix())
        )
    ]
    bad = []
    for i in tqdm(pending, desc="check labels", unit="label", disable=not progress, dynamic_ncols=True):
        try:
            check(samples[i])
        except LabelError as error:
            bad.append((i, str(error.path), error.reason))
    return bad


@dataclass
class _Share:
    """What one process did with its share of the samples; lists hold ``(sample index, value)``, so that the
    shares of all processes merge into the order one process would have produced."""

    written: int = 0
    skipped: int = 0
    labels: int = 0
    failed: list[tuple[int, tuple[str, str]]] = field(default_factory=list)
    rewritten: list[tuple[int, str]] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)
    flagged: list[tuple[int, str]] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)  # outputs this process wrote
    scores: dict | None = None  # the quality gate's state (_Scorer.state)


def _merged(shares: Sequence[_Share], key: str) -> list:
    """The values of list ``key`` of every share, in sample order."""
    return [
        value for _, value in sorted((item for share in shares for item in getattr(share, key)), key=_first)
    ]


def _first(item: tuple) -> int:
    return item[0]


# --- the refine job ---------------------------------------------------------------------------------------


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
    dataset=None,
    bad_labels: str = "fail",
    quality: QualityGate | None = None,
    shards: Distributed | None = None,
) -> RefineReport:
    """Translate ``samples`` (semst.data.datasets.Sample) into ``out``, mirroring their relative paths.

    Args:
        model: a `semst.translators.Translator` (multi-scale ones tile by default; single-scale ones
            translate whole images unless ``tiling.tile`` is given).
        samples: the data set's samples (image, label, relative paths), in the same order on every process.
        out: the output root.
        root: the data set's root (checked against ``out``).
        description: what to record in the manifest about the data set (name, root, splits).
        link_labels: hard-link label maps instead of copying them (falls back to copying).
        tiling: how large images are cut, and the precision of the passes (default: the translator's,
            `Translator.default_tiling`).
        dataset: the `semst.data.datasets.DatasetLayout` the samples come from: its label table validates the
            label maps and its `load_label` gives the quality gate train ids. Without it, labels must hold
            train ids (0..18, 255).
        bad_labels: ``"fail"``: stop before any work if a label map is bad, naming each; ``"skip"``: leave
            those samples out (neither image nor label written) and list them in the report and manifest.
        quality: score every refined frame with a segmenter (`QualityGate`).
        shards: this process's place in a torchrun job (`semst.runtime.init_distributed`): the samples are
            shared among the processes and one manifest is merged at the end (see the module docstring).
            None: one process does everything.

    Returns:
        The report of the whole job (the same on every process).

    Raises:
        RefineError: an output would overwrite an input; ``out`` holds another producer's outputs or files
            refine did not write; bad label maps with ``bad_labels="fail"``.
        semst.locking.FolderLockedError: another refine is writing ``out``.
        ValueError: the tiling's precision cannot run on the model's device (fp16 off CUDA).
    """
    if bad_labels not in BAD_LABEL_MODES:
        raise ValueError(f"bad_labels must be one of {BAD_LABEL_MODES}, got {bad_labels!r}")
    shards = shards if shards is not None else Distributed()
    out = Path(out)
    check_output_folder(Path(root), out)
    check_outputs_against_inputs(samples, out, shards.world_size)
    tiling = tiling if tiling is not None else model.default_tiling()
    check_job_precision(model.device, tiling.precision, log, is_main=shards.is_main)
    producer = producer_identity(model, tiling)
    if quality is not None and not any(sample.label is not None for sample in samples):
        raise RefineError(
            "the quality gate scores refined frames against their labels, but no sample has one"
        )
    with _job_lock(out, shards):
        return _refine_locked(
            model,
            samples,
            out,
            root=root,
            description=description,
            link_labels=link_labels,
            progress=progress,
            tiling=tiling,
            dataset=dataset,
            bad_labels=bad_labels,
            quality=quality,
            producer=producer,
            shards=shards,
        )


@contextlib.contextmanager
def _job_lock(out: Path, shards: Distributed) -> Iterator[None]:
    """Holds the lock of ``out`` for the whole job.

    Process 0 alone holds it: the job's processes do not refuse each other, and another job (of one process or
    many) is refused at its process 0 (`semst.locking.FolderLockedError`). If the job raises while the lock is
    held, the lock is released and a folder that this attempt created is removed again, if it is empty.
    """
    created = not out.exists()
    held: list[FolderLock] = []
    shards.run_on_main(lambda: held.append(FolderLock(out, "semst refine").acquire()))
    lock = held[0] if held else None
    try:
        yield
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()  # nothing of this attempt is left behind in a folder it created (if empty)
        raise
    finally:
        if lock is not None:
            lock.release()


def _refine_locked(
    model,
    samples: Sequence,
    out: Path,
    *,
    root,
    description,
    link_labels: bool,
    progress: bool,
    tiling: Tiling,
    dataset,
    bad_labels: str,
    quality: QualityGate | None,
    producer: dict,
    shards: Distributed,
) -> RefineReport:
    """`refine_dataset` once ``out`` is locked, step by step: what earlier runs left, the label maps, the
    running manifest, each process's share of the images, then the merged report and the final manifest."""
    records = shards.run_on_main(lambda: _records_to_keep(out, producer, samples))
    show = progress and shards.is_main  # one progress bar per job: process 0's share
    bad = _checked_labels(samples, dataset, records, out, bad_labels=bad_labels, shards=shards, progress=show)
    left_out = {i for i, _, _ in bad}

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    base = _manifest_base(
        model,
        samples,
        root=root,
        description=description,
        link_labels=link_labels,
        producer=producer,
        processes=shards.world_size,
    )
    running = {**base, "status": "running", "started": started, "outputs": records}
    shards.run_on_main(lambda: _start_run(out, samples, running))

    assigned, intact = _deal_out(samples, out, records, left_out, shards)
    load_label = dataset.load_label if dataset is not None else (lambda sample: load_label_map(sample.label))
    share = _refine_share(
        model,
        samples,
        assigned,
        intact,
        out,
        records=records,
        tiling=tiling,
        link_labels=link_labels,
        quality=quality,
        scorer=_Scorer(quality, load_label) if quality is not None else None,
        producer=producer,
        shards=shards,
        progress=show,
    )
    shares = shards.all_gather_object(share)

    report = _merged_report(shares, bad, samples, quality, load_label)
    for s in shares:
        records.update(s.records)
    report.missing = shards.run_on_main(
        lambda: _finish_run(
            out, samples, base, report, records, left_out=left_out, bad_labels=bad_labels, started=started
        )
    )
    return report


def _records_to_keep(out: Path, producer: dict, samples: Sequence) -> dict[str, dict]:
    """The output records that earlier runs left in ``out`` (manifest and journals), once `_check_producer` has
    refused a folder of another producer; none if another producer's manifest has no output left."""
    manifest, records = _read_records(out)
    _check_producer(out, manifest, records, producer, samples)
    if manifest is not None and _identity_key(manifest["producer"]) != _identity_key(producer):
        return {}  # another producer's manifest without any output left: start afresh
    return records


def _checked_labels(
    samples: Sequence,
    dataset,
    records: dict,
    out: Path,
    *,
    bad_labels: str,
    shards: Distributed,
    progress: bool,
) -> list[tuple[int, str, str]]:
    """Validates the label maps not yet copied intact into ``out``, each process checking its share; every
    process learns of every bad one.

    Returns:
        The bad ones of the whole job, ``(sample index, label file, reason)`` in sample order; with
        ``bad_labels="skip"`` process 0 warns of each sample left out.

    Raises:
        RefineError: A label map is bad and ``bad_labels="fail"``.
    """
    check = dataset.check_label if dataset is not None else _check_train_id_label
    mine = _bad_labels_of(samples, shards.shard(range(len(samples))), check, records, out, progress)
    bad = sorted((item for share in shards.all_gather_object(mine) for item in share), key=_first)
    errors = [LabelError(Path(label), reason) for _, label, reason in bad]
    if bad and bad_labels == "fail":
        raise _bad_labels_error(errors)
    if shards.is_main:
        for (i, _, _), error in zip(bad, errors):
            log.warning("left out %s: %s", samples[i].image, error)
    return bad


def _bad_labels_error(errors: Sequence[LabelError]) -> RefineError:
    """The error that stops a run over bad label maps, naming each (at most `_MAX_LISTED`)."""
    if len(errors) == 1:
        return RefineError(
            f"{errors[0]}; nothing was refined: fix it, or pass --bad-labels skip to leave its sample out"
        )
    listed = "\n".join(f"  {error}" for error in errors[:_MAX_LISTED])
    more = f"\n  ... ({len(errors)} in all)" if len(errors) > _MAX_LISTED else ""
    return RefineError(
        f"{len(errors)} label maps cannot be used; nothing was refined: fix them, or pass --bad-labels skip to "
        f"leave their samples out:\n{listed}{more}"
    )


def _manifest_base(
    model,
    samples: Sequence,
    *,
    root,
    description: dict | None,
    link_labels: bool,
    producer: dict,
    processes: int,
) -> dict[str, Any]:
    """The manifest's entries that the running and the final manifest share: the data set, the producer, the
    labels' mode and the number of processes."""
    return {
        "format": "semst-refined",
        "format_version": FORMAT_VERSION,
        "dataset": description or {"root": str(root)},
        "producer": producer,
        "checkpoint": producer["checkpoint"],
        "checkpoint_step": producer["checkpoint_step"],
        "multiscale": model.kind == "multi-scale",
        "tiling": producer["tiling"],
        "labels": "hard links" if link_labels else "copies",
        "samples": len(samples),
        "processes": processes,
    }


def _start_run(out: Path, samples: Sequence, running: dict[str, Any]) -> None:
    """Process 0's work before any output is written: dangling image links are reported, temporary files of
    an interrupted refine removed, the ``running`` manifest written (it names the producer and holds every
    record kept), and the journals of earlier runs, whose records it now holds, deleted."""
    for sample in samples:
        reason = dangling_link(Path(sample.image))
        if reason is not None:
            log.warning("%s is %s; it cannot be refined", sample.image, reason)
    removed = remove_temporaries(out, recursive=True)  # no process writes before this is done
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted refine", len(removed))
    # The manifest names the producer before the first output is written; the journals then grow with it.
    write_json(out / MANIFEST, running)
    for journal in _journals(out):
        journal.unlink(missing_ok=True)


def _deal_out(
    samples: Sequence, out: Path, records: dict, left_out: set[int], shards: Distributed
) -> tuple[list[int], set[int]]:
    """This process's samples (indices, in order), and those of them whose image is already there, intact.

    The images still to refine are dealt out in turn, so that a resumed job shares out what is left evenly;
    those already refined are shared the same way (the quality gate scores them, labels may be missing).
    ``left_out``: the samples of bad label maps, not refined.
    """
    everyone = range(len(samples))
    mine = [i for i in shards.shard(everyone) if i not in left_out]
    done_here = [
        (i, _intact(out / samples[i].relative, records.get(Path(samples[i].relative).as_posix())))
        for i in mine
    ]
    done = dict(item for share in shards.all_gather_object(done_here) for item in share)
    todo = [i for i in everyone if i in done and not done[i]]
    kept = [i for i in everyone if done.get(i)]
    assigned = sorted(shards.shard(todo) + shards.shard(kept))
    return assigned, {i for i in assigned if done[i]}


def _merged_report(
    shares: Sequence[_Share],
    bad: Sequence[tuple[int, str, str]],
    samples: Sequence,
    quality: QualityGate | None,
    load_label: Callable,
) -> RefineReport:
    """The report of the whole job from every process's share (lists in sample order) and the bad label maps,
    with the quality gate's summary over the scores of all shares; ``missing`` is left for `_finish_run`."""
    report = RefineReport(
        written=sum(s.written for s in shares),
        skipped=sum(s.skipped for s in shares),
        labels=sum(s.labels for s in shares),
        failed=_merged(shares, "failed"),
        rewritten=_merged(shares, "rewritten"),
        bad_labels=[(label, reason) for _, label, reason in bad],
        dropped=_merged(shares, "dropped"),
        flagged=_merged(shares, "flagged"),
    )
    if quality is not None:
        position = {Path(sample.relative).as_posix(): i for i, sample in enumerate(samples)}
        scorer = _Scorer.merge(quality, load_label, [s.scores for s in shares], position)
        report.quality = scorer.summary(report.flagged, report.dropped)
    return report


def _finish_run(
    out: Path,
    samples: Sequence,
    base: dict[str, Any],
    report: RefineReport,
    records: dict[str, dict],
    *,
    left_out: set[int],
    bad_labels: str,
    started: str,
) -> list[str]:
    """Process 0's last work: checks that every sample has its outputs, writes the final manifest and deletes
    the journals, whose records it now holds. Returns the outputs missing."""
    missing = _missing_outputs(samples, out, left_out, set(report.dropped))
    write_json(out / MANIFEST, _final_manifest(out, base, report, records, missing, bad_labels, started))
    for journal in _journals(out):
        journal.unlink(missing_ok=True)  # every record is in the manifest now
    return missing


def _missing_outputs(samples: Sequence, out: Path, left_out: set[int], dropped: set[str]) -> list[str]:
    """The outputs (images, then their labels) absent from ``out``, apart from those left out on purpose:
    samples of bad label maps (``left_out``, indices) and frames the quality gate dropped (``dropped``)."""
    missing = []
    for i, sample in enumerate(samples):
        if i in left_out or Path(sample.relative).as_posix() in dropped:
            continue
        if not (out / sample.relative).is_file():
            missing.append(str(sample.relative))
        elif sample.label is not None and not (out / sample.label_relative).is_file():
            missing.append(str(sample.label_relative))
    return missing


def _final_manifest(
    out: Path,
    base: dict[str, Any],
    report: RefineReport,
    records: dict[str, dict],
    missing: list[str],
    bad_labels: str,
    started: str,
) -> dict[str, Any]:
    """The manifest of a finished job: its counts, failures and missing outputs, the quality gate's summary,
    and the record of every output still in ``out``, sorted by name."""
    ok = not report.failed and not missing
    manifest = {
        **base,
        "status": "complete" if ok else "incomplete",
        "written": report.written,
        "skipped_existing": report.skipped,
        "rewritten": report.rewritten,
        "labels_written": report.labels,
        "failed": [{"image": image, "reason": reason} for image, reason in report.failed],
        "missing": missing,
        "bad_labels": {
            "mode": bad_labels,
            "skipped": [{"label": label, "reason": reason} for label, reason in report.bad_labels],
        },
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if report.quality is not None:
        manifest["quality"] = report.quality
    manifest["outputs"] = {name: records[name] for name in sorted(records) if (out / name).exists()}
    return manifest


# --- one process's share ----------------------------------------------------------------------------------


def _refine_share(
    model,
    samples: Sequence,
    assigned: Sequence[int],
    intact: set[int],
    out: Path,
    *,
    records: dict[str, dict],
    tiling: Tiling,
    link_labels: bool,
    quality: QualityGate | None,
    scorer: _Scorer | None,
    producer: dict,
    shards: Distributed,
    progress: bool,
) -> _Share:
    """Refines ``samples[i]`` for ``i`` in ``assigned`` (``intact``: their images are already there), appending
    each output to this process's journal; returns what it did.

    An image not there is refined and written (`_refine_image`); one already there is only scored by the
    quality gate. Frames scored below the gate's flag threshold are flagged (and so are frames of an earlier
    run below its drop threshold, which are kept); each sample's label map is then copied next to its image
    (`_place_label`), but not for a sample whose image failed or was dropped.
    """
    share = _Share()
    rank = {"rank": shards.rank} if shards.enabled else {}  # which process wrote an output, in a torchrun job
    made_by = {
        "checkpoint_sha256": producer["checkpoint_sha256"] or producer["weights_sha256"],
        "checkpoint_step": producer["checkpoint_step"],
        **rank,
    }
    kept_below: list[str] = []
    with open(out / journal_name(shards.rank, shards.world_size), "a", encoding="utf-8") as journal:
        for i in tqdm(assigned, desc="refine", unit="img", disable=not progress, dynamic_ncols=True):
            sample = samples[i]
            name = Path(sample.relative).as_posix()
            destination = out / sample.relative
            frame = None
            if i in intact:
                share.skipped += 1
                if scorer is not None:
                    frame = scorer.score(sample, load_rgb(destination))
                    if scorer.below(frame, quality.drop_below):
                        kept_below.append(name)  # written by an earlier run: kept, and flagged below
            else:
                placed, frame = _refine_image(
                    model,
                    i,
                    sample,
                    destination,
                    share,
                    journal,
                    tiling=tiling,
                    scorer=scorer,
                    quality=quality,
                    made_by=made_by,
                    progress=progress,
                )
                if not placed:
                    continue
            if scorer is not None and (scorer.below(frame, quality.flag_below) or name in kept_below):
                share.flagged.append((i, name))
            if sample.label is not None:
                _place_label(sample, out, records, share, journal, link=link_labels, rank=rank)
    if kept_below:
        _warn_kept_below(kept_below, quality.drop_below)
    if scorer is not None:
        share.scores = scorer.state()
    return share


def _warn_kept_below(kept_below: Sequence[str], drop_below: float | None) -> None:
    """Warns of frames that an earlier run wrote and the quality gate scores below ``drop_below``: a resumed
    run keeps them (and flags them) instead of deleting finished work."""
    log.warning(
        "%d frame(s) written by an earlier run are below --drop-below %s; they are kept and flagged: %s",
        len(kept_below),
        drop_below,
        ", ".join(kept_below[:5]) + (" ..." if len(kept_below) > 5 else ""),
    )


def _refine_image(
    model,
    i: int,
    sample,
    destination: Path,
    share: _Share,
    journal,
    *,
    tiling: Tiling,
    scorer: _Scorer | None,
    quality: QualityGate | None,
    made_by: dict[str, Any],
    progress: bool,
) -> tuple[bool, dict[str, float | None] | None]:
    """Refines the image of ``sample`` (``samples[i]``) into ``destination``, recording it in ``share`` and the
    journal (``made_by``: who made it).

    Returns:
        Whether the refined image is now there (False: it failed, listed in ``share.failed``, or the quality
        gate dropped it, listed in ``share.dropped``), and the frame's scores (None without a quality gate
        or labels).
    """
    name = Path(sample.relative).as_posix()
    if destination.exists():
        log.warning(
            "%s was not recorded as written by this checkpoint (or changed): refining it again",
            destination,
        )
        share.rewritten.append((i, name))
    refined = _translate_image(model, i, sample, share, tiling=tiling, progress=progress)
    if refined is None:
        return False, None
    placed, frame = _write_unless_dropped(
        refined, i, sample, destination, share, scorer=scorer, quality=quality
    )
    if placed:
        _record_output(share, journal, name, destination, **made_by)
        share.written += 1
    return placed, frame


def _translate_image(
    model, i: int, sample, share: _Share, *, tiling: Tiling, progress: bool
) -> Image.Image | None:
    """The image of ``sample`` (``samples[i]``) translated, or None if it cannot be read or translated (the
    reason logged, and listed in ``share.failed``)."""
    try:
        image = load_rgb(sample.image)
    except ImageLoadError as exc:
        reason = dangling_link(Path(sample.image)) or str(exc)
        log.error("skipped %s: %s", sample.image, reason)
        share.failed.append((i, (str(sample.image), reason)))
        return None
    try:
        # Large images get a second progress bar over their tile batches.
        big = progress and image.width * image.height > 1_000_000
        return model.translate(image, tiling, progress=big)
    except (OSError, ValueError, RuntimeError) as exc:
        log.error("failed on %s: %s", sample.image, exc)
        share.failed.append((i, (str(sample.image), f"{type(exc).__name__}: {exc}")))
        return None


def _write_unless_dropped(
    refined: Image.Image,
    i: int,
    sample,
    destination: Path,
    share: _Share,
    *,
    scorer: _Scorer | None,
    quality: QualityGate | None,
) -> tuple[bool, dict[str, float | None] | None]:
    """Writes a refined frame to ``destination`` unless the quality gate scores it below ``drop_below``.

    The gate scores the pixels that will be written or, for lossy formats (`_LOSSY`), the file that was
    written. A dropped frame's file is removed (ours: just written, or an unrecorded earlier copy) and listed
    in ``share.dropped``; a write that fails is listed in ``share.failed``.

    Returns:
        Whether the frame is written, and its scores (None without a quality gate or labels).
    """
    lossy = destination.suffix.lower() in _LOSSY
    frame = None
    if scorer is not None and not lossy:
        frame = scorer.score(sample, refined)  # the pixels that will be written
    if scorer is None or lossy or not scorer.below(frame, quality.drop_below):
        try:
            save_image(refined, destination)
        except (OSError, ValueError) as exc:
            log.error("failed to write %s: %s", destination, exc)
            share.failed.append((i, (str(sample.image), f"{type(exc).__name__}: {exc}")))
            return False, frame
        if scorer is not None and lossy:
            frame = scorer.score(sample, load_rgb(destination))  # what was written
    if scorer is not None and scorer.below(frame, quality.drop_below):
        destination.unlink(missing_ok=True)  # ours: just written, or an unrecorded earlier copy
        share.dropped.append((i, Path(sample.relative).as_posix()))
        return False, frame
    return True, frame


def _place_label(
    sample, out: Path, records: dict[str, dict], share: _Share, journal, *, link: bool, rank: dict[str, int]
) -> None:
    """Copies (or hard-links) the label map of ``sample`` next to its refined image, unless an intact copy is
    recorded there (``records``), and records it in ``share`` and the journal."""
    label_name = Path(sample.label_relative).as_posix()
    label_destination = out / sample.label_relative
    if not _intact(label_destination, records.get(label_name)):
        _copy_atomic(Path(sample.label), label_destination, link=link)
        _record_output(share, journal, label_name, label_destination, copied_from=str(sample.label), **rank)
        share.labels += 1


def _record_output(share: _Share, journal, name: str, path: Path, **extra: Any) -> None:
    """Records the output ``name`` just written at ``path`` in ``share`` and appends the record to the journal."""
    share.records[name] = _file_record(path, **extra)
    _journal_add(journal, name, share.records[name])


def format_quality(quality: dict, *, flips: int = 5) -> Iterable[str]:
    """Lines summarising a quality gate's manifest entry, for printing."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    yield (
        f"quality gate ({quality.get('segmenter', 'segmenter')}): {quality['scored']} frame(s) scored, pixel "
        f"accuracy {pct(quality['pixel_accuracy'])}, mean IoU {pct(quality['mean_iou'])}"
    )
    if quality["flag_below"] is not None:
        yield f"  {len(quality['flagged'])} flagged below {pct(quality['flag_below'])} pixel accuracy" + (
            ": " + ", ".join(quality["flagged"][:5]) + (" ..." if len(quality["flagged"]) > 5 else "")
            if quality["flagged"]
            else ""
        )
    if quality["drop_below"] is not None:
        yield f"  {len(quality['dropped'])} left out below {pct(quality['drop_below'])} pixel accuracy" + (
            ": " + ", ".join(quality["dropped"][:5]) + (" ..." if len(quality["dropped"]) > 5 else "")
            if quality["dropped"]
            else ""
        )
    for worst in quality["worst"][:3]:
        yield f"  worst: {worst['frame']} pixel accuracy {pct(worst['pixel_accuracy'])}, mIoU {pct(worst['mean_iou'])}"
    for flip in quality["flips"][:flips]:
        yield (
            f"  {flip['true']} -> {flip['predicted']}: {pct(flip['share'])} of all labelled pixels "
            f"({pct(flip['share_of_true'])} of {flip['true']})"
        )
