"""The ``semst`` command line: ``semst train``, ``translate``, ``info``, ``refine``, ``prepare``, ``export``,
``convert``, ``world``, ``segmenter``, ``evaluate``, ``study``, ``demo``.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``; to add
one, write the module and list it in ``COMMANDS``. Library code logs through ``logging``; only this
package configures handlers (messages go to stderr, above any progress bar).

Errors (docs/design.md, "What every command checks before it starts"): whatever a command raises is printed
by :func:`main` as one line, ``semst COMMAND: error: MESSAGE``, and the exit status is 1; the traceback is
printed only with ``-v``. Library code raises errors whose message names the file and the problem (a
``ValueError`` for bad data and settings, an ``OSError`` naming the path for the file system); anything else
is a bug in semst, reported as such.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
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
    verbose = getattr(args, "verbose", False)
    configure_logging(verbose)
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line's rule: one line, the traceback only with -v
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"semst {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 1


# Errors that describe the user's files, settings or machine (with semst.data.images.ImageLoadError); anything
# else is a bug in semst.
USER_ERRORS = (ValueError, OSError, ImportError, MemoryError, ArithmeticError)


def error_message(exc: BaseException) -> str:
    """What `main` prints for an error: one line naming the file and the problem.

    An ``OSError`` with a file name reads ``PATH: PROBLEM`` (``out/a.png: No space left on device``); an
    unexpected kind of error (a bug) says so and points to ``-v``.
    """
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
        if exc.filename2 is not None:
            text += f" (and {exc.filename2})"
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    from semst.data.images import ImageLoadError  # here: importing it loads torch, which --help need not

    if isinstance(exc, (*USER_ERRORS, ImageLoadError)):
        return text
    if isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "can't allocate" in text):
        return f"out of memory: {text}"
    return (
        f"unexpected {type(exc).__name__}: {text} (a bug in semst: run again with -v for the traceback, and "
        "please report it)"
    )
