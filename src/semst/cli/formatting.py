"""Help formatting shared by the subcommands."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to options that have a meaningful default; options whose default comes from
    the config (``None`` here) say their default in their own help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default:" in text or not action.option_strings:
            return text
        if action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
            return text  # flags (store_true/false/const) say what they do, not a default
        return f"{text} (default: %(default)s)"
