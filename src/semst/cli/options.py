"""Options that many subcommands share, each added by one function so that its flag and help are the same
everywhere: ``-v/--verbose`` (:func:`add_verbosity`), ``--no-progress`` (:func:`add_progress`) and
``--device`` (:func:`add_device`).

A subcommand calls them in ``add_parser`` where it wants the options to appear in its ``--help``::

    add_device(p)
    add_progress(p)
    add_verbosity(p)

and reads ``args.verbose`` (``semst.cli.main`` does, to configure logging), ``args.no_progress`` and
``args.device``.
"""

from __future__ import annotations

import argparse

__all__ = ["DEVICE_HELP", "add_device", "add_progress", "add_verbosity"]

DEVICE_HELP = "auto, cpu, cuda or cuda:N"
"""What ``--device`` accepts (``auto``: CUDA if available, else the CPU; ``semst.runtime.resolve_device``)."""


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """Adds ``-v/--verbose`` (``args.verbose``): debug logging."""
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_progress(parser: argparse.ArgumentParser, *, help: str = "no progress bar") -> None:
    """Adds ``--no-progress`` (``args.no_progress``).

    Args:
        parser: The subcommand's parser.
        help: The help text, for commands with several bars or extra output ("no progress bars").
    """
    parser.add_argument("--no-progress", action="store_true", help=help)


def add_device(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = "auto",
    help: str = DEVICE_HELP,
    metavar: str | None = None,
) -> None:
    """Adds ``--device`` (``args.device``).

    Args:
        parser: The subcommand's parser.
        default: The device when the option is not given; ``None`` where a config supplies it (then say so in
            ``help``, e.g. ``f"{DEVICE_HELP} (default: train.device)"``).
        help: The help text.
        metavar: The placeholder in the usage line (argparse's default: ``DEVICE``).
    """
    parser.add_argument("--device", default=default, metavar=metavar, help=help)
