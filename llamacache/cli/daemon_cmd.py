"""`llamacache daemon`: clean every cache at its cleanup_interval until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.app import state
from llamacache.cli.options import CacheOpt, JsonOpt, QuietOpt
from llamacache.errors import ExitCode
from llamacache.units import format_size

if TYPE_CHECKING:
    from llamacache.ops import daemon as ops
else:
    ops = lazy("llamacache.ops.daemon")


def _line(run: ops.DaemonRun, as_json: bool) -> str:
    if as_json:
        return json.dumps({"schema": "llamacache.daemon.run", "schema_version": 1, **run.__dict__})
    stamp = datetime.fromtimestamp(run.started, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{stamp} llamacache daemon: cache {run.cache!r}: {run.status}"
    if run.status != "ok":
        return f"{head} ({run.message})"
    return (
        f"{head}: expired {run.expired}, evicted {run.evicted},"
        f" freed {format_size(run.freed_bytes)},"
        f" {format_size(run.used_bytes)} used of {format_size(run.limit_bytes)}"
        f" ({run.seconds:.2f}s)"
    )


def daemon(
    ctx: typer.Context,
    cache: CacheOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run scheduled cleanup in the foreground (for containers) until SIGTERM or Ctrl-C.

    Each cache is cleaned at start, then at its own cleanup_interval; one line per run on stderr
    (--json: one JSON object per line).
    """
    s = state(ctx)
    manager = s.manager()
    caches = [manager.settings.cache(cache).name] if cache else None
    as_json = s.json or json_out
    silent = s.quiet or quiet
    got: list[int] = []

    def on_run(run: ops.DaemonRun) -> None:
        if run.message == ops.NO_DIRECTORY:
            return  # a configured cache nobody has used yet: nothing to say every interval
        if not silent or run.status == "failed":
            sys.stderr.write(_line(run, as_json) + "\n")
            sys.stderr.flush()

    async def main() -> int:
        import asyncio

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            got.append(sig)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        if not silent:
            names = caches or manager.names()
            plan = ", ".join(
                f"{n} every {manager.settings.caches[n].cleanup_interval:g}s" for n in names
            )
            sys.stderr.write(f"llamacache daemon: started (pid {_pid()}): {plan}\n")
            sys.stderr.flush()
        return await ops.serve(manager, stop, on_run, caches)

    import asyncio

    runs = asyncio.run(main())
    if not silent:
        name = signal.Signals(got[0]).name if got else "stop"
        sys.stderr.write(f"llamacache daemon: {name}: stopped after {runs} runs\n")
    raise typer.Exit(int(ExitCode.OK))


def _pid() -> int:
    import os

    return os.getpid()


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon)
