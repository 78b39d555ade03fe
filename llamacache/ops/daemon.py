"""The foreground cleanup daemon (for containers, where there is no cron).

It is the seed's ``CacheManager.start()`` scheduler made visible: each configured cache
is cleaned at its own ``cleanup_interval`` on the manager's ``AsyncScheduler`` by the
``clean`` op (expire, age out, evict to threshold, sweep strays) under the cache's admin
lock (a run that finds the lock held by a cron ``clean`` skips rather than waits, and
says so), and each run reports one ``DaemonRunReport`` to a callback.
``serve`` returns when ``stop`` is set; a run in progress finishes first. ``run_until_signal``
is the whole foreground process: serve until SIGTERM or SIGINT, then a ``DaemonReport``.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from llamacache.errors import LlamacacheError, LockBusyError
from llamacache.manager import CacheManager
from llamacache.ops._report import Report
from llamacache.ops.clean import clean

NO_DIRECTORY = "no cache directory yet"


@dataclass(frozen=True)
class DaemonRunReport(Report):
    """One scheduled cleanup: what it removed, or why it did not run (one JSON line each)."""

    schema = "daemon.run"

    cache: str
    started: float  # epoch seconds
    seconds: float
    status: str  # "ok" | "skipped" (lock busy / no directory yet) | "failed"
    expired: int = 0
    evicted: int = 0
    freed_bytes: int = 0
    used_bytes: int = 0
    limit_bytes: int = 0
    message: str = ""


def clean_once(manager: CacheManager, name: str) -> DaemonRunReport:
    """``llamacache clean -c NAME`` now, under its admin lock (no wait); never raises our errors."""
    started = time.time()
    t0 = time.monotonic()
    path = manager.settings.caches[name].path
    if not path.is_dir():
        return DaemonRunReport(name, started, 0.0, "skipped", message=NO_DIRECTORY)
    try:
        report = clean(manager, name, wait=0)
    except LockBusyError:
        return DaemonRunReport(
            name, started, time.monotonic() - t0, "skipped", message="locked by another run"
        )
    except LlamacacheError as exc:
        return DaemonRunReport(name, started, time.monotonic() - t0, "failed", message=str(exc))
    if not report.caches:
        return DaemonRunReport(
            name, started, time.monotonic() - t0, "skipped", message=NO_DIRECTORY
        )
    result = report.caches[0]
    return DaemonRunReport(
        name,
        started,
        time.monotonic() - t0,
        "ok",
        expired=result.expired + result.aged_out,
        evicted=result.evicted,
        freed_bytes=report.freed_bytes,
        used_bytes=result.used_bytes,
        limit_bytes=result.limit_bytes,
    )


async def serve(
    manager: CacheManager,
    stop: asyncio.Event,
    on_run: Callable[[DaemonRunReport], None],
    caches: list[str] | None = None,
) -> int:
    """Clean ``caches`` (default: every configured one) at their intervals until ``stop``.

    Returns the number of runs (caches without a directory yet are not counted). Cleanups
    run in a worker thread, so the loop reacts to ``stop`` (a signal handler) while
    waiting; a cleanup in progress is allowed to finish.
    """
    runs = 0

    def job(name: str) -> None:
        nonlocal runs
        run = clean_once(manager, name)
        if run.message != NO_DIRECTORY:  # a cache nobody has used yet is not a run
            runs += 1
        on_run(run)

    scheduler = manager.cleanup_scheduler
    for name in caches or manager.names():
        interval = manager.settings.caches[name].cleanup_interval
        await scheduler.schedule(
            functools.partial(job, name), interval=interval, name=f"cleanup:{name}", run_now=True
        )
    try:
        await stop.wait()
    finally:
        await scheduler.stop()
    return runs


@dataclass(frozen=True)
class DaemonReport(Report):
    """The whole foreground run: how many cleanups ran and what stopped it."""

    schema = "daemon"
    runs: int
    stopped_by: str  # the signal's name ("SIGTERM", "SIGINT"), or "stop"


def intervals(
    manager: CacheManager, caches: list[str] | None = None
) -> tuple[tuple[str, float], ...]:
    """(cache, cleanup_interval seconds) for each cache the daemon cleans."""
    return tuple(
        (n, manager.settings.caches[n].cleanup_interval) for n in caches or manager.names()
    )


def run_until_signal(
    manager: CacheManager,
    on_run: Callable[[DaemonRunReport], None],
    caches: list[str] | None = None,
    on_start: Callable[[], None] | None = None,
) -> DaemonReport:
    """Serve (see ``serve``) until SIGTERM or SIGINT; ``on_start`` once the handlers are in."""
    got: list[int] = []

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            got.append(sig)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        if on_start is not None:
            on_start()
        return await serve(manager, stop, on_run, caches)

    runs = asyncio.run(main())
    return DaemonReport(runs=runs, stopped_by=signal.Signals(got[0]).name if got else "stop")
