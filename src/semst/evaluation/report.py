"""An HTML report of a semantic-distortion comparison: metric tables, per-class IoU, figures and image grids.

``write_report(path, report)`` writes one self-contained page (images are referenced relative to it) from
a plain dict, the same dict that is saved as ``metrics.json``:

    {"title": str, "subtitle": str,
     "rows": [{"name": "CUT", "pixel_accuracy": ..., "class_accuracy": ..., "mean_iou": ...,
               "per_class_iou": [...], "note": str}, ...],
     "class_names": [...], "segmenter": {"pixel_accuracy": ..., "mean_iou": ..., "images": int},
     "figures": [{"title": str, "path": relative path, "caption": str}, ...],
     "grids": [{"title": str, "path": relative path}, ...],
     "settings": {...}, "timings": {stage: seconds}, "notes": [str, ...]}
"""

from __future__ import annotations

import html
from pathlib import Path

from semst.files import write_text

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1d232b;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 34px 0 10px; }
.subtitle { color: #5b6573; margin: 0 0 18px; }
.card { background: #fff; border: 1px solid #e2e5ea; border-radius: 10px; padding: 16px 18px; margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 7px 10px; text-align: right; border-bottom: 1px solid #eceef2; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
td.best { font-weight: 700; color: #0b6b3a; }
td.note { text-align: left; color: #5b6573; font-size: 13px; }
.bar { display: inline-block; height: 8px; background: #7aa6d6; border-radius: 4px; vertical-align: middle;
       margin-right: 6px; }
figure { margin: 0 0 18px; } figure img { max-width: 100%; border-radius: 6px; border: 1px solid #e2e5ea; }
figcaption { color: #5b6573; font-size: 13px; margin-top: 6px; }
ul.notes li { margin: 4px 0; color: #39424e; }
code { background: #eef0f3; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
.small { font-size: 13px; color: #5b6573; }
"""

METRICS = (
    ("pixel_accuracy", "pixel accuracy"),
    ("class_accuracy", "class accuracy"),
    ("mean_iou", "mean IoU"),
)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _metric_table(rows: list[dict]) -> str:
    best = {}
    for key, _ in METRICS:
        values = [r.get(key) for r in rows if r.get(key) is not None and r.get("compare", True)]
        best[key] = max(values) if values else None
    head = "".join(f"<th>{html.escape(label)} (%)</th>" for _, label in METRICS)
    body = []
    for row in rows:
        cells = []
        for key, _ in METRICS:
            value = row.get(key)
            cls = (
                ' class="best"'
                if value is not None and value == best[key] and row.get("compare", True)
                else ""
            )
            cells.append(f"<td{cls}>{_pct(value)}</td>")
        body.append(
            f"<tr><td>{html.escape(row['name'])}</td>{''.join(cells)}"
            f"<td class='note'>{html.escape(row.get('note', ''))}</td></tr>"
        )
    return f"<table><tr><th>images scored</th>{head}<th></th></tr>{''.join(body)}</table>"


def _class_table(rows: list[dict], class_names: list[str]) -> str:
    used = [
        i
        for i in range(len(class_names))
        if any((r.get("per_class_iou") or [None] * 99)[i] is not None for r in rows)
    ]
    head = "".join(f"<th>{html.escape(r['name'])}</th>" for r in rows)
    body = []
    for i in used:
        cells = []
        for row in rows:
            value = row["per_class_iou"][i]
            width = 0 if value is None else round(60 * value)
            cells.append(f"<td><span class='bar' style='width:{width}px'></span>{_pct(value)}</td>")
        body.append(f"<tr><td>{html.escape(class_names[i])}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>class: IoU (%)</th>{head}</tr>{''.join(body)}</table>"


def render_report(report: dict) -> str:
    """The HTML page of a report dict (see the module docstring)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(report['title'])}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{html.escape(report['title'])}</h1><p class='subtitle'>{html.escape(report.get('subtitle', ''))}</p>",
        "<h2>Semantic distortion</h2><div class='card'>",
        "<p class='small'>A segmenter trained on the target domain labels each image; its labels are scored "
        "against the source labels (paper section 4.2). Higher is better: the translation kept what was where.</p>",
        _metric_table(report["rows"]),
    ]
    seg = report.get("segmenter")
    if seg:
        parts.append(
            f"<p class='small'>The segmenter itself, on {seg['images']} held-out target-domain images: pixel "
            f"accuracy {_pct(seg['pixel_accuracy'])}%, mean IoU {_pct(seg['mean_iou'])}%. Scores of "
            "translations are bounded by how good the segmenter is.</p>"
        )
    parts.append("</div><h2>Per-class IoU</h2><div class='card'>")
    parts.append(_class_table(report["rows"], report["class_names"]))
    parts.append("</div>")
    if report.get("grids"):
        parts.append(
            "<h2>Where semantics changed</h2><p class='small'>Per held-out source image: each row is an image "
            "that was scored, the segmenter's labels, the true labels, and a distortion map (grey where the "
            "class was kept; coloured with the class the segmenter saw where it changed).</p>"
        )
        for grid in report["grids"]:
            parts.append(
                f"<figure class='card'><img src='{html.escape(grid['path'])}' alt='{html.escape(grid['title'])}'>"
                f"<figcaption>{html.escape(grid['title'])}</figcaption></figure>"
            )
    for figure in report.get("figures", []):
        parts.append(
            f"<h2>{html.escape(figure['title'])}</h2><figure class='card'><img src='{html.escape(figure['path'])}' "
            f"alt='{html.escape(figure['title'])}'><figcaption>{html.escape(figure.get('caption', ''))}</figcaption>"
            "</figure>"
        )
    if report.get("notes"):
        parts.append("<h2>Notes</h2><div class='card'><ul class='notes'>")
        parts += [f"<li>{html.escape(note)}</li>" for note in report["notes"]]
        parts.append("</ul></div>")
    if report.get("timings"):
        rows = "".join(
            f"<tr><td>{html.escape(stage)}</td><td>{seconds:.0f} s</td></tr>"
            for stage, seconds in report["timings"].items()
        )
        parts.append(f"<h2>Time per stage</h2><div class='card'><table>{rows}</table></div>")
    if report.get("settings"):
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td class='note'><code>{html.escape(str(v))}</code></td></tr>"
            for k, v in report["settings"].items()
        )
        parts.append(f"<h2>Settings</h2><div class='card'><table>{rows}</table></div>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, report: dict) -> Path:
    """Write the HTML page atomically."""
    return write_text(path, render_report(report))
