"""Losses of SemST: adversarial, PatchNCE (CUT baseline), hDCE (Eq. 7-9) and the rSMI-based TS loss (Eq. 1-3).

Every loss is a plain function in its own self-contained file that takes tensors and explicit keyword
arguments (no option objects) and returns a tensor; this ``__init__`` only re-exports them.

How to add a loss:

1. Write ``src/semst/losses/<name>.py`` with a module docstring naming the paper equation, one public function
   (Google-style docstring with Args/Returns/Raises, type hints, shape comments on every reshape) and clear
   ``ValueError`` messages for bad shapes. Cast float16/bfloat16 inputs to float32 and disable autocast inside
   the function so it is safe under mixed precision; use ``logsumexp`` for log-sums of exponentials.
2. Re-export the function (and its defaults) below and add the names to ``__all__``.
3. Add ``tests/losses/test_<name>.py`` with exact values on hand-made tiny inputs, shape/batch contracts,
   gradient checks and the limit cases the paper states; document the math and defaults in ``docs/losses.md``.
"""

from semst.losses.adversarial import ADVERSARIAL_MODES, discriminator_loss, generator_loss
from semst.losses.hdce import HDCE_DEFAULT_BETA, HDCE_WEIGHTINGS, hdce_loss, hdce_negative_weights
from semst.losses.patchnce import patchnce_loss
from semst.losses.structure_texture import (
    RSMI_DEFAULT_LAMBDA,
    RSMI_ESTIMATORS,
    RSMI_GRID_LAMBDA,
    RSMI_GRID_SIGMA,
    RSMI_SIGMA_SCALE,
    rsmi,
    rsmi_grid,
    ts_loss,
)

__all__ = [
    "ADVERSARIAL_MODES",
    "HDCE_DEFAULT_BETA",
    "HDCE_WEIGHTINGS",
    "RSMI_DEFAULT_LAMBDA",
    "RSMI_ESTIMATORS",
    "RSMI_GRID_LAMBDA",
    "RSMI_GRID_SIGMA",
    "RSMI_SIGMA_SCALE",
    "discriminator_loss",
    "generator_loss",
    "hdce_loss",
    "hdce_negative_weights",
    "patchnce_loss",
    "rsmi",
    "rsmi_grid",
    "ts_loss",
]
