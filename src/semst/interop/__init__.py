"""Interoperability with other image-translation code bases.

- `cut`: generators trained by CUT (taesungp/contrastive-unpaired-translation) or CycleGAN
  (junyanz/pytorch-CycleGAN-and-pix2pix), i.e. their `latest_net_G.pth` ResnetGenerator state dicts, loaded
  without unpickling code, mapped onto `semst.networks.ResnetGenerator` and written as semst checkpoints.
"""

from __future__ import annotations

from semst.interop.cut import (
    CutImportError,
    convert_cut_checkpoint,
    cut_to_semst_state,
    generator_from_cut,
    infer_cut_architecture,
    load_cut_state_dict,
)

__all__ = [
    "CutImportError",
    "convert_cut_checkpoint",
    "cut_to_semst_state",
    "generator_from_cut",
    "infer_cut_architecture",
    "load_cut_state_dict",
]
