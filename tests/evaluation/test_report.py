"""The HTML report: the best comparable score is marked, names are escaped, missing values say n/a."""

from __future__ import annotations

from semst.evaluation.report import render_report, write_report


def _report():
    iou = [0.5, None, 0.25] + [None] * 16
    return {
        "title": "t <1>",
        "subtitle": "s",
        "rows": [
            {
                "name": "source",
                "pixel_accuracy": 0.9,
                "class_accuracy": None,
                "mean_iou": 0.1,
                "per_class_iou": iou,
                "compare": False,
                "note": "reference",
            },
            {
                "name": "A & B",
                "pixel_accuracy": 0.5,
                "class_accuracy": 0.4,
                "mean_iou": 0.3,
                "per_class_iou": iou,
            },
            {
                "name": "C",
                "pixel_accuracy": 0.6,
                "class_accuracy": 0.2,
                "mean_iou": 0.3,
                "per_class_iou": iou,
            },
        ],
        "class_names": [f"class{i}" for i in range(19)],
        "notes": ["n"],
        "timings": {"world": 1.0},
    }


def test_best_comparable_values_are_marked_and_text_is_escaped(tmp_path):
    page = render_report(_report())
    assert "t &lt;1&gt;" in page and "A &amp; B" in page
    # 0.9 belongs to the reference row (compare=False): the best pixel accuracy among methods is C's 60.0.
    assert '<td class="best">60.0</td>' in page and '<td class="best">90.0</td>' not in page
    assert '<td class="best">40.0</td>' in page  # class accuracy of A & B
    assert page.count('<td class="best">30.0</td>') == 2  # a tie marks both
    assert "<td>n/a</td>" in page
    # Only classes with an IoU somewhere get a row.
    assert "class0" in page and "class2" in page and "class1<" not in page
    path = write_report(tmp_path / "r" / "report.html", _report())
    assert path.read_text() == page


def test_the_page_renders_in_a_headless_browser(tmp_path):
    """Chromium draws the page with its figure (skipped where no Chromium is installed)."""
    import shutil
    import subprocess

    import numpy as np
    import pytest
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser installed (Debian: apt install chromium)")
    figure = np.zeros((60, 200, 3), np.uint8)
    figure[:, :100] = (200, 30, 30)
    Image.fromarray(figure).save(tmp_path / "figure.png")
    report = _report() | {
        "figures": [{"title": "A figure", "path": "figure.png", "caption": "red and black"}]
    }
    page = write_report(tmp_path / "report.html", report)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,1600",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 10  # text, tables and the figure, not a blank page
    assert (np.abs(pixels.astype(int) - (200, 30, 30)).sum(axis=1) < 30).sum() > 1000  # the figure is drawn
