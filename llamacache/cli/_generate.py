"""Generate ``completions/``, ``man/`` and the reference docs from the app:
``python -m llamacache.cli._generate``.

One spec feeds help, completions and man pages (httpie's habit): the click command tree
that Typer builds is walked into plain records, and each output is rendered from those
records plus the hand-written text in ``_manual.py``. Commands added later appear on the
next run; ``--check`` exits 1 when the committed files are stale (CI and a test use it).
"""

from __future__ import annotations

import argparse
import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

# Options whose value is a cache name: completed from the configuration.
CACHE_OPTIONS = frozenset({"cache", "into"})
ROOT = Path(__file__).resolve().parents[2]
CONFIG_DOC = "docs/configuration.md"  # holds the generated settings table between markers


@dataclass(frozen=True)
class Opt:
    """One option as completion and man pages need it."""

    names: tuple[str, ...]  # long first: ("--cache", "-c")
    help: str
    metavar: str | None  # None for a flag
    value: str  # "flag" | "cache" | "key" | "path" | "choice" | "value"
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cmd:
    """One command or group: its path under ``llamacache``, help, options and children."""

    path: tuple[str, ...]  # () for the root
    help: str
    short: str
    usage: str
    options: tuple[Opt, ...]
    arguments: tuple[tuple[str, str], ...]  # (metavar, help)
    subcommands: tuple[str, ...]
    argument_kind: str = "path"  # what the shells complete for arguments: "path" | "key"

    @property
    def name(self) -> str:
        return " ".join(("llamacache", *self.path))

    @property
    def page(self) -> str:
        return "-".join(("llamacache", *self.path))


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    return getattr(descriptor, "annotation", None)


def _option(param: Any, path: tuple[str, ...] = ()) -> Opt:
    from llamacache.cli.options import KEY_COMPLETED, static_choices

    names = tuple(sorted([*param.opts, *param.secondary_opts], key=lambda n: (len(n) < 3, n)))
    annotation = _annotation(param)
    command = " ".join(path)
    table = static_choices()
    fixed = table.get((command, names[0])) or table.get(("*", names[0]))
    choices: tuple[str, ...] = ()
    if param.is_flag:
        value = "flag"
    elif param.name in CACHE_OPTIONS:
        value = "cache"
    elif (command, names[0]) in KEY_COMPLETED:
        value = "key"
    elif fixed:
        value, choices = "choice", tuple(fixed)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        value, choices = "choice", tuple(str(m.value) for m in annotation)
    elif "Path" in str(annotation):
        value = "path"
    else:
        value = "value"
    default_metavar = "NAME" if value == "cache" else param.name.upper()
    metavar = None if param.is_flag else (param.metavar or default_metavar)
    return Opt(names, " ".join((param.help or "").split()), metavar, value, choices)


_HELP = Opt(("--help", "-h"), "Show the help and exit.", None, "flag")


def walk(
    command: Any, ctx: Any = None, path: tuple[str, ...] = (), anywhere: tuple[Opt, ...] = ()
) -> list[Cmd]:
    """Every visible command under ``command``, parents before children, sorted by name.

    ``anywhere``: the root's options that are also accepted after a command word
    (``_boundary.ANYWHERE_FLAGS``), listed with every command that runs something."""
    from llamacache.cli._boundary import ANYWHERE_FLAGS

    ctx = ctx or command.make_context("llamacache", [], resilient_parsing=True)
    options: list[Opt] = []
    arguments: list[tuple[str, str]] = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "option":
            options.append(_option(param, path))
        else:
            metavar = param.metavar or param.name.upper()
            arguments.append((metavar, " ".join((getattr(param, "help", "") or "").split())))
    subs = getattr(command, "commands", {})
    visible = sorted(n for n, c in subs.items() if not c.hidden)
    if not path:
        anywhere = tuple(o for o in options if o.names[0] in ANYWHERE_FLAGS)
    elif not visible:
        options += anywhere
    options.append(_HELP)
    help_text = (command.help or "").strip()
    usage = " ".join(command.collect_usage_pieces(ctx))
    if visible:
        usage = "[OPTIONS] COMMAND [ARGS]..."
    from llamacache.cli.options import KEY_COMPLETED

    me = Cmd(
        path,
        help_text,
        help_text.split("\n")[0].strip(),
        usage,
        tuple(options),
        tuple(arguments),
        tuple(visible),
        "key" if (" ".join(path), "") in KEY_COMPLETED else "path",
    )
    out = [me]
    for name in visible:
        sub = subs[name]
        sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
        out += walk(sub, sub_ctx, (*path, name), anywhere)
    return out


def commands() -> list[Cmd]:
    """The app's command tree as it is registered right now."""
    from llamacache.cli.app import app

    return walk(typer.main.get_command(app))


def render_all() -> dict[str, str]:
    """Relative path (under the repository) -> file text, for every generated file."""
    from llamacache.cli import _completion_scripts, _man, _reference

    cmds = commands()
    files = {
        "completions/llamacache.bash": _completion_scripts.bash(cmds),
        "completions/_llamacache": _completion_scripts.zsh(cmds),
        "completions/llamacache.fish": _completion_scripts.fish(cmds),
    }
    for cmd in cmds:
        files[f"man/{cmd.page}.1"] = _man.page(cmd, cmds)
    files[_reference.PATH] = _reference.markdown(cmds)
    configuration = _read(ROOT / CONFIG_DOC)
    if configuration is not None:
        from llamacache.config.docs import with_table

        files[CONFIG_DOC] = with_table(configuration)
    return files


def stale(root: Path) -> list[str]:
    """Generated files under ``root`` that differ from what the app produces now (or are extra)."""
    files = render_all()
    out = [rel for rel, text in files.items() if _read(root / rel) != text]
    for folder, pattern in (("man", "*.1"), ("completions", "*")):
        out += [
            f"{folder}/{p.name}"
            for p in sorted((root / folder).glob(pattern))
            if f"{folder}/{p.name}" not in files
        ]
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write(root: Path) -> list[str]:
    """(Re)write every generated file under ``root`` and drop pages of removed commands."""
    files = render_all()
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if _read(target) != text:
            target.write_text(text)
    for page in (root / "man").glob("llamacache*.1"):
        if f"man/{page.name}" not in files:
            page.unlink()
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llamacache.cli._generate", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 if files are stale")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.root)
        for rel in bad:
            sys.stderr.write(f"stale: {rel} (run: python -m llamacache.cli._generate)\n")
        return 1 if bad else 0
    written = write(args.root)
    sys.stderr.write(f"generated {len(written)} files under {args.root}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
