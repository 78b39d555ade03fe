"""Temporary files in the ``system`` cache's ``temp_dir``, which ``clean`` ages out by max_age.

Like ``tempfile`` but under the cache root, so scratch files of a job are private to the
user (0700 directory), live on the cache's filesystem, and are swept by ``llamacache clean``
once older than the system cache's ``max_age`` even when the job crashed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

from llamacache.engine.safety import check_private_dir, ensure_private_dir
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
        return ensure_private_dir(self._dir, "temp_dir")

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
        """The files llamacache made in ``temp_dir`` (what ``clean`` would consider)."""
        found = {p for p, _ in own_temp_files(self._dir, 0.0, float("inf"))}
        if self._dir.is_dir():  # and our mkdtemp folders, empty or not
            found |= {p for p in self._dir.glob(PREFIX + "*") if p.is_dir() and not p.is_symlink()}
        return sorted(found)


def _old_inside(folder: str, uid: int, older_than: float, now: float) -> list[tuple[Path, int]]:
    """Our files in one of our ``mkdtemp`` folders (``os.walk`` never follows links)."""
    out: list[tuple[Path, int]] = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            if st.st_uid == uid and now - st.st_mtime >= older_than:
                out.append((p, st.st_size))
    return out


def own_temp_files(directory: Path, older_than: float, now: float) -> list[tuple[Path, int]]:
    """Files we created in ``directory`` (``llamacache-*``), older than ``older_than`` seconds.

    ``temp_dir`` may be a folder the user also keeps their own files in (``"."``), so only
    our prefix counts: top-level ``llamacache-*`` regular files of ours, and files inside
    ``llamacache-*`` folders (``mkdtemp``) of ours. Links are never followed or listed.
    Raises UnsafeCacheDirError when ``directory`` is not private (a link, another owner,
    writable by others): nothing is listed, so nothing is deleted, in a folder others control.
    """
    out: list[tuple[Path, int]] = []
    if not os.path.lexists(directory):
        return out
    check_private_dir(Path(directory).absolute(), "temp_dir")
    uid = os.getuid()
    try:
        top = list(os.scandir(directory))
    except OSError:
        return out
    for entry in top:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid != uid:
            continue
        if stat.S_ISREG(st.st_mode):
            if now - st.st_mtime >= older_than:
                out.append((Path(entry.path), st.st_size))
        elif stat.S_ISDIR(st.st_mode):
            out += _old_inside(entry.path, uid, older_than, now)
    return out


def temp_file(manager: CacheManager | None = None, **kwargs: Any) -> IO[Any]:
    """Shortcut: a named temporary file in the system cache's temp_dir."""
    return SystemCache(manager).named_temporary_file(**kwargs)


__all__ = ["SystemCache", "own_temp_files", "temp_file"]
