"""Where the computation runs: device choice, mixed precision and multi-process (DDP) plumbing.

Distributed training follows torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``): ``torchrun --nnodes N --nproc_per_node G -m semst train ...`` trains on
N machines with G processes each. Each process draws its share of every global batch, and gradients are
averaged with an all-reduce after each backward pass (NCCL on CUDA, gloo on CPU). We average gradients
explicitly rather than wrap the networks in ``DistributedDataParallel`` because one training step runs the
generator several times per backward pass (translation, then re-encoding of the output), which DDP's
bucketing hooks do not support without ``static_graph`` caveats.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("semst.runtime")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


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
    """``"auto"`` -> CUDA (with ``LOCAL_RANK``) if available, else CPU; other names are checked."""
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
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` in ``fp32`` (no-op), ``bf16`` or ``fp16``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16 (got {precision!r})")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1

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


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1; a no-op for single-process runs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


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
