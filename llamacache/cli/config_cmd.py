"""`llamacache config show|validate|init|path`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import WideOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import config_ops
else:
    config_ops = lazy("llamacache.ops.config_ops")


config_app = typer.Typer(help="Show, check and create the configuration.", no_args_is_help=True)


@config_app.command("show")
def show(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Argument(help="Only settings starting with this.")] = None,
    wide: WideOpt = False,
) -> Report:
    """Every resolved setting, its value, where it came from and its environment variable."""
    state = state_of(ctx)
    report = config_ops.show(state.manager().settings, prefix)
    state.renderer(wide=wide).emit(report, render.config_show_view)
    return report


@config_app.command("validate")
def validate(ctx: typer.Context) -> Report:
    """Load the configuration and report errors (exit 2) or what is ignored."""
    state = state_of(ctx)
    state.warn_env = False  # the report names every unknown variable (with a hint) itself
    report = config_ops.validate(state.manager().settings)
    r = state.renderer()
    for warning in report.warnings:
        r.warn(warning)
    r.emit(
        report,
        lambda r, rep: r.line(
            f"config OK: {rep.config_file or 'built-in defaults'}; caches: {', '.join(rep.caches)}"
        ),
    )
    return report


@config_app.command("path")
def path(ctx: typer.Context) -> Report:
    """Which config file is used, and where llamacache looks for one."""
    state = state_of(ctx)
    report = config_ops.search_path(state.config_file)
    state.renderer().emit(report, render.config_path_view)
    return report


@config_app.command("init")
def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write: *.toml or *.yaml/*.yml, in that format "
            "(default: ~/.config/llamacache/config.toml)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> Report:
    """Write a commented starter config file with every setting at its default."""
    state = state_of(ctx)
    report = config_ops.init(path or config_ops.default_init_path(), force)
    state.renderer().emit(report, lambda r, rep: r.line(f"wrote {rep.path}"))
    return report


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
