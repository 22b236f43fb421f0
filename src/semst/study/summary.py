"""What a study's runs say, over seeds: means and spreads, paired differences against a baseline, class flips.

`summarize(results)` turns `Study.results()` into plain numbers:

- per variant and metric: the values of every seed, their mean and standard deviation (n - 1 in the
  denominator; 0 for one seed);
- per variant other than the baseline and metric: the per-seed paired differences (variant - baseline on
  the same seed), their mean, spread, t = mean / (std / sqrt(n)), and a plain verdict: the difference
  "exceeds the spread" when every seed agrees in sign and |mean| > std, else it is "within the spread";
- the flip matrix per variant: the share of each true class's pixels the segmenter labels as each class,
  averaged over seeds (``flips[true][predicted]``), and the largest off-diagonal flips (e.g. sky -> building);
- the floor (untranslated source images) and ceiling (real target images) on every metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["METRICS", "Metric", "metric_values", "paired_difference", "summarize"]


@dataclass(frozen=True)
class Metric:
    """A score of a run: where it is in the run's scores, how to show it, and which way is better."""

    key: str  # "distortion.mean_iou"
    label: str
    higher_is_better: bool
    percent: bool  # shown x100

    def value(self, scores: dict[str, Any]) -> float | None:
        section, name = self.key.split(".", 1)
        value = scores.get(section, {}).get(name)
        return None if value is None else float(value)

    def format(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "n/a"
        return f"{100 * value:.1f}" if self.percent else f"{value:.3f}"


METRICS: tuple[Metric, ...] = (
    Metric("distortion.pixel_accuracy", "pixel accuracy (%)", True, True),
    Metric("distortion.class_accuracy", "class accuracy (%)", True, True),
    Metric("distortion.mean_iou", "mean IoU (%)", True, True),
)
"""The distortion metrics; a study adds the realism metrics its scorer reports (`RealismScorer.METRICS`)."""


def metric_values(runs: Sequence[dict[str, Any]], metric: Metric) -> dict[int, float]:
    """seed -> value of ``metric`` over the runs of one variant (runs without a value are left out)."""
    values = {}
    for run in runs:
        value = metric.value(run)
        if value is not None:
            values[int(run["seed"])] = value
    return values


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def paired_difference(variant: dict[int, float], baseline: dict[int, float], higher_is_better: bool) -> dict:
    """Variant minus baseline seed by seed, over the seeds both have (see the module docstring)."""
    seeds = sorted(set(variant) & set(baseline))
    differences = [variant[s] - baseline[s] for s in seeds]
    mean, std = _mean_std(differences)
    result: dict[str, Any] = {"seeds": seeds, "differences": differences, "mean": mean, "std": std}
    if len(seeds) < 2:
        result.update(
            t=None, verdict="one seed: no spread to compare with", exceeds_spread=False, better=None
        )
        return result
    same_sign = all(d > 0 for d in differences) or all(d < 0 for d in differences)
    t = mean / (std / math.sqrt(len(seeds))) if std > 0 else None  # None: no spread at all
    exceeds = bool(same_sign and abs(mean) > std)
    better = (mean > 0) == higher_is_better if exceeds else None
    if exceeds:
        verdict = f"{'better' if better else 'worse'} on every seed, by more than the spread"
    elif same_sign:
        verdict = "same sign on every seed, but within the spread"
    else:
        verdict = "within the spread (the seeds disagree)"
    result.update(t=t, verdict=verdict, exceeds_spread=exceeds, better=better)
    return result


def _flip_matrix(confusion: Sequence[Sequence[int]]) -> np.ndarray:
    """Row-normalised confusion: ``[true, predicted]`` = share of the true class's pixels predicted so."""
    matrix = np.asarray(confusion, dtype=np.float64)  # (C, C)
    totals = matrix.sum(axis=1, keepdims=True)  # (C, 1)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def mean_flip_matrix(confusions: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """The row-normalised confusion matrices of several runs (seeds), averaged: (C, C)."""
    return np.mean([_flip_matrix(c) for c in confusions], axis=0)


def class_pixel_share(confusion: Sequence[Sequence[int]]) -> np.ndarray:
    """How common each true class is in a confusion matrix: (C,) shares of all its pixels."""
    matrix = np.asarray(confusion, dtype=np.float64)  # (C, C)
    return matrix.sum(axis=1) / max(1.0, matrix.sum())


def top_flips(matrix: np.ndarray, class_names: Sequence[str], count: int, weights: np.ndarray) -> list[dict]:
    """The off-diagonal flips that move the most pixels (share of the true class times its pixel share)."""
    flips = []
    for true, row in enumerate(matrix):
        for predicted, share in enumerate(row):
            if true != predicted and share > 0:
                flips.append((share * weights[true], true, predicted, share))
    flips.sort(reverse=True)
    return [
        {"true": class_names[t], "predicted": class_names[p], "share": float(share)}
        for _, t, p, share in flips[:count]
    ]


def summarize(
    results: dict[str, Any], metrics: Sequence[Metric], class_names: Sequence[str]
) -> dict[str, Any]:
    """Aggregate `Study.results()` (see the module docstring) for the report and ``results.json``."""
    spec = results["spec"]
    variants = [v["name"] for v in spec["variants"]]
    baseline = spec["baseline"]
    by_variant = {name: [r for r in results["runs"] if r["variant"] == name] for name in variants}
    table = {}
    for name in variants:
        row = {}
        for metric in metrics:
            values = metric_values(by_variant[name], metric)
            mean, std = _mean_std(list(values.values()))
            row[metric.key] = {"values": values, "mean": mean, "std": std}
        table[name] = row
    differences = {
        name: {
            metric.key: paired_difference(
                table[name][metric.key]["values"],
                table[baseline][metric.key]["values"],
                metric.higher_is_better,
            )
            for metric in metrics
        }
        for name in variants
        if name != baseline
    }
    references = {
        name: {metric.key: metric.value(ref) for metric in metrics}
        for name, ref in results["references"].items()
    }
    flips = {}
    source = results["references"].get("source")
    for name in variants:
        if by_variant[name]:
            confusions = [r["distortion"]["confusion_matrix"] for r in by_variant[name]]
            flips[name] = mean_flip_matrix(confusions).tolist()
    if source is not None:
        flips["source (not translated)"] = _flip_matrix(source["distortion"]["confusion_matrix"]).tolist()
    weights = (
        class_pixel_share(source["distortion"]["confusion_matrix"])
        if source is not None
        else np.ones(len(class_names))
    )
    top = {name: top_flips(np.asarray(m), class_names, 8, weights) for name, m in flips.items()}
    return {
        "variants": variants,
        "baseline": baseline,
        "seeds": spec["seeds"],
        "metrics": [m.key for m in metrics],
        "table": table,
        "differences": differences,
        "references": references,
        "flips": flips,
        "top_flips": top,
        "class_names": list(class_names),
        "missing": results["missing"],
    }
