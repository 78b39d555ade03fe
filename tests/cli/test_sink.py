"""One output sink: only ``cli/render.py`` writes to stdout or stderr.

A command returns its report and hands it to the renderer; the error boundary prints
through the renderer too. These tests read the source (AST), so a new ``print`` or
``typer.echo`` in a command module fails here before it can drift from ``--quiet``
or ``--json``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llamacache

PACKAGE = Path(llamacache.__file__).parent
CLI = PACKAGE / "cli"

# The only writers besides the renderer, each for a reason:
ALLOWED = {
    # ``llamacache --version`` answers before typer (and the renderer) is imported: start-up.
    ("main.py", "sys.stdout"),
    # A developer tool (``python -m llamacache.cli._generate``), not a llamacache command.
    ("_generate.py", "sys.stderr"),
}


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every print/echo call and every use of sys.stdout/sys.stderr."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                found.append((node.lineno, "print"))
            if isinstance(f, ast.Attribute) and f.attr in ("echo", "secho", "write_stdout"):
                found.append((node.lineno, f"{ast.unparse(f)}"))
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append((node.lineno, f"sys.{node.attr}"))
    return found


def test_only_the_renderer_writes_to_stdout_or_stderr() -> None:
    offenders = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "render.py":
            continue
        for line, what in _writes(ast.parse(path.read_text())):
            if (path.name, what) not in ALLOWED:
                offenders.append(f"cli/{path.name}:{line}: {what}")
    assert offenders == [], "write through cli/render.py instead:\n" + "\n".join(offenders)


def test_the_scan_sees_each_kind_of_write() -> None:
    """The checker itself: each way of writing is caught (else the test above proves nothing)."""
    source = (
        "import sys, typer\n"
        "print('x')\n"
        "typer.echo('x', err=True)\n"
        "sys.stdout.write('x')\n"
        "out = sys.stderr\n"
    )
    found = sorted(what for _, what in _writes(ast.parse(source)))
    assert found == ["print", "sys.stderr", "sys.stdout", "typer.echo"]


def test_version_fast_path_is_the_one_write_in_main() -> None:
    """main.py's one write is the --version answer, nothing else."""
    writes = _writes(ast.parse((CLI / "main.py").read_text()))
    assert [what for _, what in writes] == ["sys.stdout"]


# -- each option declared once -----------------------------------------------------------------


def test_json_and_quiet_are_declared_once_on_the_root() -> None:
    from typer.main import get_command

    from llamacache.cli.app import app

    group = get_command(app)
    assert {"--json", "--quiet"} <= {o for p in group.params for o in getattr(p, "opts", ())}
    declared = [
        (name, sub.name)
        for name, cmd in group.commands.items()  # type: ignore[attr-defined]
        for sub in [cmd, *getattr(cmd, "commands", {}).values()]
        for p in sub.params
        if {"--json", "--quiet"} & set(getattr(p, "opts", ()))
    ]
    assert declared == []


def test_root_flags_work_after_the_command_but_not_after_double_dash(tmp_path: Path) -> None:
    import json

    from tests.cli.helpers import cli

    root = str(tmp_path / "root")
    assert cli("--cache-dir", root, "put", "--json", "k", "v").exit_code == 0
    after = cli("--cache-dir", root, "get", "k", "--json")
    before = cli("--cache-dir", root, "--json", "get", "k")
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["value"] == "v"
    assert cli("--cache-dir", root, "put", "--", "--json", "x").exit_code == 0
    quiet = cli("--cache-dir", root, "rm", "--quiet", "--", "--json")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert cli("--cache-dir", root, "get", "--", "--json").exit_code == 1  # removed


def _views(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every function, nested ones included, that draws a report for people:
    one that takes the Renderer as a parameter."""
    return [
        (node.lineno, node.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(
            a.annotation is not None and ast.unparse(a.annotation).endswith("Renderer")
            for a in node.args.args
        )
    ]


def test_every_human_view_lives_in_the_renderer() -> None:
    """A command hands the renderer its report and the view's name; the view (the table
    and lines people read) is in ``render.py``, beside the JSON and --quiet decisions."""
    found = [
        f"cli/{path.name}:{line}: {name}"
        for path in sorted(CLI.glob("*.py"))
        if path.name != "render.py"
        for line, name in _views(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "move the view into cli/render.py:\n" + "\n".join(found)


def test_the_view_scan_finds_a_nested_view() -> None:
    sample = "def cmd():\n    def human(r: Renderer, rep: X) -> None:\n        r.line('x')\n"
    assert _views(ast.parse(sample)) == [(2, "human")]
