"""Reference docs generated from the code: ``make help-docs`` writes docs/cli.md (every command's
``--help``) and docs/configuration.md (every config key with its default and comment); tests keep both
current.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
from pathlib import Path


def render_cli() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal width
    from semst.cli import COMMANDS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    parts = [
        "# Command-line reference",
        "",
        "Generated from the commands' `--help` by `make help-docs`; tests/cli/test_helpdoc.py checks it is current.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name in COMMANDS:
        command = subparsers[name]
        parts += ["", f"## semst {name}", "", "```text", command.format_help().rstrip(), "```"]
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            for sub, subparser in action.choices.items():
                parts += [
                    "",
                    f"### semst {name} {sub}",
                    "",
                    "```text",
                    subparser.format_help().rstrip(),
                    "```",
                ]
    return "\n".join(parts) + "\n"


def _field_comments(cls) -> dict[str, str]:
    """Each field's trailing comment; for a field whose definition spans lines, the comment of its last line."""
    comments, current = {}, None
    for line in inspect.getsource(cls).splitlines():
        start = re.match(r"    (\w+): ", line)
        if start:
            current = start.group(1)
        comment = re.search(r"[^#]#\s*(.+)$", line)
        if current and comment and not line.lstrip().startswith("#"):
            comments[current] = comment.group(1).strip()
    return comments


def render_config() -> str:
    from semst.config import PRESETS, ExperimentConfig, load_preset

    config = ExperimentConfig()
    parts = [
        "# Configuration reference",
        "",
        "Generated from `src/semst/config.py` by `make help-docs`; tests/cli/test_helpdoc.py checks it is current.",
        "",
        "Set values with a preset (`--preset`), a YAML file (`--config FILE`, any subset of the sections below)",
        "and dotted overrides (`--set loss.ts_weight=1 train.batch_size=4`), in that order of precedence.",
        "Defaults shown are the dataclass defaults, which equal the `semst` preset.",
        "",
        "Network sizes are bounded, so that a typo or a crafted checkpoint cannot ask for gigabytes: "
        + ", ".join(f"`{key}` <= {limit}" for key, (_, limit) in config.architecture_limits().items())
        + ".",
    ]
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        comments = _field_comments(type(value))
        parts += ["", f"## {section.name}", "", "| key | default | meaning |", "|---|---|---|"]
        for field in dataclasses.fields(value):
            default = getattr(value, field.name)
            shown = ",".join(default) if isinstance(default, tuple) else default
            meaning = comments.get(field.name, "").replace("|", "\\|")
            parts.append(f"| `{section.name}.{field.name}` | `{shown}` | {meaning} |")
    parts += ["", "## Presets", "", "What each preset sets (everything else keeps the defaults above):", ""]
    for name in PRESETS:
        source = Path(inspect.getfile(ExperimentConfig)).parent / "presets" / f"{name}.yaml"
        parts += [f"### {name}", "", "```yaml", source.read_text(encoding="utf-8").rstrip(), "```", ""]
        load_preset(name)  # the file parses
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "cli"
    sys.stdout.write(render_cli() if target == "cli" else render_config())
