"""Machine resources (psutil): memory, disk, pressure, and the budgets that depend on them.

The seed's ``ResourceManager`` is an async context manager whose getters return bytes::

    async with ResourceManager() as resources:
        memory_size = int(await resources.get_available_memory() * 0.3)

The synchronous functions below are what the engine and ``inspect`` call: a memory
front shrinks when the system's available memory falls under ``pressure_floor`` (so
a cache never pushes the machine into swap), and ``limit_warnings`` flags limits the
disk or RAM cannot honour.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llamacache.config.units import format_size

if TYPE_CHECKING:
    from llamacache.config.schema import MachineShare
    from llamacache.config.settings import CacheSettings, Settings
    from llamacache.engine.memory import MemoryFront


def _psutil() -> Any:
    """psutil, imported when memory is first measured (commands that never ask skip it)."""
    import psutil

    return psutil


def machine_size(rule: MachineShare, cache_dir: Path) -> int:
    """The bytes a machine-sized default gives the cache in ``cache_dir``: its share of the
    RAM, or of the free space on the cache's filesystem plus what the cache holds already
    (so filling a cache never shrinks its own limit), capped, never below the floor, in
    whole megabytes so ``config show`` prints it plainly."""
    from llamacache.config.units import MB, physical_memory

    if rule.kind == "memory":
        base = physical_memory()
    else:
        base = disk_free(cache_dir)
        if (cache_dir / "cache.db").is_file():
            from llamacache.engine.index import used_bytes_at

            base += used_bytes_at(cache_dir)
    size = int(base * rule.share) // MB * MB
    return max(rule.floor, min(rule.cap, size))


def available_memory() -> int:
    """Bytes the system can give to new allocations without swapping (psutil's ``available``)."""
    return int(_psutil().virtual_memory().available)


def total_memory() -> int:
    """Physical memory in bytes: the base of a ``"30%"`` memory size."""
    return int(_psutil().virtual_memory().total)


def memory_pressure() -> float:
    """Share of physical memory in use, 0..1 (1 - available / total)."""
    vm = _psutil().virtual_memory()
    return 1.0 - vm.available / vm.total if vm.total else 0.0


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor (a cache directory may not exist yet)."""
    path = path.expanduser().absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def disk_free(path: Path) -> int:
    """Free bytes for an unprivileged user on the filesystem holding ``path``."""
    return int(shutil.disk_usage(nearest_existing(path)).free)


def disk_total(path: Path) -> int:
    """Size in bytes of the filesystem holding ``path``: the base of a ``"10%"`` disk size."""
    return int(shutil.disk_usage(nearest_existing(path)).total)


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if missing). Walks the tree: for admin commands."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def relieve_pressure(memory: MemoryFront, configured: int, floor: int) -> int:
    """Shrink ``memory`` while system available memory is under ``floor``; returns evictions.

    Under pressure the front gives back the deficit (at least half of what it holds);
    once available memory is back above twice the floor it regains its configured
    size. One psutil call (~20 us): callers run it every few seconds, never per get.
    """
    if floor <= 0:
        return 0
    available = available_memory()
    if available < floor:
        held = memory.nbytes
        target = max(0, min(held // 2, held - (floor - available)))
        return memory.resize(min(memory.limit, target))
    if memory.limit < configured and available > 2 * floor:
        memory.resize(configured)
    return 0


def disk_limit_warning(cache: CacheSettings, used: int | None = None) -> str | None:
    """One line when ``cache.disk_size`` exceeds what it holds plus its filesystem's free space.

    ``used`` is what the cache occupies now (measured by walking its directory if None).
    """
    if used is None:
        used = directory_bytes(cache.path) if cache.path.is_dir() else 0
    free = disk_free(cache.path)
    if cache.disk_size <= used + free:
        return None
    return (
        f"cache {cache.name!r}: disk limit {format_size(cache.disk_size)} exceeds what its "
        f"filesystem can still hold ({format_size(used)} used + {format_size(free)} free "
        f"at {nearest_existing(cache.path)})"
    )


def limit_warnings(settings: Settings) -> list[str]:
    """Limits the machine cannot honour now: one readable line each (``inspect`` shows them).

    A disk limit above what the cache holds plus what its filesystem has free, and
    memory fronts that together exceed physical memory. Walks each existing cache
    directory once to measure it.
    """
    warnings = [w for cs in settings.caches.values() if (w := disk_limit_warning(cs))]
    memory_total = sum(cs.memory_size for cs in settings.caches.values())
    physical = total_memory()
    if memory_total > physical:
        warnings.append(
            f"memory fronts total {format_size(memory_total)}, more than the "
            f"{format_size(physical)} of physical memory; they will shrink under pressure"
        )
    return warnings


class ResourceManager:
    """The seed's async resource probe; every getter returns bytes (or a 0..1 share).

    psutil calls are quick, so they run inline rather than in a thread.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path.cwd()

    async def __aenter__(self) -> ResourceManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def get_available_memory(self) -> int:
        """Bytes available to new allocations without swapping."""
        return available_memory()

    async def get_total_memory(self) -> int:
        """Physical memory in bytes."""
        return total_memory()

    async def get_memory_pressure(self) -> float:
        """Share of physical memory in use (0..1)."""
        return memory_pressure()

    async def get_disk_free(self, path: Path | None = None) -> int:
        """Free bytes on the filesystem holding ``path`` (default: this manager's path)."""
        import asyncio

        return await asyncio.to_thread(disk_free, path or self.path)

    async def get_disk_total(self, path: Path | None = None) -> int:
        """Size of the filesystem holding ``path`` in bytes."""
        import asyncio

        return await asyncio.to_thread(disk_total, path or self.path)

    async def get_cpu_count(self) -> int:
        """Logical CPUs (for sizing prefetch workers)."""
        return os.cpu_count() or 1
