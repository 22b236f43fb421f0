"""``semst world``: write the procedural labelled two-domain world (street scenes and aerial pairs)."""

from __future__ import annotations

import argparse

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_progress, add_verbosity

HELP = "generate the procedural labelled world: two street-scene domains with label maps, and aerial photo/map pairs"


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x256, got {text!r}") from None
    if width < 16 or height < 8:
        raise argparse.ArgumentTypeError(f"scenes need at least 16x8 pixels, got {text}")
    return width, height


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "world",
        help=HELP,
        description=HELP + ". A source domain (game-like rendering; much sky and road) and a target domain "
        "(photo-like, with real texture photos; much building, vegetation and car), with exact Cityscapes "
        "trainId labels, for measuring semantic distortion; the target scenes' label maps in the Cityscapes "
        "palette (parsing to image); and paired aerial photos and maps (photo to map). Deterministic by "
        "seed; an interrupted run is completed by running it again.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (see its manifest.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of every layout and rendering")
    p.add_argument("--train", type=int, default=200, metavar="N", help="training scenes per domain")
    p.add_argument("--test", type=int, default=50, metavar="N", help="held-out scenes per domain")
    p.add_argument("--size", type=_size, default=(512, 256), metavar="WxH", help="street scene size")
    p.add_argument("--aerial-size", type=int, default=256, metavar="PX", help="side of the aerial pairs")
    p.add_argument("--no-aerial", action="store_true", help="skip the aerial photo/map pairs")
    p.add_argument(
        "--scenes",
        choices=("city", "green", "town"),
        default="city",
        help="class statistics: city (much sky and road against dense buildings), green (trees and houses "
        "against open roads and sky) or town (trees and houses against a town that holds every class)",
    )
    add_progress(p)
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    from semst.world.dataset import write_world

    manifest = write_world(
        args.out,
        seed=args.seed,
        train=args.train,
        test=args.test,
        size=args.size,
        aerial_size=None if args.no_aerial else args.aerial_size,
        scenes=args.scenes,
        progress=not args.no_progress,
    )
    fractions = manifest["train_class_pixel_fractions"]
    print(f"wrote the world to {args.out} ({MANIFEST_HINT})")
    for domain, values in fractions.items():
        top = sorted(values.items(), key=lambda kv: -kv[1])[:4]
        print(f"  {domain}: " + ", ".join(f"{name} {100 * v:.0f}%" for name, v in top))
    print(f"train on it: semst train --data {args.out}/street --out runs/world")
    return 0


MANIFEST_HINT = "manifest.json lists what is where"
