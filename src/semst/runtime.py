"""Where the computation runs: device choice, mixed precision and multi-process (torchrun) plumbing.

Distributed training follows torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``): ``torchrun --nnodes N --nproc_per_node G -m semst train ...`` trains on
N machines with G processes each. Each process draws its share of every global batch, and gradients are
averaged with an all-reduce after each backward pass (NCCL on CUDA, gloo on CPU). We average gradients
explicitly rather than wrap the networks in ``DistributedDataParallel`` because one training step runs the
generator several times per backward pass (translation, then re-encoding of the output), which DDP's
bucketing hooks do not support without ``static_graph`` caveats.

``semst refine`` and ``semst translate`` use the same environment to spread files over processes
(`Distributed.shard`) and to exchange small Python objects (`Distributed.all_gather_object`,
`Distributed.broadcast_object`): who holds the output folder's lock, the records of what exists, each
process's report for the merged manifest.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger("semst.runtime")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters

PRECISIONS = ("fp32", "bf16", "fp16")
"""Autocast precisions: ``fp32`` (no autocast), ``bf16`` (CPU and CUDA), ``fp16`` (CUDA only). Training also
takes ``auto`` (`resolve_precision`)."""

T = TypeVar("T")

SHARD_TIMEOUT = timedelta(hours=6)
"""How long the processes of a ``semst refine``/``translate`` torchrun job wait for each other (the end of the
job waits for the slowest share). A job that runs past it stops with an error; running it again keeps
everything written and finishes the rest."""


def tune_cpu_allocator() -> bool:
    """Keep large freed CPU buffers in the heap instead of returning them to the OS (Linux/glibc only).

    glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a fresh mmap and
    unmaps it on free, so each training step page-faults and zeroes its large activations again: at 256 px
    that was a third of a CUT step's time on our 2-core machine (docs/benchmarks.md). Raising the mmap and
    trim thresholds keeps those pages mapped. Skipped when the user has set ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_`` or ``SEMST_NO_MALLOC_TUNING=1``. Returns whether the thresholds were changed.
    """
    if not sys.platform.startswith("linux") or os.environ.get("SEMST_NO_MALLOC_TUNING") == "1":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = (
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
        )
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    log.debug("glibc malloc thresholds raised: %s", done)
    return done


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; other names are checked.

    ``"auto"`` and ``"cuda"`` (without an index) mean GPU ``LOCAL_RANK`` when torchrun set it, so that every
    process of a torchrun job on one machine gets its own GPU; ``"cuda:N"`` is taken as given.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def check_precision(device: torch.device, precision: str) -> None:
    """Raises ``ValueError`` for a precision that is unknown or that ``device`` cannot run (fp16 off CUDA)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32, bf16 or fp16 (got {precision!r})")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"fp16 autocast needs a CUDA device (this runs on {device.type}); use bf16 or fp32")


def cpu_bf16_features() -> list[str]:
    """This CPU's bf16-related flags (``avx512_bf16``, ``amx_bf16``, ``amx_tile``) from Linux's /proc/cpuinfo,
    sorted; empty where there is none or no /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return sorted(
                        {"avx512_bf16", "amx_bf16", "amx_tile"} & set(line.split(":", 1)[1].split())
                    )
    except OSError:
        pass
    return []


def cpu_bf16_instructions() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512_BF16 or AMX-BF16: `cpu_bf16_features`).

    Without them oneDNN converts bf16 to fp32 and back around every operation, and bf16 autocast is slower
    than fp32 (2.6-3x per convolution on a CPU with AVX-512 but no AVX512_BF16: docs/benchmarks.md)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_bf16_features()))


def slow_precision_warning(device: torch.device, precision: str) -> str | None:
    """A warning for bf16 asked for on a CPU without bf16 instructions (`cpu_bf16_instructions`), else None.

    There oneDNN emulates bf16: a multi-scale training step at 128 px with 32 channels took 70 s in bf16
    against 1.8 s in fp32 on an AVX2-only CPU (docs/benchmarks.md)."""
    if device.type != "cpu" or precision != "bf16" or cpu_bf16_instructions():
        return None
    return (
        "bf16 on a CPU without bf16 instructions (AVX512_BF16 or AMX): it is emulated, and a training step "
        "ran 40x slower than in fp32 on such a CPU; use fp32 (or auto, which times both)"
    )


def check_job_precision(
    device: torch.device, precision: str, log: logging.Logger, *, is_main: bool = True
) -> None:
    """`check_precision` once before a job's passes (translate, refine), and, on the main process, a warning
    on ``log`` where the precision is slow here (`slow_precision_warning`)."""
    check_precision(device, precision)
    slow = slow_precision_warning(device, precision)
    if slow and is_main:
        log.warning("--precision %s", slow)


def resolve_precision(
    requested: str, device: torch.device, probe: Callable[[str], float] | None = None
) -> tuple[str, str]:
    """The precision to run with, and why: ``requested`` itself unless it is ``"auto"``.

    ``auto`` picks a mixed precision only where the hardware has it and ``probe`` (seconds of the work at
    ``precision``: `semst train` times a whole training step at the run's sizes) times it at least 5 %
    faster than fp32. On CUDA the candidate is bf16 from compute capability 8 (Ampere) on, fp16 on 7.x
    (tensor cores; training scales its gradients), none below; without a probe the candidate is taken. It is
    timed because these networks are small: on an H200 a batch-1 training step at CUT's settings took
    0.096 s in fp32 and 0.111 s in bf16 (multi-scale), and at the study's `small` scale 0.048 against
    0.096 s, the step being bound by kernel launches, which autocast's casts add to (docs/benchmarks.md).
    On a CPU the candidate is bf16 if the CPU has bf16 instructions (`cpu_bf16_instructions`): on a Zen 4
    CPU with AVX512_BF16 a whole training step took 0.6-0.76x of fp32's at 96-256 px crops and about the
    same at 64 px with 8 channels; without them bf16 is emulated (2-39x slower) and fp32 is taken untimed.
    """
    if requested != "auto":
        check_precision(device, requested)
        return requested, "as requested"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 7:
            return "fp32", f"CUDA compute capability {major}.{minor} has no tensor cores"
        candidate = "bf16" if major >= 8 else "fp16"
        if probe is None:
            return candidate, f"CUDA compute capability {major}.{minor}, nothing to time it with"
        return _faster(candidate, probe, f"this GPU (compute capability {major}.{minor})")
    if device.type != "cpu":
        return "fp32", f"no mixed precision chosen automatically on {device.type}"
    if not cpu_bf16_instructions():
        return "fp32", "this CPU has no bf16 instructions (AVX512_BF16 / AMX)"
    if probe is None:
        return "fp32", "nothing to time bf16 against fp32 with"
    return _faster("bf16", probe, "this CPU")


def _faster(candidate: str, probe: Callable[[str], float], where: str) -> tuple[str, str]:
    """``candidate`` if ``probe`` times it at least 5 % faster than fp32, else fp32; and why."""
    fp32, mixed = probe("fp32"), probe(candidate)
    choice = candidate if mixed < 0.95 * fp32 else "fp32"
    return choice, f"timed on {where}: {candidate} {mixed:.3f} s, fp32 {fp32:.3f} s"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` in ``fp32`` (no-op), ``bf16`` or ``fp16`` (`check_precision`)."""
    check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) job.

    Attributes:
        rank: this process's rank, 0 .. world_size - 1.
        world_size: the number of processes.
        group: the process group of the object collectives (a gloo group with a long timeout, made by
            `init_distributed`), or None for the default group.
    """

    rank: int = 0
    world_size: int = 1
    group: Any = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """All-reduce and average the gradients of ``parameters`` across processes (flattened, one call)."""
        if not self.enabled:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # (total,)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items``: every ``world_size``-th item from the ``rank``-th, so shards are
        disjoint, cover ``items`` and differ in length by at most one."""
        return list(items[self.rank :: self.world_size])

    def all_gather_object(self, value: T) -> list[T]:
        """Every process's ``value`` (picklable), in rank order; ``[value]`` for a single process.

        Raises:
            ConnectionError: Another process of the job stopped (or the wait timed out).
        """
        if not self.enabled:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, value, group=self.group)
        except RuntimeError as exc:
            raise _lost_contact(self.rank, exc) from exc
        return gathered

    def broadcast_object(self, value: T, source: int = 0) -> T:
        """``value`` of process ``source`` (picklable), on every process.

        Raises:
            ConnectionError: Another process of the job stopped (or the wait timed out).
        """
        if not self.enabled:
            return value
        box = [value if self.rank == source else None]
        try:
            dist.broadcast_object_list(box, src=source, group=self.group)
        except RuntimeError as exc:
            raise _lost_contact(self.rank, exc) from exc
        return box[0]

    def run_on_main(self, function: Callable[[], T]) -> T:
        """Runs ``function`` on rank 0 only and gives its (picklable) result to every process; an exception it
        raises is raised on every process, so that no process waits for one that has given up."""
        if not self.enabled:
            return function()
        outcome: tuple[bool, Any] | None = None
        if self.is_main:
            try:
                outcome = (True, function())
            except Exception as exc:
                failure = exc if _picklable(exc) else _plain_copy(exc)
                self.broadcast_object((False, failure))
                raise
        ok, value = self.broadcast_object(outcome)
        if not ok:
            raise value
        return value


def _picklable(value: object) -> bool:
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:  # noqa: BLE001 - anything that does not survive the trip
        return False
    return True


def _plain_copy(error: Exception) -> Exception:
    """An error of the nearest built-in kind with the same message (for errors that do not pickle)."""
    for kind in (ValueError, OSError, ImportError):
        if isinstance(error, kind):
            return kind(str(error))
    return RuntimeError(f"{type(error).__name__}: {error}")


def _lost_contact(rank: int, error: BaseException) -> ConnectionError:
    return ConnectionError(
        f"process {rank} of this torchrun job lost contact with the others (one of them stopped, or waited "
        f"longer than the time limit): {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    )


def init_distributed(device: torch.device, *, timeout: timedelta | None = None) -> Distributed:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1; a no-op for single-process runs.

    Args:
        device: this process's device (NCCL for CUDA, gloo for the CPU).
        timeout: how long a collective waits for the other processes (default: torch's, 10 to 30 minutes).
            With a timeout, object collectives run in a gloo group of their own (`Distributed.group`), so that
            processes that finish their share early can wait that long for the others.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timeout)
    group = dist.new_group(backend="gloo", timeout=timeout) if timeout is not None else None
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), group=group)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily stop gradients to ``module``'s parameters (the discriminator during the G step)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
