"""``semst demo``: build a small unpaired data set, train SemST on it briefly, translate, show the result."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter

HELP = "train SemST briefly on built-in images (photos -> cyanotypes) and translate held-out photos"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help=HELP,
        description=HELP + " (needs scikit-image: pip install 'semst[demo]').",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", default="demo-output", metavar="DIR", help="where data, run and results go")
    p.add_argument("--quick", action="store_true", help="a few steps of a tiny network (a smoke test)")
    p.add_argument("--steps", type=int, metavar="N", help="training steps (default: 1200, or 4 with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    from semst.demo import run_demo

    paths = run_demo(args.out, quick=args.quick, steps=args.steps, progress=not args.no_progress)
    print(
        "\nsemst demo finished. Results:\n"
        f"  side-by-side picture  {paths['comparison']}\n"
        f"  full-size outputs     {paths['translated']}/\n"
        f"  run (logs, samples)   {paths['run']}/  (scalars.jsonl, samples/, train.log)\n"
        f"  checkpoint            {paths['checkpoint']}"
    )
    return 0
