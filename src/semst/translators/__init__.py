"""Translators: the networks that map source images to the target domain, with one forward path each.

- `Translator` (``base.py``): the interface, checkpoint loading and PIL/tensor translation.
- `SingleScaleTranslator` (``single_scale.py``): one generator (CUT, FastCUT, SemST without multi-scale).
- `MultiScaleTranslator` (``multi_scale.py``): SemST's global and local generators fused by scale attention
  (paper section 3.3, Eq. 4-6).

>>> translator = Translator.from_checkpoint("runs/gta2cs")     # a checkpoint file or a run directory
>>> fake = translator.translate(Image.open("frame.png"))          # PIL in, PIL out, same size

To add a kind of translator: subclass `Translator`, implement ``build``, ``crop_spec``, ``branches``,
``forward``, ``training_forward``, ``default_tiling`` and ``translate_tensor``, and make
`semst.translators.base.translator_class` choose it from the config. The training step, the loop,
checkpoints, ``semst translate`` and export then work unchanged.
"""

from semst.translators.base import (
    Branch,
    TrainingForward,
    Translator,
    generator_from_config,
    translator_class,
)
from semst.translators.multi_scale import MultiScaleTranslator
from semst.translators.single_scale import SingleScaleTranslator

__all__ = [
    "Branch",
    "MultiScaleTranslator",
    "SingleScaleTranslator",
    "TrainingForward",
    "Translator",
    "generator_from_config",
    "translator_class",
]
