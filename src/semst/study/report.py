"""The study report: ``results.json`` and a self-contained ``report.html`` with tables, charts and pictures.

`write_study_report(study)` aggregates what is scored (`semst.study.summary.summarize`), writes
``STUDY/results.json`` (runs, floor and ceiling, summary), draws ``STUDY/report_files/*.png`` (bar charts with
error bars over seeds, the largest class flips, distortion pictures of held-out images) and renders
``STUDY/report.html``. The page states plainly, metric by metric, whether each variant differs from the
baseline by more than the seed-to-seed spread, and it works with runs missing (they are listed).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semst.data.images import load_rgb, save_image
from semst.data.labels import TRAIN_ID_NAMES
from semst.files import write_json, write_text
from semst.study.realism import RealismScorer
from semst.study.summary import METRICS, Metric, summarize

__all__ = ["STYLE", "markdown_table", "render_study_report", "write_study_report"]

log = logging.getLogger("semst.study")

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1d232b;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 34px 0 10px; }
.subtitle { color: #5b6573; margin: 0 0 18px; }
.card { background: #fff; border: 1px solid #e2e5ea; border-radius: 10px; padding: 16px 18px; margin: 12px 0;
        overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 7px 10px; text-align: right; border-bottom: 1px solid #eceef2; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
tr.reference td { color: #5b6573; font-style: italic; }
td.best { font-weight: 700; color: #0b6b3a; }
td.better { color: #0b6b3a; } td.worse { color: #a3261b; }
td.note { text-align: left; color: #5b6573; font-size: 13px; white-space: normal; }
.verdict { font-size: 15px; margin: 6px 0; }
.bar { display: inline-block; height: 8px; background: #7aa6d6; border-radius: 4px; vertical-align: middle;
       margin-right: 6px; }
figure { margin: 0 0 18px; } figure img { max-width: 100%; border-radius: 6px; border: 1px solid #e2e5ea; }
figcaption { color: #5b6573; font-size: 13px; margin-top: 6px; }
ul.notes li { margin: 4px 0; color: #39424e; }
code { background: #eef0f3; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
.small { font-size: 13px; color: #5b6573; }
"""

FLOOR = "untranslated source"
CEILING = "real target"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _mean_std(metric: Metric, cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "n/a"
    if len(cell["values"]) < 2:
        return metric.format(cell["mean"])
    return f"{metric.format(cell['mean'])} ± {metric.format(cell['std'])}"


def _main_table(summary: dict, metrics: Sequence[Metric], notes: dict[str, str]) -> str:
    head = "".join(f"<th>{_esc(m.label)}</th>" for m in metrics)
    best = {}
    for m in metrics:
        means = [summary["table"][v][m.key]["mean"] for v in summary["variants"]]
        means = [x for x in means if x is not None]
        best[m.key] = (max if m.higher_is_better else min)(means) if means else None
    rows = []

    def reference(name: str, key: str) -> None:
        values = summary["references"].get(key)
        if values is None:
            return
        cells = "".join(f"<td>{m.format(values.get(m.key))}</td>" for m in metrics)
        rows.append(
            f"<tr class='reference'><td>{_esc(name)}</td>{cells}<td class='note'>{_esc(notes[name])}</td></tr>"
        )

    reference(FLOOR, "source")
    for variant in summary["variants"]:
        cells = []
        for m in metrics:
            cell = summary["table"][variant][m.key]
            cls = " class='best'" if cell["mean"] is not None and cell["mean"] == best[m.key] else ""
            cells.append(f"<td{cls}>{_mean_std(m, cell)}</td>")
        seeds = len(summary["table"][variant][metrics[0].key]["values"])
        rows.append(
            f"<tr><td>{_esc(variant)}</td>{''.join(cells)}<td class='note'>{_esc(notes.get(variant, ''))} "
            f"({seeds} seed{'s' if seeds != 1 else ''})</td></tr>"
        )
    reference(CEILING, "target")
    return f"<table><tr><th></th>{head}<th></th></tr>{''.join(rows)}</table>"


def _differences_table(summary: dict, metrics: Sequence[Metric]) -> str:
    rows = []
    for variant, by_metric in summary["differences"].items():
        for m in metrics:
            d = by_metric[m.key]
            if d["mean"] is None:
                continue
            scale = 100 if m.percent else 1
            per_seed = ", ".join(f"{scale * x:+.2f}" for x in d["differences"])
            cls = "" if d["better"] is None else (" class='better'" if d["better"] else " class='worse'")
            std = "" if d["std"] is None else f" ± {scale * d['std']:.2f}"
            rows.append(
                f"<tr><td>{_esc(variant)}</td><td>{_esc(m.label)}</td><td{cls}>{scale * d['mean']:+.2f}{std}</td>"
                f"<td>{per_seed}</td><td class='note'>{_esc(d['verdict'])}</td></tr>"
            )
    return (
        f"<table><tr><th>variant - {_esc(summary['baseline'])}</th><th>metric</th><th>mean ± std</th>"
        f"<th>per seed</th><th></th></tr>{''.join(rows)}</table>"
    )


def _verdicts(summary: dict, metrics: Sequence[Metric]) -> list[str]:
    """One plain sentence per variant: what differs from the baseline by more than the spread."""
    lines = []
    for variant, by_metric in summary["differences"].items():
        better = [m.label for m in metrics if by_metric[m.key]["better"] is True]
        worse = [m.label for m in metrics if by_metric[m.key]["better"] is False]
        seeds = len(by_metric[metrics[0].key]["seeds"])
        if seeds < 2:
            lines.append(f"{variant} vs {summary['baseline']}: fewer than two common seeds, no comparison.")
            continue
        parts = []
        if better:
            parts.append("better on " + ", ".join(better))
        if worse:
            parts.append("worse on " + ", ".join(worse))
        text = "; ".join(parts) if parts else "no difference larger than the seed-to-seed spread"
        lines.append(f"{variant} vs {summary['baseline']} over {seeds} seeds: {text}.")
    return lines


def _flip_table(summary: dict) -> str:
    names = [n for n in (["source (not translated)"] + summary["variants"]) if n in summary["flips"]]
    chosen: list[tuple[str, str]] = []
    for name in names:
        for flip in summary["top_flips"][name][:4]:
            pair = (flip["true"], flip["predicted"])
            if pair not in chosen:
                chosen.append(pair)
    classes = summary["class_names"]
    rows = []
    for true, predicted in chosen[:12]:
        t, p = classes.index(true), classes.index(predicted)
        cells = "".join(f"<td>{100 * summary['flips'][n][t][p]:.1f}</td>" for n in names)
        rows.append(f"<tr><td>{_esc(true)} → {_esc(predicted)}</td>{cells}</tr>")
    head = "".join(f"<th>{_esc(n)}</th>" for n in names)
    return (
        f"<table><tr><th>true → seen as (% of the true class's pixels)</th>{head}</tr>{''.join(rows)}</table>"
    )


def _class_table(summary: dict, runs: list[dict]) -> str:
    classes = summary["class_names"]
    columns = {}
    for variant in summary["variants"]:
        per_seed = [r["distortion"]["per_class_iou"] for r in runs if r["variant"] == variant]
        if per_seed:
            columns[variant] = [
                None
                if all(v[i] is None for v in per_seed)
                else float(np.mean([v[i] for v in per_seed if v[i] is not None]))
                for i in range(len(classes))
            ]
    used = [i for i in range(len(classes)) if any(col[i] is not None for col in columns.values())]
    head = "".join(f"<th>{_esc(n)}</th>" for n in columns)
    rows = []
    for i in used:
        cells = []
        for col in columns.values():
            value = col[i]
            width = 0 if value is None else round(60 * value)
            text = "n/a" if value is None else f"{100 * value:.1f}"
            cells.append(f"<td><span class='bar' style='width:{width}px'></span>{text}</td>")
        rows.append(f"<tr><td>{_esc(classes[i])}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>class: IoU (%), mean over seeds</th>{head}</tr>{''.join(rows)}</table>"


def _bar_chart(summary: dict, metrics: Sequence[Metric], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no charts (pip install 'semst[viz]')")
        return None
    variants = summary["variants"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), dpi=110, squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, m in zip(axes[0], metrics):
        scale = 100 if m.percent else 1
        means = [summary["table"][v][m.key]["mean"] for v in variants]
        stds = [summary["table"][v][m.key]["std"] or 0 for v in variants]
        x = np.arange(len(variants))
        heights = [scale * (mean if mean is not None else np.nan) for mean in means]
        ax.bar(
            x, heights, yerr=[scale * s for s in stds], capsize=4, color=[colors(i) for i in range(len(x))]
        )
        for i, variant in enumerate(variants):  # the seeds themselves, as dots
            values = list(summary["table"][variant][m.key]["values"].values())
            ax.scatter([i] * len(values), [scale * v for v in values], s=9, color="black", zorder=3)
        for key, style, label in (("source", ":", "untranslated"), ("target", "--", "real target")):
            value = summary["references"].get(key, {}).get(m.key)
            if value is not None:
                ax.axhline(scale * value, linestyle=style, color="#555", linewidth=1, label=label)
        ax.set_xticks(x, variants, rotation=35, ha="right", fontsize=8)
        ax.set_title(m.label + (" ↑" if m.higher_is_better else " ↓"), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _pictures(study, summary: dict, count: int, folder: Path, *, every_seed: bool = False) -> list[dict]:
    """Distortion panels of the first ``count`` held-out images: untranslated, then each variant (its lowest
    seed, or every seed with ``every_seed``), each with the segmenter's labels, the true labels and where
    the class changed."""
    from semst.evaluation.pictures import distortion_panel

    data = study.data
    seeds = sorted(study.spec.seeds) if every_seed else [min(study.spec.seeds)]
    grids = []
    predictions: dict[str, np.ndarray] = {}

    def keep(image_path, _label_path, prediction):
        predictions[str(image_path)] = prediction

    for sample in data.source_test_samples[:count]:
        label = data.source_label(sample)
        rows = [("untranslated source", sample.image)]
        for variant in summary["variants"]:
            for seed in seeds:
                path = study.run_dir(variant, seed) / "translated" / sample.relative.with_suffix(".png")
                if path.is_file():
                    rows.append((f"{variant} (seed {seed})", path))
        study.segment([path for _, path in rows], [sample] * len(rows), data.source_label, on_image=keep)
        panels = [
            distortion_panel(
                np.asarray(load_rgb(path)), predictions[str(path)], label, title=title, height=140
            )
            for title, path in rows
        ]
        grid = Image.new("RGB", (max(p.width for p in panels), sum(p.height + 8 for p in panels)), "white")
        y = 0
        for panel in panels:
            grid.paste(panel, (0, y))
            y += panel.height + 8
        name = f"grid_{sample.relative.stem}.png"
        save_image(grid, folder / name)
        grids.append({"title": f"held-out source image {sample.relative}", "path": f"{folder.name}/{name}"})
    return grids


def render_study_report(
    summary: dict, runs: list[dict], spec: dict, metrics: Sequence[Metric], extra: dict
) -> str:
    """The HTML page (see the module docstring)."""
    notes = {
        FLOOR: "the target segmenter on the untranslated held-out source images: the floor",
        CEILING: "the segmenter on held-out real target images with their labels: the ceiling",
        **{v["name"]: v.get("description", "") for v in spec["variants"]},
    }
    scale = spec["scale"]
    subtitle = (
        f"{len(summary['variants'])} variants x {len(spec['seeds'])} seeds (seeds {', '.join(map(str, spec['seeds']))}); "
        f"scale '{scale['name']}': {scale['steps']} steps, {scale['crop']} px crops, {scale['base_channels']} "
        f"channels, {scale['num_blocks']} residual blocks; baseline {summary['baseline']}"
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_esc(spec['title'])}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{_esc(spec['title'])}</h1><p class='subtitle'>{_esc(subtitle)}</p>",
        "<h2>What the seeds say</h2><div class='card'>",
        *[f"<p class='verdict'>{_esc(line)}</p>" for line in _verdicts(summary, metrics)],
        "<p class='small'>A difference counts only when every seed agrees in sign and the mean difference is larger "
        "than its standard deviation over seeds; the table below has the numbers.</p></div>",
        "<h2>Scores (mean ± std over seeds)</h2><div class='card'>",
        "<p class='small'>Distortion: a segmenter trained on the target domain"
        + (" with colour augmentation" if spec.get("segmenter_photometric") else "")
        + " labels each translated held-out source image; its labels are scored against the source labels "
        "(paper section 4.2): higher means the translation kept what was where. Realism: how much the "
        "translations look like the target domain (docs/realism.md): an identity translation keeps every "
        "label and scores the floor here.</p>",
        _main_table(summary, metrics, notes),
        "</div>",
        f"<h2>Differences from {_esc(summary['baseline'])}, seed by seed</h2><div class='card'>",
        _differences_table(summary, metrics),
        "</div>",
    ]
    for figure in extra.get("figures", []):
        parts.append(
            f"<h2>{_esc(figure['title'])}</h2><figure class='card'><img src='{_esc(figure['path'])}' "
            f"alt='{_esc(figure['title'])}'><figcaption>{_esc(figure.get('caption', ''))}</figcaption></figure>"
        )
    if summary["flips"]:
        parts += [
            "<h2>Which classes turned into which</h2><div class='card'>",
            "<p class='small'>Share of each true class's pixels that the segmenter sees as another class (mean over "
            "seeds), for the largest flips: e.g. sky seen as building is the distortion the paper is about.</p>",
            _flip_table(summary),
            "</div>",
            "<h2>Per-class IoU</h2><div class='card'>",
            _class_table(summary, runs),
            "</div>",
        ]
    if extra.get("grids"):
        parts.append(
            "<h2>Where semantics changed</h2><p class='small'>Per held-out source image: the image scored, the "
            "segmenter's labels, the true labels and a distortion map (grey where the class was kept; coloured "
            "with the class the segmenter saw where it changed).</p>"
        )
        parts += [
            f"<figure class='card'><img src='{_esc(g['path'])}' alt='{_esc(g['title'])}'>"
            f"<figcaption>{_esc(g['title'])}</figcaption></figure>"
            for g in extra["grids"]
        ]
    if summary["missing"]:
        missing = ", ".join(f"{m['variant']} seed {m['seed']}" for m in summary["missing"])
        parts.append(f"<h2>Not run yet</h2><div class='card'><p>{_esc(missing)}</p></div>")
    if extra.get("notes"):
        parts.append("<h2>Notes</h2><div class='card'><ul class='notes'>")
        parts += [f"<li>{_esc(note)}</li>" for note in extra["notes"]]
        parts.append("</ul></div>")
    per_seed = "".join(
        f"<tr><td>{_esc(r['variant'])}</td><td>{r['seed']}</td>"
        + "".join(f"<td>{m.format(m.value(r))}</td>" for m in metrics)
        + f"<td>{sum(r['seconds'].values()):.0f} s</td></tr>"
        for r in sorted(runs, key=lambda r: (r["variant"], r["seed"]))
    )
    head = "".join(f"<th>{_esc(m.label)}</th>" for m in metrics)
    parts.append(
        f"<h2>Every run</h2><div class='card'><table><tr><th>variant</th><th>seed</th>{head}<th>time</th></tr>"
        f"{per_seed}</table></div>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts)


def markdown_table(
    summary: dict, metrics: Sequence[Metric], variants: Sequence[str] | None = None, *, per_seed: bool = False
) -> str:
    """The scores as a Markdown table (mean ± std over seeds, floor and ceiling rows), followed by the paired
    differences from the baseline with their verdicts: what docs/experiments.md records per experiment. With
    ``per_seed``, a third table gives every seed's own scores (variant by variant, seeds in order)."""
    variants = list(variants) if variants is not None else summary["variants"]
    unknown = [v for v in variants if v not in summary["table"]]
    if unknown:
        raise ValueError(
            f"not in this study: {', '.join(unknown)} (variants: {', '.join(summary['variants'])})"
        )
    head = "| | seeds | " + " | ".join(m.label for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 2) + "|"]
    for name, key in ((FLOOR, "source"), *((v, None) for v in variants), (CEILING, "target")):
        if key is not None:
            values = summary["references"].get(key)
            if values is None:
                continue
            cells = [m.format(values.get(m.key)) for m in metrics]
            lines.append(f"| *{name}* | | " + " | ".join(cells) + " |")
            continue
        row = summary["table"][name]
        seeds = len(row[metrics[0].key]["values"])
        lines.append(f"| {name} | {seeds} | " + " | ".join(_mean_std(m, row[m.key]) for m in metrics) + " |")
    baseline = summary["baseline"]
    compared = [v for v in variants if v != baseline and v in summary["differences"]]
    if compared:
        lines += ["", f"| minus {baseline}, per seed | " + " | ".join(m.label for m in metrics) + " |"]
        lines.append("|---" * (len(metrics) + 1) + "|")
        for name in compared:
            cells = []
            for m in metrics:
                d = summary["differences"][name][m.key]
                if d["mean"] is None:
                    cells.append("n/a")
                    continue
                scale = 100 if m.percent else 1
                mark = "" if d["better"] is None else (" **better**" if d["better"] else " **worse**")
                std = f" ± {scale * d['std']:.2f}" if d["std"] is not None else ""
                cells.append(f"{scale * d['mean']:+.2f}{std}{mark}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if per_seed:
        lines += ["", "| per seed | seed | " + " | ".join(m.label for m in metrics) + " |"]
        lines.append("|---" * (len(metrics) + 2) + "|")
        for name in variants:
            row = summary["table"][name]
            seeds = sorted({s for m in metrics for s in row[m.key]["values"]})
            for seed in seeds:
                cells = [m.format(row[m.key]["values"].get(seed)) for m in metrics]
                lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_scores(results: dict[str, Any]) -> tuple[list[Metric], dict[str, Any]]:
    """The columns and the summary of a study's stored scores (``Study.results()``): the distortion metrics,
    the realism metrics the stored scores hold (class-matched KID where the floor, the ceiling or a run has
    it) and the train-id classes. Nothing else is read, so an archived study (study.json, references/ and
    the runs' scores.json, without data or checkpoints) summarizes as the study did."""
    scored = [*results["runs"], *results["references"].values()]
    metrics = [*METRICS, *RealismScorer.stored_metrics(scored)]
    return metrics, summarize(results, metrics, TRAIN_ID_NAMES)


def write_study_report(
    study, *, pictures: int = 2, every_seed: bool = False, notes: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``results.json``, ``report_files/`` and ``report.html`` into the study folder; returns the paths.
    The pictures show the first ``pictures`` held-out images translated by each variant's lowest seed, or
    by every seed with ``every_seed``."""
    results = study.results()
    metrics, summary = summarize_scores(results)
    directory = study.directory
    files = directory / "report_files"
    extra: dict[str, Any] = {"figures": [], "notes": list(notes)}
    chart = _bar_chart(summary, metrics, files / "scores.png")
    if chart is not None:
        extra["figures"].append(
            {
                "title": "Scores over seeds",
                "path": "report_files/scores.png",
                "caption": "Bars: mean over seeds; whiskers: one standard deviation; dots: the seeds. Dotted: "
                "the untranslated source images; dashed: real target images.",
            }
        )
    if pictures and results["runs"]:
        extra["grids"] = _pictures(study, summary, pictures, files, every_seed=every_seed)
    results_path = write_json(directory / "results.json", {**results, "summary": summary})
    report_path = write_text(
        directory / "report.html",
        render_study_report(summary, results["runs"], results["spec"], metrics, extra),
    )
    return {"report": report_path, "results": results_path, "files": files}
