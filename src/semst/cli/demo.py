"""``semst demo``: measure semantic distortion from scratch on the procedural world (the README's main command)."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_progress, add_verbosity

HELP = (
    "a small study on a generated labelled world: SemST and CUT over two seeds, scored on semantic "
    "distortion and realism, in study/report.html"
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help=HELP,
        description=HELP
        + " (needs scikit-image and matplotlib: pip install 'semst[demo]'). Each stage resumes "
        "when the demo is run again in the same folder.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", default="demo-output", metavar="DIR", help="where the world and the study go")
    p.add_argument("--quick", action="store_true", help="tiny world and networks, a few steps (a smoke test)")
    p.add_argument(
        "--jobs", type=int, metavar="N", help="runs trained at once (default: 2 with two or more cores)"
    )
    add_progress(p, help="no progress bars")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.demo import run_demo

    paths = run_demo(args.out, quick=args.quick, progress=not args.no_progress, jobs=args.jobs)
    print(
        "\nsemst demo finished. Results:\n"
        f"  report       {paths['report']}  (open it in a browser)\n"
        f"  results      {paths['results']}\n"
        f"  world        {paths['world']}/  (manifest.json, street/, class_histograms.png)\n"
        f"  runs         {paths['study']}/runs/  (checkpoints, train.log, scalars.jsonl, samples/, translated/)"
    )
    return 0
