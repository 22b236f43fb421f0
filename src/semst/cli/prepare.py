"""``semst prepare``: convert a data set whose downloaded layout cannot be trained on directly (Maps)."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_verbosity

HELP = "convert a downloaded data set into unaligned trainA/trainB folders (Maps: split the photo|map pairs)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help=HELP,
        description=HELP + ". pix2pix's Maps stores each aerial photo and its map side by side in one image; "
        "this writes the photos to {split}A/ and the maps to {split}B/ as {stem}_A.png / {stem}_B.png, so "
        "that `semst train --data OUT` trains photo -> map and `semst evaluate paired --pred ... --gt OUT/valB "
        "--pred-suffix _A --gt-suffix _B` scores it.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("dataset", metavar="NAME:PATH", help="the data set as downloaded, e.g. maps:/data/maps")
    p.add_argument("--out", metavar="DIR", required=True, help="output root")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.data.datasets import Maps, open_dataset, write_unaligned_maps
    from semst.overlap import refuse_overlap

    dataset = open_dataset(args.dataset)
    if not isinstance(dataset, Maps):
        raise ValueError(
            f"{args.dataset}: only maps:PATH needs preparing; {dataset.name} data sets are used as downloaded "
            "(semst train --data NAME:PATH --target ..., semst refine --dataset NAME:PATH)"
        )
    refuse_overlap([dataset.root], folders=[args.out])
    counts = write_unaligned_maps(dataset, args.out)
    for split, count in counts.items():
        print(f"{split}: {count} pairs -> {args.out}/{split}A (photos), {args.out}/{split}B (maps)")
    return 0
