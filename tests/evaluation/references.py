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

A reference that is not installed is missing from :func:`reference_modules`; its tests skip.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from functools import lru_cache

_UTILS_NAMES = (
    "get_cacheable_input_name",
    "cache_lookup_one_recompute_on_miss",
    "extract_featuresdict_from_input_id_cached",
    "create_feature_extractor",
    "resolve_feature_extractor",
    "resolve_feature_layer_for_metric",
)


def _try_import(modules: dict[str, types.ModuleType], key: str, name: str) -> None:
    # A version that needs torchvision here stays out of the dict, and the tests using it skip.
    with contextlib.suppress(ImportError):
        modules[key] = importlib.import_module(name)


@lru_cache(maxsize=1)
def reference_modules() -> dict[str, types.ModuleType]:
    """The reference modules that are installed, by name: ``fidelity_inception``, ``fidelity_kid`` and
    ``fidelity_fid`` (torch-fidelity's ``feature_extractor_inceptionv3``, ``metric_kid``, ``metric_fid``),
    ``torchmetrics_kid`` and ``torchmetrics_fid`` (torchmetrics' ``image.kid`` and ``image.fid``)."""
    modules: dict[str, types.ModuleType] = {}
    spec = importlib.util.find_spec("torch_fidelity")
    saved = {name: module for name, module in sys.modules.items() if name.startswith("torch_fidelity")}
    if spec is not None and spec.submodule_search_locations:
        package = types.ModuleType("torch_fidelity")
        package.__path__ = list(spec.submodule_search_locations)
        utils = types.ModuleType("torch_fidelity.utils")
        for name in _UTILS_NAMES:
            setattr(utils, name, None)
        sys.modules["torch_fidelity"] = package
        sys.modules["torch_fidelity.utils"] = utils
    try:
        if spec is not None:
            for key, name in (
                ("fidelity_inception", "feature_extractor_inceptionv3"),
                ("fidelity_kid", "metric_kid"),
                ("fidelity_fid", "metric_fid"),
            ):
                _try_import(modules, key, f"torch_fidelity.{name}")
        if importlib.util.find_spec("torchmetrics") is not None:
            _try_import(modules, "torchmetrics_kid", "torchmetrics.image.kid")
            _try_import(modules, "torchmetrics_fid", "torchmetrics.image.fid")
    finally:
        for name in [n for n in sys.modules if n.startswith("torch_fidelity")]:
            del sys.modules[name]
        sys.modules.update(saved)
    return modules
