"""A tiny asyncio scheduler: run a blocking job every N seconds until stopped.

The seed's ``CacheManager.start()`` hands its cleanup to an ``AsyncScheduler``.
Jobs run in a worker thread (cleanup does SQLite and file I/O) so the event loop
of the caller's training or serving code never blocks on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a loop runs (it is loaded then): `import llamacache` stays light
    import asyncio

log = logging.getLogger("llamacache.scheduler")


@dataclass
class _Job:
    name: str
    func: Callable[[], object]
    interval: float
    run_now: bool = False
    runs: int = 0
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class AsyncScheduler:
    """Runs registered jobs at fixed intervals on the running event loop."""

    def __init__(self) -> None:
        self._jobs: list[_Job] = []
        self._stopping: asyncio.Event | None = None

    @property
    def jobs(self) -> list[_Job]:
        return list(self._jobs)

    async def schedule(
        self,
        func: Callable[[], object],
        *,
        interval: float,
        name: str | None = None,
        run_now: bool = False,
    ) -> None:
        """Start running ``func`` every ``interval`` seconds: the first run after one interval,
        or at once with ``run_now`` (a daemon in a container restarted often must still run)."""
        import asyncio

        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if self._stopping is None:
            self._stopping = asyncio.Event()
        job = _Job(name or str(getattr(func, "__name__", "job")), func, interval, run_now)
        job.task = asyncio.create_task(self._loop(job), name=f"llamacache:{job.name}")
        self._jobs.append(job)

    async def _loop(self, job: _Job) -> None:
        import asyncio

        assert self._stopping is not None
        wait = not job.run_now
        while not self._stopping.is_set():
            if wait:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=job.interval)
                    return  # stop was requested while waiting
                except asyncio.TimeoutError:
                    pass
            wait = True
            try:
                await asyncio.to_thread(job.func)
                job.runs += 1
            except Exception:  # a failed run must not kill the schedule
                job.failures += 1
                log.exception("scheduled job %s failed", job.name)

    async def stop(self) -> None:
        """Stop every job; a job that is mid-run finishes its current run first."""
        import asyncio

        if self._stopping is not None:
            self._stopping.set()
        tasks = [j.task for j in self._jobs if j.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._stopping = None
