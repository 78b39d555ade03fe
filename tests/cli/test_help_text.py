"""Help is for people: no type placeholders ("<str>", "<bool>", "{key}") in any command's help,
whatever typer renders them as; a typer that prints them fails here, not in a user's terminal."""

from __future__ import annotations

import re

from tests.cli.helpers import cli

PLACEHOLDER = re.compile(r"<(str|bool|int|float|path|list\[[a-z]+\])>|\{[a-z_]+\}")


def _commands() -> list[tuple[str, ...]]:
    from typer.main import get_command

    from llamacache.cli.app import app

    root = get_command(app)
    out: list[tuple[str, ...]] = [()]
    for name, cmd in getattr(root, "commands", {}).items():
        out.append((name,))
        for sub in getattr(cmd, "commands", {}):
            out.append((name, sub))
    return out


def test_no_command_help_shows_type_placeholders() -> None:
    commands = _commands()
    assert len(commands) > 20
    for path in commands:
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        found = PLACEHOLDER.findall(result.stdout)
        assert not found, (path, found, result.stdout)


def test_usage_lines_name_arguments_in_capitals() -> None:
    usage = cli("put", "--help").stdout
    assert "KEY" in usage and "{key}" not in usage
