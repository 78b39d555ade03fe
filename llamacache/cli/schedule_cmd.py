"""`llamacache schedule cron|systemd`: print or (un)install scheduled ``clean`` runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, _duration
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import schedule as schedule_ops
else:
    schedule_ops = lazy("llamacache.ops.schedule")

DEFAULT_EVERY = 3600.0  # = schedule_ops.DEFAULT_EVERY (a test keeps them equal), not read from
# it here: that would import the op (subprocess, shutil) for every command's start-up


schedule_app = typer.Typer(
    help="Run `llamacache clean` on a schedule: a crontab line or systemd user units.",
    no_args_is_help=True,
)

EveryOpt = Annotated[
    float,
    typer.Option(
        "--every",
        parser=_duration,
        metavar="DURATION",
        help='How often to clean, e.g. "15m", "1h", "1d" (cron: intervals that divide evenly).',
    ),
]
LogOpt = Annotated[
    Path | None,
    typer.Option(
        "--log",
        metavar="PATH",
        help="Append output here (cron default: $XDG_STATE_HOME/llamacache/clean.log).",
    ),
]
InstallOpt = Annotated[bool, typer.Option("--install", help="Add it (idempotent).")]
UninstallOpt = Annotated[
    bool, typer.Option("--uninstall", help="Remove exactly what --install added.")
]


def _action(install: bool, uninstall: bool) -> str:
    if install and uninstall:
        raise UsageError("--install and --uninstall exclude each other")
    return "install" if install else "uninstall" if uninstall else "print"


def _schedule(
    ctx: typer.Context,
    kind: str,
    *,
    every: float,
    cache: str | None,
    log: Path | None,
    install: bool,
    uninstall: bool,
    target: Path | None,
) -> Report:
    """What ``schedule cron`` and ``schedule systemd`` share: one op call, one rendering."""
    state = state_of(ctx)
    action = _action(install, uninstall)
    if cache is not None:
        state.manager().settings.cache(cache)  # unknown name: exit 2 before any change
    report = schedule_ops.schedule(
        kind,
        every=every,
        cache=cache,
        config_file=state.manager().settings.config_file,
        cache_dir=state.cache_dir,
        log=log,
        action=action,
        target=target,
        env=os.environ,
    )
    state.renderer().emit(report, render.schedule_view)
    return report


@schedule_app.command("cron")
def cron(
    ctx: typer.Context,
    every: EveryOpt = DEFAULT_EVERY,
    cache: CacheOpt = None,
    log: LogOpt = None,
    install: InstallOpt = False,
    uninstall: UninstallOpt = False,
    crontab_file: Annotated[
        Path | None,
        typer.Option(
            "--crontab-file",
            metavar="PATH",
            help="Edit this file instead of the user's crontab (crontab -l / crontab -).",
        ),
    ] = None,
) -> Report:
    """Print the crontab line that runs `llamacache clean --quiet`; --install adds it.

    The line carries the configuration in force: the config file by absolute path and every
    LLAMACACHE_* / CACHE_* variable set now. A secret among them is refused (exit 2): put it
    in the config file instead.
    """
    return _schedule(
        ctx, "cron", every=every, cache=cache, log=log, install=install, uninstall=uninstall,
        target=crontab_file,
    )  # fmt: skip


@schedule_app.command("systemd")
def systemd(
    ctx: typer.Context,
    every: EveryOpt = DEFAULT_EVERY,
    cache: CacheOpt = None,
    log: LogOpt = None,
    install: InstallOpt = False,
    uninstall: UninstallOpt = False,
    units_dir: Annotated[
        Path | None,
        typer.Option(
            "--units-dir",
            metavar="PATH",
            help="Where unit files go (default: $XDG_CONFIG_HOME/systemd/user).",
        ),
    ] = None,
) -> Report:
    """Print a systemd user .service + .timer running `llamacache clean`; --install writes them.

    The service carries the config file and every LLAMACACHE_* / CACHE_* variable set now
    (Environment= lines); a secret among them is refused (exit 2).
    """
    return _schedule(
        ctx, "systemd", every=every, cache=cache, log=log, install=install, uninstall=uninstall,
        target=units_dir,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
