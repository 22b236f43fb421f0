"""The reference FID/KID implementations the tests compare semst with: torch-fidelity and torchmetrics.

Both are test-only dependencies installed with ``pip install --no-deps`` (``make test`` does it), because
their own requirements would pull torchvision, whose only wheels are CUDA builds that do not import here.
torch-fidelity's package ``__init__`` imports torchvision (for its CLIP extractor) and so does its
``utils`` module; the modules the tests need (``feature_extractor_inceptionv3``, ``metric_kid``,
``metric_fid``) do not use it. :func:`torch_fidelity_modules` imports exactly those modules with a bare
package object in place of the package ``__init__`` and an empty stand-in for ``torch_fidelity.utils``
(whose names ``metric_kid``/``metric_fid`` import but the tested functions never call), then removes these
stand-ins from ``sys.modules`` again. torchmetrics imports torch-fidelity's Inception extractor when
torch-fidelity is installed, so it is imported inside the same context.

A reference that is not installed is missing from :func:`reference_module`; its tests skip.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import cache

_UTILS_NAMES = (
    "get_cacheable_input_name",
    "cache_lookup_one_recompute_on_miss",
    "extract_featuresdict_from_input_id_cached",
    "create_feature_extractor",
    "resolve_feature_extractor",
    "resolve_feature_layer_for_metric",
)


_MODULES = {
    "fidelity_inception": "torch_fidelity.feature_extractor_inceptionv3",
    "fidelity_kid": "torch_fidelity.metric_kid",
    "fidelity_fid": "torch_fidelity.metric_fid",
    "torchmetrics_kid": "torchmetrics.image.kid",
    "torchmetrics_fid": "torchmetrics.image.fid",
}


@cache
def reference_module(key: str) -> types.ModuleType | None:
    """One reference module, or None where it is not installed: ``fidelity_inception``, ``fidelity_kid``,
    ``fidelity_fid`` (torch-fidelity's ``feature_extractor_inceptionv3``, ``metric_kid``, ``metric_fid``),
    ``torchmetrics_kid``, ``torchmetrics_fid`` (torchmetrics' ``image.kid`` and ``image.fid``)."""
    name = _MODULES[key]
    if importlib.util.find_spec(name.split(".")[0]) is None:
        return None
    spec = importlib.util.find_spec("torch_fidelity")
    saved = {n: module for n, module in sys.modules.items() if n.startswith("torch_fidelity")}
    if spec is not None and spec.submodule_search_locations:
        package = types.ModuleType("torch_fidelity")
        package.__path__ = list(spec.submodule_search_locations)
        utils = types.ModuleType("torch_fidelity.utils")
        for attribute in _UTILS_NAMES:
            setattr(utils, attribute, None)
        sys.modules["torch_fidelity"] = package
        sys.modules["torch_fidelity.utils"] = utils
    try:
        return importlib.import_module(name)
    except ImportError:  # a version that needs torchvision here: the tests using it skip
        return None
    finally:
        for n in [n for n in sys.modules if n.startswith("torch_fidelity")]:
            del sys.modules[n]
        sys.modules.update(saved)
