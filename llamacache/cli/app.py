"""The root Typer app: global options, and the table of subcommands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from llamacache.cli.main import ErrorBoundaryGroup
from llamacache.cli.render import Renderer
from llamacache.manager import CacheManager

app = typer.Typer(
    name="llamacache",
    cls=ErrorBoundaryGroup,
    help="Tiered caches for ML work: inspect, warm, verify, evict and clean them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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

    def renderer(self, *, json_out: bool = False, quiet: bool = False) -> Renderer:
        """A renderer honouring the global flags and the command's own --json/--quiet."""
        return Renderer(json_mode=self.json or json_out, quiet=self.quiet or quiet)

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

        typer.echo(f"llamacache {__version__}")
        raise typer.Exit(0)


@app.callback()
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


# The table of subcommand modules, in help order; each exposes ``register(app)``.
COMMAND_MODULES = (
    "inspect_cmd",
    "ls_cmd",
    "warm_cmd",
    "verify_cmd",
    "repair_cmd",
    "evict_cmd",
    "clean_cmd",
    "stats_cmd",
    "bench_cmd",
    "schedule_cmd",
    "daemon_cmd",
    "backup_cmd",
    "push_cmd",
    "entries_cmd",
    "config_cmd",
)


def _register() -> None:
    """Attach every command module listed in COMMAND_MODULES."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"llamacache.cli.{name}").register(app)


_register()
