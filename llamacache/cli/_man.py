"""roff man pages (section 1) from a walked command plus its hand-written text in ``_manual``.

No date in ``.TH``: the pages must be byte-identical on every regeneration so the
staleness test compares content, not the day it ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llamacache import __version__
from llamacache.cli._manual import EXIT_STATUS, MANUAL, Manual

if TYPE_CHECKING:
    from llamacache.cli._generate import Cmd, Opt


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (so they stay ASCII), leading dots/quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in text.strip().split("\n\n"):
        block = " ".join(block.split())
        if block:
            out += [".PP", esc(block)]
    return out


def _option(opt: Opt) -> list[str]:
    names = ", ".join(f"\\fB{esc(n)}\\fR" for n in opt.names)
    if opt.metavar:
        names += f" \\fI{esc(opt.metavar)}\\fR"
    return [".TP", names, esc(opt.help or "-")]


def _examples(manual: Manual) -> list[str]:
    out = [".SH EXAMPLES"]
    for text, command in manual.examples:
        out += [".PP", esc(text), ".PP", ".RS 4", ".nf"]
        out += [esc(line) for line in command.strip("\n").split("\n")]
        out += [".fi", ".RE"]
    return out


def page(cmd: Cmd, cmds: list[Cmd]) -> str:
    manual = MANUAL.get(" ".join(cmd.path), Manual())
    title = cmd.page.upper()
    out = [
        f'.TH "{esc(title)}" "1" "" "llamacache {__version__}" "llamacache manual"',
        ".SH NAME",
        f"{esc(cmd.page)} \\- {esc(cmd.short.rstrip('.') or cmd.name)}",
        ".SH SYNOPSIS",
        f"\\fB{esc(cmd.name)}\\fR {esc(cmd.usage)}",
        ".SH DESCRIPTION",
    ]
    out += _paragraphs(cmd.help or cmd.short)
    out += _paragraphs(manual.description)
    if cmd.arguments:
        out.append(".SH ARGUMENTS")
        for metavar, help_text in cmd.arguments:
            out += [".TP", f"\\fI{esc(metavar)}\\fR", esc(help_text or "-")]
    out.append(".SH OPTIONS")
    for opt in cmd.options:
        out += _option(opt)
    if cmd.subcommands:
        out.append(".SH COMMANDS")
        for child in (c for c in cmds if c.path[:-1] == cmd.path and c.path):
            out += [".TP", f"\\fB{esc(child.path[-1])}\\fR", esc(child.short or "-")]
            out.append(f"See \\fB{esc(child.page)}\\fR(1).")
    if manual.examples:
        out += _examples(manual)
    out += [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS:
        out += [".TP", f"\\fB{code}\\fR", esc(meaning)]
    see = [c.page for c in cmds if c.path and c.path[:-1] == cmd.path]
    if cmd.path:
        see.insert(0, "-".join(("llamacache", *cmd.path[:-1])))
    see += [page for page in manual.see_also if page not in see]
    if see:
        out += [".SH SEE ALSO", ",\n".join(f"\\fB{esc(page)}\\fR(1)" for page in see)]
    return "\n".join(out) + "\n"
