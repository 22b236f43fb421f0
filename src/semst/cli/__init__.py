"""The ``semst`` command line: ``semst train``, ``translate``, ``info``, ``refine``, ``prepare``, ``export``,
``convert``, ``world``, ``segmenter``, ``evaluate``, ``study``, ``demo``.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``; to add
one, write the module and list it in ``COMMANDS``. Library code logs through ``logging``; only this
package configures handlers (messages go to stderr, above any progress bar).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tqdm.auto import tqdm

import semst
from semst.cli import (
    convert,
    demo,
    evaluate,
    export,
    info,
    prepare,
    refine,
    segmenter,
    study,
    train,
    translate,
    world,
)

COMMANDS = {
    "train": train,
    "translate": translate,
    "info": info,
    "refine": refine,
    "prepare": prepare,
    "export": export,
    "convert": convert,
    "world": world,
    "segmenter": segmenter,
    "evaluate": evaluate,
    "study": study,
    "demo": demo,
}


class _TqdmHandler(logging.Handler):
    """Writes log records with ``tqdm.write`` so they appear above progress bars instead of breaking them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def configure_logging(verbose: bool = False) -> None:
    root = logging.getLogger("semst")
    if any(isinstance(h, _TqdmHandler) for h in root.handlers):
        return
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semst",
        description="SemST: semantically consistent unpaired image-to-image translation "
        "(hDCE + structure-texture rSMI alignment on CUT's networks).",
    )
    parser.add_argument("--version", action="version", version=f"semst {semst.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(getattr(args, "verbose", False))
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError, ImportError) as exc:
        # Configuration, data and checkpoint problems and missing optional packages: one clear line.
        print(f"semst {args.command}: error: {exc}", file=sys.stderr)
        return 1
