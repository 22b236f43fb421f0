"""The shared CLI options: one flag, one help text and one default wherever they appear."""

from __future__ import annotations

import argparse

from semst.cli import COMMANDS, build_parser
from semst.cli.options import DEVICE_HELP, VERBOSE_HELP, add_device, add_progress, add_verbosity


def _leaf_parsers(parser: argparse.ArgumentParser, name: str = "semst"):
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield name, parser
    for action in nested:
        for sub, subparser in action.choices.items():
            yield from _leaf_parsers(subparser, f"{name} {sub}")


def test_options_parse():
    parser = argparse.ArgumentParser()
    add_device(parser)
    add_progress(parser)
    add_verbosity(parser)
    args = parser.parse_args([])
    assert (args.device, args.no_progress, args.verbose) == ("auto", False, False)
    args = parser.parse_args(["--device", "cpu", "--no-progress", "-v"])
    assert (args.device, args.no_progress, args.verbose) == ("cpu", True, True)


def test_every_command_takes_verbose_and_the_shared_options_agree():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in COMMANDS:
        for name, parser in _leaf_parsers(subparsers[command], f"semst {command}"):
            options = {o: a for a in parser._actions for o in a.option_strings}
            assert "--verbose" in options and options["-v"].help == VERBOSE_HELP, name
            if "--device" in options and options["--device"].default == "auto":
                assert options["--device"].help == DEVICE_HELP, name
            if "--no-progress" in options:
                assert options["--no-progress"].help.startswith("no progress bar"), name
