"""``semst demo``: measure semantic distortion from scratch on the procedural world (the README's main command)."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_progress, add_verbosity

HELP = (
    "generate a labelled two-domain world, train a target segmenter, SemST and CUT briefly, translate "
    "held-out scenes and score their semantic distortion in report.html"
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
    p.add_argument("--out", default="demo-output", metavar="DIR", help="where the world, runs and report go")
    p.add_argument("--quick", action="store_true", help="tiny world and networks, a few steps (a smoke test)")
    add_progress(p, help="no progress bars")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.demo import run_demo

    paths = run_demo(args.out, quick=args.quick, progress=not args.no_progress)
    print(
        "\nsemst demo finished. Results:\n"
        f"  report       {paths['report']}  (open it in a browser)\n"
        f"  metrics      {paths['metrics']}\n"
        f"  world        {paths['world']}/  (manifest.json, street/, class_histograms.png)\n"
        f"  runs         {paths['runs']}/  (checkpoints, train.log, scalars.jsonl, samples/)"
    )
    return 0
