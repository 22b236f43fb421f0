"""Training checkpoints: networks, optimizers, grad scalers, RNG states and the step, in one safe file.

Everything that is a tensor goes into the safetensors body: the networks under their names in the module tree
of `semst.training.networks.TrainingNetworks` (``translator.generator.stem.conv.weight``,
``discriminator.``..., ``projectors.main.``...), the translator's weight average (``train.ema_std`` > 0,
`semst.training.averaging`) as ``ema.translator.``..., the optimizers as ``optimizer.<part>.state.<index>.<key>``
and the random states as ``rng.*``; everything else (the config, the step, optimizer hyper-parameters,
Python's and numpy's RNG positions) goes into the JSON metadata. Resuming from such a file continues the
run exactly (tests/training/test_resume.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import semst
from semst import checkpoint as ckpt
from semst.config import ExperimentConfig
from semst.training.averaging import PowerAverage
from semst.training.networks import TrainingNetworks
from semst.translators.base import AVERAGE_PREFIX


def _optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{name}.state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: Mapping, saved: Mapping) -> None:
    prefix = f"optimizer.{name}.state."
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in saved["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    meta = {
        "numpy": {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(internal), "gauss": gauss},
    }
    return tensors, meta


def _restore_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    npy = meta["numpy"]
    keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = meta["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))


def save_training_checkpoint(
    path: str | Path,
    *,
    config: ExperimentConfig,
    networks: TrainingNetworks,
    optimizers: Mapping[str, torch.optim.Optimizer],
    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
    average: PowerAverage | None = None,
    step: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the complete training state after ``step`` optimisation steps (with the translator's weight
    average, if the run keeps one)."""
    tensors: dict[str, torch.Tensor] = dict(networks.state_dict())  # names from the module tree
    if average is not None:
        tensors.update({AVERAGE_PREFIX + k: v for k, v in average.state_dict().items()})
    optimizer_meta = {}
    for name, optimizer in optimizers.items():
        opt_tensors, optimizer_meta[name] = _optimizer_tensors(name, optimizer)
        tensors.update(opt_tensors)
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    meta = {
        "kind": "training",
        "semst_version": semst.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config.to_dict(),
        "step": step,
        "optimizers": optimizer_meta,
        "scalers": {name: s.state_dict() for name, s in (scalers or {}).items()},
        "rng": rng_meta,
        **(extra or {}),
    }
    return ckpt.save_checkpoint(path, tensors, meta)


def load_training_checkpoint(
    path: str | Path,
    *,
    networks: TrainingNetworks,
    optimizers: Mapping[str, torch.optim.Optimizer],
    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
    average: PowerAverage | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore a training state written by ``save_training_checkpoint``; returns its metadata."""
    path = Path(path)
    version, meta = ckpt.read_header(path)
    if meta.get("kind") != "training":
        raise ckpt.CheckpointError(
            f"{path} holds no training state (kind={meta.get('kind')!r}); it cannot be resumed"
        )
    if version < ckpt.FORMAT_VERSION:
        raise ckpt.CheckpointError(
            f"{path} has checkpoint format version {version} (semst 0.1), whose training state this semst "
            f"(format {ckpt.FORMAT_VERSION}) cannot resume; its translator still loads for translate, refine "
            "and export. Start a new run to train further."
        )
    tensors = ckpt.load_tensors(path)
    parts = tuple(f"{name}." for name in networks.parts())
    state = {k: v.to(device) for k, v in tensors.items() if k.startswith(parts)}
    ckpt.load_module_state(networks, state, what="training networks", path=path)
    if average is not None:
        averaged = {k: v.to(device) for k, v in ckpt.strip_prefix(tensors, AVERAGE_PREFIX).items()}
        ckpt.load_module_state(average.module, averaged, what="translator weight average", path=path)
    for name, optimizer in optimizers.items():
        # Optimizer.load_state_dict moves each state to its parameter's device and dtype.
        _restore_optimizer(name, optimizer, tensors, meta["optimizers"][name])
    for name, scaler in (scalers or {}).items():
        if name in meta.get("scalers", {}):
            scaler.load_state_dict(meta["scalers"][name])
    _restore_rng(tensors, meta["rng"])
    return meta
