"""The root Typer app: global options, and the table of subcommands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from llamacache.cli import (
    backup_cmd,
    bench_cmd,
    clean_cmd,
    config_cmd,
    daemon_cmd,
    entries_cmd,
    evict_cmd,
    inspect_cmd,
    ls_cmd,
    push_cmd,
    render,
    repair_cmd,
    schedule_cmd,
    stats_cmd,
    verify_cmd,
    warm_cmd,
)
from llamacache.cli._boundary import ErrorBoundaryGroup
from llamacache.cli._manual import exit_epilog
from llamacache.cli.state import State, state_of

__all__ = ["COMMANDS", "State", "new_app", "state_of"]  # and `app`, built on first use


def _cache_dir(value: str) -> Path:
    """``--cache-dir ""`` would silently mean the current folder: a usage error instead."""
    if not value.strip():
        raise typer.BadParameter("is empty; expected a folder", param_hint="--cache-dir")
    return Path(value)


def _show_version(value: bool) -> None:
    """``llamacache --version``: print and exit before any config is read."""
    if value:
        from llamacache import __version__

        render.version(f"llamacache {__version__}")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help="Config file (default: $LLAMACACHE_CONFIG, ./llamacache.toml, "
            "then ~/.config/llamacache/config.toml).",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            metavar="PATH",
            parser=_cache_dir,
            help="Cache root directory (overrides the config's cache.disk.path).",
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document on stdout instead of tables (also after the command).",
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", help="Print nothing but errors (also after the command)."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tiered caches for ML work: inspect, warm, verify, evict and clean them."""
    state = State(config_file=config, cache_dir=cache_dir, json=json_out, quiet=quiet, debug=debug)
    ctx.obj = state
    ctx.call_on_close(state.close)


# Every command word -> the function that registers it (with its siblings); help order.
COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "inspect": inspect_cmd.register,
    "ls": ls_cmd.register,
    "warm": warm_cmd.register,
    "verify": verify_cmd.register,
    "repair": repair_cmd.register,
    "evict": evict_cmd.register,
    "clean": clean_cmd.register,
    "stats": stats_cmd.register,
    "bench": bench_cmd.register,
    "schedule": schedule_cmd.register,
    "daemon": daemon_cmd.register,
    "backup": backup_cmd.register,
    "restore": backup_cmd.register,
    "push": push_cmd.register,
    "put": entries_cmd.register,
    "get": entries_cmd.register,
    "rm": entries_cmd.register,
    "config": config_cmd.register,
}


def new_app(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with only command ``only`` (and its siblings).

    Typer builds the parameters of every registered command before it parses a line
    (~3 ms each), so the entry point registers just the command being run; help, an
    unknown word or shell completion get the whole table. Importing the command modules
    is cheap: each names its op lazily (cli/_lazy.py).
    """
    app = typer.Typer(
        name="llamacache",
        cls=ErrorBoundaryGroup,
        help="Tiered caches for ML work: inspect, warm, verify, evict and clean them.",
        epilog=exit_epilog(),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    registers = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for register in registers:
        register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole command table, built on first use (tests, docs, generators)."""
    if name != "app":
        raise AttributeError(name)
    app = new_app()
    globals()["app"] = app
    return app
