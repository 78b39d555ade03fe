"""Temporary files in the ``system`` cache's ``temp_dir``, which ``clean`` ages out by max_age.

Like ``tempfile`` but under the cache root, so scratch files of a job are private to the
user (0700 directory), live on the cache's filesystem, and are swept by ``llamacache clean``
once older than the system cache's ``max_age`` even when the job crashed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, Any

from llamacache.engine.safety import ensure_private_dir
from llamacache.errors import ConfigError
from llamacache.manager import CacheManager

PREFIX = "llamacache-"


class SystemCache:
    """The system cache's temp directory; ``SystemCache()`` resolves the configuration."""

    def __init__(self, manager: CacheManager | None = None, cache: str = "system") -> None:
        self.manager = manager if manager is not None else CacheManager()
        settings = self.manager.settings.cache(cache)
        if settings.temp_dir is None:
            raise ConfigError(f"caches.{cache}.temp_dir is not set; it names the temp folder")
        self.name = cache
        self.max_age = settings.max_age
        self._dir = Path(settings.temp_dir)

    @property
    def temp_dir(self) -> Path:
        """The temp folder, created private (0700) on first use."""
        return ensure_private_dir(self._dir)

    def named_temporary_file(
        self, mode: str = "w+b", *, suffix: str = "", prefix: str = PREFIX, delete: bool = True
    ) -> IO[Any]:
        """``tempfile.NamedTemporaryFile`` in ``temp_dir`` (kept with delete=False)."""
        return tempfile.NamedTemporaryFile(  # noqa: SIM115 (returned to the caller)
            mode, suffix=suffix, prefix=prefix, dir=self.temp_dir, delete=delete
        )

    def mkstemp(self, *, suffix: str = "", prefix: str = PREFIX) -> tuple[int, Path]:
        """``tempfile.mkstemp`` in ``temp_dir``: an open fd and the path (the caller closes)."""
        fd, name = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=self.temp_dir)
        return fd, Path(name)

    def mkdtemp(self, *, suffix: str = "", prefix: str = PREFIX) -> Path:
        """``tempfile.mkdtemp`` in ``temp_dir`` (0700)."""
        return Path(tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=self.temp_dir))

    def files(self) -> list[Path]:
        """Everything currently in ``temp_dir`` (what ``clean`` would consider)."""
        d = self._dir
        return sorted(p for p in d.rglob("*")) if d.is_dir() else []


def temp_file(manager: CacheManager | None = None, **kwargs: Any) -> IO[Any]:
    """Shortcut: a named temporary file in the system cache's temp_dir."""
    return SystemCache(manager).named_temporary_file(**kwargs)


__all__ = ["SystemCache", "temp_file"]
