"""Patch sampling and the projection head F of CUT / SemST (CUT's `PatchSampleF` with `--netF mlp_sample`).

For each encoder tap, a set of spatial positions is sampled, the feature vectors at those positions are
gathered and each is passed through a small per-tap MLP and L2-normalised. The resulting patch embeddings are
what the contrastive losses (PatchNCE, hDCE) and the structure-texture term compare.

Differences from CUT, on purpose:

- The MLPs are built in `__init__` from the known channel counts of the taps (CUT builds them lazily on the
  first forward, which forces a throwaway training step before the optimizer can be created).
- Sampling is separate from projection: `sample_locations` draws one row of positions per image from that
  image's own `torch.Generator`, so the positions of an image do not depend on what else is in the batch (CUT
  draws one set of positions from numpy's global RNG and shares it across the batch). The same locations are
  then applied to the features of the input and of the translation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from semst.networks.layers import init_weights

NORMALISE_EPS = 1e-7  # added to the L2 norm before dividing, as in CUT's `Normalize`


def sample_locations(
    num_positions: int,
    num_patches: int,
    generators: Sequence[torch.Generator],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draws patch positions without replacement, one row per image.

    Row b is the first P entries of `torch.randperm(num_positions, generator=generators[b])`, with
    P = min(num_patches, num_positions). Give every image its own generator (seeded, e.g., from the image
    index and the step) to make the positions reproducible whatever the batch composition.

    Args:
        num_positions: Number of spatial positions H * W of the feature map.
        num_patches: Number of positions to draw per image (CUT's `num_patches`, 256 by default).
        generators: One CPU `torch.Generator` per image.
        device: Device of the returned tensor (sampling itself always runs on the CPU).

    Returns:
        Int64 tensor of shape (B, P) with B = len(generators).

    Raises:
        ValueError: If a count is not positive, `generators` is empty or a generator is not a CPU generator.
    """
    if num_positions < 1 or num_patches < 1:
        raise ValueError(
            f"sample_locations expects num_positions >= 1 and num_patches >= 1, "
            f"got num_positions={num_positions}, num_patches={num_patches}."
        )
    if len(generators) == 0:
        raise ValueError("sample_locations expects one torch.Generator per image, got an empty sequence.")
    for generator in generators:
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError(
                f"sample_locations expects CPU torch.Generator objects (torch.Generator(device='cpu')), "
                f"got {generator!r}."
            )
    count = min(num_patches, num_positions)
    rows = [torch.randperm(num_positions, generator=generator)[:count] for generator in generators]
    return torch.stack(rows).to(device=device)  # (B, P)


class PatchProjector(nn.Module):
    """Per-tap two-layer MLP projection head with L2-normalised outputs (the paper's F, CUT's netF).

    Module structure: `heads`, an `nn.ModuleDict` keyed by tap name; each head is
    `nn.Sequential(Linear(C_tap, dim), ReLU, Linear(dim, dim))` (the same layout as CUT's `mlp_i`).
    All heads exist right after construction, so an optimizer can be created before any forward pass.

    Args:
        channels: Channel count of each tap, e.g. `generator.tap_channels(taps)`.
        dim: Embedding size (CUT's `netF_nc`, 256).
        init: Weight initialisation, see `init_weights`.
        init_gain: Gain of the weight initialisation.
    """

    def __init__(
        self, channels: Mapping[str, int], dim: int = 256, init: str = "xavier", init_gain: float = 0.02
    ) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError(
                "PatchProjector expects at least one tap, e.g. channels={'input': 3, 'res1': 256}."
            )
        if dim < 1:
            raise ValueError(f"PatchProjector expects dim >= 1, got {dim}.")
        for tap, width in channels.items():
            if not isinstance(tap, str) or not tap or "." in tap:
                raise ValueError(f"Tap names must be non-empty strings without '.', got {tap!r}.")
            if width < 1:
                raise ValueError(
                    f"PatchProjector expects a positive channel count per tap, got {tap!r}: {width}."
                )
        self.channels = dict(channels)
        self.dim = dim
        self.heads = nn.ModuleDict(
            {
                tap: nn.Sequential(nn.Linear(width, dim), nn.ReLU(), nn.Linear(dim, dim))
                for tap, width in self.channels.items()
            }
        )
        init_weights(self, kind=init, gain=init_gain)

    @property
    def tap_names(self) -> tuple[str, ...]:
        """The taps this projector has a head for, in construction order."""
        return tuple(self.heads.keys())

    def forward(
        self, features: Mapping[str, torch.Tensor], locations: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Gathers the sampled positions of each tap's feature map and projects them.

        Args:
            features: Tap name -> feature map of shape (B, C_tap, H, W). Any subset of `tap_names`.
            locations: Tap name -> int64 positions into the flattened H * W grid, shape (B, P) (one row per
                image, see `sample_locations`) or (P,) (the same positions for every image, as in CUT). Must
                have an entry for every tap in `features`; extra entries are ignored.

        Returns:
            Tap name -> embeddings of shape (B, P, dim) with unit L2 norm along the last dimension, in the
            order of `features`.

        Raises:
            ValueError: For an unknown tap, a missing location entry, a feature map of the wrong shape, a
                batch size mismatch or a position outside [0, H * W).
        """
        embeddings: dict[str, torch.Tensor] = {}
        for tap, feature in features.items():
            if tap not in self.heads:
                raise ValueError(f"Unknown tap {tap!r}; this PatchProjector has heads for {self.tap_names}.")
            if tap not in locations:
                raise ValueError(f"No locations given for tap {tap!r}; locations has {tuple(locations)}.")
            expected_channels = self.channels[tap]
            if feature.dim() != 4 or feature.shape[1] != expected_channels:
                raise ValueError(
                    f"Tap {tap!r} expects features of shape (B, {expected_channels}, H, W), "
                    f"got shape {tuple(feature.shape)}."
                )
            batch, channels, height, width = feature.shape
            index = self._check_locations(tap, locations[tap], batch=batch, num_positions=height * width)
            index = index.to(device=feature.device)
            flat = feature.flatten(2)  # (B, C, HW)
            picked = torch.gather(flat, 2, index.unsqueeze(1).expand(-1, channels, -1))  # (B, C, P)
            picked = picked.transpose(1, 2)  # (B, P, C)
            projected = self.heads[tap](picked)  # (B, P, dim)
            embeddings[tap] = projected / (projected.norm(p=2, dim=-1, keepdim=True) + NORMALISE_EPS)
        return embeddings

    @staticmethod
    def _check_locations(tap: str, index: torch.Tensor, batch: int, num_positions: int) -> torch.Tensor:
        """Validates one tap's locations and returns them as a (B, P) int64 tensor."""
        if index.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise ValueError(f"Locations for tap {tap!r} must be an integer tensor, got dtype {index.dtype}.")
        if index.dim() == 1:
            index = index.unsqueeze(0).expand(batch, -1)  # (B, P)
        if index.dim() != 2 or index.shape[0] != batch:
            raise ValueError(
                f"Locations for tap {tap!r} must have shape (B, P) = ({batch}, P) or (P,), "
                f"got shape {tuple(index.shape)}; the batch size of the features is {batch}."
            )
        if index.shape[1] == 0:
            raise ValueError(f"Locations for tap {tap!r} are empty; expected at least one position.")
        # Range-checked on the CPU only: on an accelerator the check would force a device sync per tap
        # (the training step keeps locations on the CPU for this reason; gather still fails on bad indices).
        # Not inside torch.compile either, where reading the values breaks the graph.
        checked = index.device.type == "cpu" and not torch.compiler.is_compiling()
        low, high = (int(index.min()), int(index.max())) if checked else (0, 0)
        if low < 0 or high >= num_positions:
            raise ValueError(
                f"Locations for tap {tap!r} must lie in [0, {num_positions}) (H * W of its feature map), "
                f"got values in [{low}, {high}]."
            )
        return index.long()
