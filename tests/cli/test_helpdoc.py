from pathlib import Path

from semst.cli.helpdoc import render_cli, render_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_cli_md_matches_the_help_texts():
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == render_cli(), (
        "docs/cli.md is stale: run make help-docs"
    )


def test_docs_configuration_md_matches_the_config():
    text = render_config()
    assert "| `loss.ts_weight` | `2.0` |" in text and "### fastcut" in text
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == text, (
        "docs/configuration.md is stale: run make help-docs"
    )
