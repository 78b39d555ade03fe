"""The README's set-up commands are the ones CI runs, and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command:.*?-->\s*```bash\n(.+?)\n```", text, re.S)
    assert match, "README.md lost its marked test command"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_test_command() in [line.strip() for line in ci]


def test_every_command_has_a_readme_section() -> None:
    from typer.main import get_command

    from llamacache.cli.app import app

    readme = (ROOT / "README.md").read_text()
    group = get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert names, "no commands registered"
    for name in names:
        assert f"llamacache {name}" in readme, f"README has no example of `llamacache {name}`"


def test_readme_code_blocks_are_closed() -> None:
    """An unclosed fence swallows the sections after it when the README is rendered."""
    inside = False
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif inside and re.match(r"#{2,} \S", line):
            raise AssertionError(f"README.md:{number}: heading inside a code block: {line}")
    assert not inside, "README.md ends inside a code block"
