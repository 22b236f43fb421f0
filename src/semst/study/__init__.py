"""Studies: does a translator work? Variants trained over seeds, scored on distortion beside realism.

- ``variants.py``: `Variant` (a preset + overrides), the built-in sets (``table3``: the paper's ablation plus
  CUT and FastCUT; ``demo``) and the `Scale` of every run.
- ``data.py``: `StudyData`, the labelled data (a `semst world`, a labelled CUT-style root, or data sets as
  downloaded).
- ``realism.py``: `RealismScorer`, the classifier and reference features shared by every run.
- ``runner.py``: `Study` (create / open a study folder, prepare, run resumably over processes and shards)
  and `merge_studies`.
- ``summary.py``: means and spreads over seeds, paired differences against the baseline, class flips.
- ``report.py``: ``results.json`` and ``report.html``.

``semst study run STUDY --data world:world --variants table3 --seeds 3`` is the command line;
docs/study.md explains how to read a report.
"""

from semst.study.runner import Study, StudyError, StudySpec, merge_studies
from semst.study.variants import SCALES, VARIANT_SETS, VARIANTS, Scale, Variant

__all__ = [
    "SCALES",
    "VARIANTS",
    "VARIANT_SETS",
    "Scale",
    "Study",
    "StudyError",
    "StudySpec",
    "Variant",
    "merge_studies",
]
