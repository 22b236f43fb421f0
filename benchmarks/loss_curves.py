"""Compare the training-loss curves of two groups of runs (e.g. bf16 against fp32), seed against seed.

    python benchmarks/loss_curves.py fp32=STUDY/runs/SemST bf16=STUDY/runs/SemST-bf16 --until 300 \
        --plot docs/images/bf16-loss-curves.png

Each group is a folder of runs (``seed0/``, ``seed1/``, ... each with the ``scalars.jsonl`` that ``semst
train`` writes) or a comma-separated list of run folders. The first group is the reference. The logged
losses are single steps (every ``log.log_every`` steps), so they are averaged over windows of steps first
(``--windows``, default three equal windows up to ``--until``); for every loss and window this prints the
reference's mean and standard deviation over its seeds, the other group's mean, and whether that mean lies
within one standard deviation of the reference's mean ("within the seed-to-seed spread"). ``--plot`` draws
every run's curve, one panel per loss (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

DEFAULT_KEYS = ("G/total", "D/loss", "G/adversarial", "G/hdce", "G/ts", "G/patchnce")


def read_run(run: Path) -> dict[str, dict[int, float]]:
    """{loss: {step: value}} from a run's scalars.jsonl (the last record of a step wins, as after a resume)."""
    path = run / "scalars.jsonl"
    if not path.is_file():
        sys.exit(f"{path}: no scalars.jsonl (not a semst training run, or it has not logged yet)")
    curves: dict[str, dict[int, float]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            sys.exit(f"{path}: line {number} is not JSON")
        for key, value in record.items():
            if key.startswith(("G/", "D/")) and isinstance(value, (int, float)):
                curves.setdefault(key, {})[int(record["step"])] = float(value)
    return curves


def read_group(spec: str) -> tuple[str, list[Path]]:
    """NAME=FOLDER (a folder of seed*/ runs) or NAME=RUN,RUN,..."""
    name, sep, where = spec.partition("=")
    if not sep or not name or not where:
        sys.exit(f"{spec!r}: expected NAME=FOLDER or NAME=RUN,RUN,...")
    paths = [Path(p) for p in where.split(",")]
    if len(paths) == 1 and not (paths[0] / "scalars.jsonl").is_file():
        paths = sorted(p for p in paths[0].glob("seed*") if p.is_dir())
    if not paths:
        sys.exit(f"{where}: no runs (seed*/ folders with scalars.jsonl) found")
    return name, paths


def window_mean(curve: dict[int, float], low: int, high: int) -> float | None:
    values = [v for s, v in curve.items() if low < s <= high]
    return statistics.fmean(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "groups", nargs="+", help="NAME=FOLDER or NAME=RUN,RUN,...; the first is the reference"
    )
    parser.add_argument("--until", type=int, default=300, help="last step compared")
    parser.add_argument("--windows", type=int, default=3, help="equal step windows up to --until")
    parser.add_argument("--keys", default=",".join(DEFAULT_KEYS), help="losses, those logged by every run")
    parser.add_argument("--plot", type=Path, help="write a PNG of every run's curves here")
    args = parser.parse_args()
    if len(args.groups) < 2:
        parser.error("give at least two groups: the reference and one to compare with it")
    groups = {name: [read_run(p) for p in paths] for name, paths in map(read_group, args.groups)}
    keys = [k for k in args.keys.split(",") if all(k in run for runs in groups.values() for run in runs)]
    if not keys:
        sys.exit(f"none of {args.keys} is logged by every run")
    names = list(groups)
    reference = names[0]
    bounds = [round(args.until * i / args.windows) for i in range(args.windows + 1)]
    print(
        f"reference {reference} ({len(groups[reference])} seeds); steps ({bounds[0]}, {bounds[-1]}] in "
        f"{args.windows} windows; 'within' = |mean - reference mean| <= reference std over seeds"
    )
    print(
        f"{'loss':24s} {'steps':>11s} {reference + ' mean +- std':>22s} "
        + " ".join(f"{n + ' mean, paired difference':>37s}" for n in names[1:])
    )
    within = {n: 0 for n in names[1:]}
    total = 0
    for key in keys:
        for low, high in zip(bounds, bounds[1:]):
            ref = [m for run in groups[reference] if (m := window_mean(run[key], low, high)) is not None]
            if len(ref) < 2:
                continue
            mean, std = statistics.fmean(ref), statistics.stdev(ref)
            cells = []
            for name in names[1:]:
                values = [window_mean(run[key], low, high) for run in groups[name]]
                if all(v is None for v in values):  # runs shorter than this window
                    cells.append(f"{'(not logged)':>37s}")
                    continue
                other = statistics.fmean(v for v in values if v is not None)
                ok = abs(other - mean) <= std
                within[name] += ok
                # same seed, same data order and initial weights: the paired difference removes their noise
                pairs = [
                    v - r
                    for v, run in zip(values, groups[reference])
                    if v is not None and (r := window_mean(run[key], low, high)) is not None
                ]
                spread = statistics.stdev(pairs) if len(pairs) > 1 else 0.0
                paired = f"{statistics.fmean(pairs):+8.4f} +- {spread:6.4f}" if pairs else "(unpaired)"
                cells.append(f"{other:10.4f} {'within' if ok else 'OUT':>6s} {paired}")
            total += 1
            print(f"{key:24s} {f'({low}, {high}]':>11s} {mean:12.4f} +- {std:7.4f} " + " ".join(cells))
    for name in names[1:]:
        print(f"{name}: {within[name]} of {total} (loss, window) means within the reference's spread")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        columns = min(3, len(keys))
        rows = -(-len(keys) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for ax, key in zip(axes.flat, keys):
            for index, name in enumerate(names):
                for seed, run in enumerate(groups[name]):
                    steps = sorted(s for s in run[key] if s <= args.until)
                    ax.plot(
                        steps,
                        [run[key][s] for s in steps],
                        color=colours[index % len(colours)],
                        alpha=0.8,
                        linewidth=1.0,
                        label=name if seed == 0 else None,
                    )
            ax.set_title(key)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(keys) :]:
            ax.axis("off")
        axes.flat[0].legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
