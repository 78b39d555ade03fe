"""The root Typer app: global options, and the table of subcommands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._boundary import ErrorBoundaryGroup
from llamacache.cli.render import Renderer

if TYPE_CHECKING:
    from llamacache.manager import CacheManager


@dataclass
class State:
    """What the global options decided; commands read it from ``ctx.obj``."""

    config_file: Path | None = None
    cache_dir: Path | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    _manager: CacheManager | None = field(default=None, repr=False)

    def manager(self) -> CacheManager:
        """The manager for this invocation, resolved once (config errors exit 2)."""
        if self._manager is None:
            from llamacache.config import resolve
            from llamacache.manager import CacheManager

            overrides: dict[str, object] = {}
            if self.cache_dir is not None:
                overrides["cache.disk.path"] = str(self.cache_dir)
            settings = resolve(
                config_file=self.config_file,
                overrides=overrides,
                override_source="flag:--cache-dir",
            )
            self._manager = CacheManager(settings)
        return self._manager

    def renderer(
        self, *, json_out: bool = False, quiet: bool = False, wide: bool = False
    ) -> Renderer:
        """A renderer honouring the global flags and the command's own --json/--quiet/--wide."""
        return Renderer(json_mode=self.json or json_out, quiet=self.quiet or quiet, wide=wide)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


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
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tiered caches for ML work: inspect, warm, verify, evict and clean them."""
    s = State(config_file=config, cache_dir=cache_dir, json=json_out, quiet=quiet, debug=debug)
    ctx.obj = s
    ctx.call_on_close(s.close)


# Every command word -> the module that registers it; module order is help order.
COMMANDS = {
    "inspect": "inspect_cmd",
    "ls": "ls_cmd",
    "warm": "warm_cmd",
    "verify": "verify_cmd",
    "repair": "repair_cmd",
    "evict": "evict_cmd",
    "clean": "clean_cmd",
    "stats": "stats_cmd",
    "bench": "bench_cmd",
    "schedule": "schedule_cmd",
    "daemon": "daemon_cmd",
    "backup": "backup_cmd",
    "restore": "backup_cmd",
    "put": "entries_cmd",
    "get": "entries_cmd",
    "rm": "entries_cmd",
    "config": "config_cmd",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def new_app(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with only the module of command ``only``.

    Typer builds the parameters of every registered command before it parses a line
    (~3 ms each), so the entry point registers just the command being run; help, an
    unknown word or shell completion get the whole table.
    """
    app = typer.Typer(
        name="llamacache",
        cls=ErrorBoundaryGroup,
        help="Tiered caches for ML work: inspect, warm, verify, evict and clean them.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    import importlib

    modules = (COMMANDS[only],) if only in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(f"llamacache.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole command table, built on first use (tests, docs, generators)."""
    if name != "app":
        raise AttributeError(name)
    app = new_app()
    globals()["app"] = app
    return app
