"""Aggregation over seeds: means and spreads, paired differences and their verdicts, class flips: exact values
on hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semst.study.summary import METRICS, Metric, paired_difference, summarize

MIOU = Metric("distortion.mean_iou", "mean IoU (%)", True, True)
KID = Metric("realism.kid", "KID", False, False)


def _run(variant: str, seed: int, miou: float, kid: float, confusion=None) -> dict:
    confusion = confusion if confusion is not None else [[8, 2], [1, 9]]
    return {
        "variant": variant,
        "seed": seed,
        "distortion": {
            "mean_iou": miou,
            "pixel_accuracy": 0.5,
            "class_accuracy": 0.5,
            "confusion_matrix": confusion,
        },
        "realism": {"kid": kid},
        "seconds": {"train": 1.0},
    }


def _results(runs, missing=()):
    return {
        "spec": {"variants": [{"name": "A"}, {"name": "B"}], "baseline": "B", "seeds": [0, 1, 2]},
        "runs": runs,
        "references": {
            "source": {
                "distortion": {"mean_iou": 0.1, "confusion_matrix": [[5, 5], [0, 10]]},
                "realism": {"kid": 7.0},
            },
            "target": {
                "distortion": {"mean_iou": 0.9, "confusion_matrix": [[10, 0], [0, 10]]},
                "realism": {"kid": 0.0},
            },
        },
        "missing": list(missing),
    }


def test_means_spreads_and_paired_differences_are_exact():
    runs = [
        _run("A", 0, 0.30, 1.0),
        _run("A", 1, 0.40, 2.0),
        _run("A", 2, 0.50, 3.0),
        _run("B", 0, 0.20, 2.0),
        _run("B", 1, 0.25, 2.5),
        _run("B", 2, 0.30, 3.5),
    ]
    summary = summarize(_results(runs), [MIOU, KID], ["sky", "building"])
    cell = summary["table"]["A"]["distortion.mean_iou"]
    assert cell["values"] == {0: 0.30, 1: 0.40, 2: 0.50}
    assert cell["mean"] == pytest.approx(0.40) and cell["std"] == pytest.approx(0.10)  # n - 1 denominator
    diff = summary["differences"]["A"]["distortion.mean_iou"]
    assert diff["differences"] == pytest.approx([0.10, 0.15, 0.20])
    assert diff["mean"] == pytest.approx(0.15) and diff["std"] == pytest.approx(0.05)
    assert diff["t"] == pytest.approx(0.15 / (0.05 / math.sqrt(3)))
    assert diff["exceeds_spread"] and diff["better"] is True
    assert "better on every seed" in diff["verdict"]
    kid = summary["differences"]["A"]["realism.kid"]  # -1, -0.5, -0.5: lower KID is better
    assert kid["mean"] == pytest.approx(-2 / 3) and kid["better"] is True
    assert summary["references"]["source"]["realism.kid"] == 7.0
    assert summary["references"]["target"]["distortion.mean_iou"] == 0.9


@pytest.mark.parametrize(
    ("variant", "baseline", "verdict", "better"),
    [
        ({0: 1.0, 1: 2.0}, {0: 0.0, 1: 0.0}, "better on every seed", True),  # mean 1.5 > std 0.71
        ({0: 0.1, 1: 3.0}, {0: 0.0, 1: 0.0}, "same sign on every seed, but within the spread", None),
        ({0: 1.0, 1: -1.0}, {0: 0.0, 1: 0.0}, "within the spread (the seeds disagree)", None),
        ({0: -1.0, 1: -1.0}, {0: 0.0, 1: 0.0}, "worse on every seed", False),
        ({0: 1.0}, {0: 0.0}, "one seed: no spread to compare with", None),
    ],
)
def test_verdicts(variant, baseline, verdict, better):
    result = paired_difference(variant, baseline, higher_is_better=True)
    assert result["verdict"].startswith(verdict) and result["better"] is better


def test_only_common_seeds_are_compared_and_missing_runs_are_listed():
    runs = [_run("A", 0, 0.3, 1.0), _run("A", 1, 0.4, 1.0), _run("B", 0, 0.2, 1.0)]
    summary = summarize(_results(runs, [{"variant": "B", "seed": 1}]), [MIOU], ["sky", "building"])
    assert summary["differences"]["A"]["distortion.mean_iou"]["seeds"] == [0]
    assert summary["missing"] == [{"variant": "B", "seed": 1}]
    assert summary["table"]["B"]["distortion.mean_iou"]["std"] == 0.0


def test_flip_matrices_are_row_shares_averaged_over_seeds():
    runs = [
        _run("A", 0, 0.3, 1.0, confusion=[[6, 4], [0, 10]]),  # 40 % of sky seen as building
        _run("A", 1, 0.3, 1.0, confusion=[[8, 2], [5, 5]]),  # 20 %; half the buildings seen as sky
        _run("B", 0, 0.3, 1.0, confusion=[[10, 0], [0, 10]]),
    ]
    summary = summarize(_results(runs), METRICS, ["sky", "building"])
    np.testing.assert_allclose(summary["flips"]["A"], [[0.7, 0.3], [0.25, 0.75]])
    np.testing.assert_allclose(summary["flips"]["source (not translated)"], [[0.5, 0.5], [0.0, 1.0]])
    # Ranked by share x how common the true class is in the source (sky 10 px, building 10 px).
    assert summary["top_flips"]["A"][0] == {
        "true": "sky",
        "predicted": "building",
        "share": pytest.approx(0.3),
    }
    assert summary["top_flips"]["B"] == []
