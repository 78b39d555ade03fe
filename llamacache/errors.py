"""One exception family for the whole package, and the exit code each maps to.

Library code raises these; only the CLI's error boundary (``cli/_boundary.py``) turns
them into one line on stderr and an exit code. Each message names the thing at fault (field, value,
cache, key or path) and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Exit codes shared by every command; their meanings, as documented, are
    ``cli/_manual.py``'s EXIT_STATUS (the man pages and the command reference)."""

    OK = 0
    PROBLEM = 1  # the command ran and found a problem: corruption, a miss, server down
    USAGE = 2  # bad flag, bad config value
    BUSY = 3  # another clean/evict/repair holds the lock
    INTERRUPTED = 130


class LlamacacheError(Exception):
    """Base of every error llamacache raises on purpose."""

    exit_code: ExitCode = ExitCode.PROBLEM


class ConfigError(LlamacacheError, ValueError):
    """A configuration value, file or flag is wrong."""

    exit_code = ExitCode.USAGE


class UsageError(LlamacacheError, ValueError):
    """A command or API was called with arguments that cannot work."""

    exit_code = ExitCode.USAGE


class OptionError(UsageError):
    """A bad value for one argument of an operation, named the way the caller passed it.

    ``str()`` names the Python argument (``to_size: '4XB' is not a size``); the command
    line's error boundary names the flag that set it instead (``--to-size: ...``), so
    library code never spells command-line syntax. ``value`` follows the name
    (``every 90s: ...``); ``also`` lists other argument names the detail mentions.
    """

    def __init__(
        self,
        option: str | None,
        detail: str,
        *,
        value: str | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        self.option = option
        self.detail = detail
        self.value = value
        self.also = also
        super().__init__(self.render(lambda name: name))

    def render(self, flag: Callable[[str], str]) -> str:
        """The message with each argument name spelled by ``flag`` (e.g. as a CLI flag)."""
        detail = self.detail
        for name in self.also:
            detail = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag(name), detail)
        if self.option is None:
            return detail
        head = flag(self.option) + (f" {self.value}" if self.value is not None else "")
        return f"{head}: {detail}"


class CacheNotFoundError(LlamacacheError, KeyError):
    """A named cache that is not configured was asked for."""

    exit_code = ExitCode.USAGE

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""


class CorruptEntryError(LlamacacheError):
    """A stored value did not match its checksum or could not be decoded."""

    def __init__(self, cache: str, key: Any, reason: str) -> None:
        super().__init__(f"cache {cache!r}: entry {key!r} is corrupt: {reason}")
        self.cache = cache
        self.key = key
        self.reason = reason


class StaleEntryError(CorruptEntryError):
    """An entry in an older header format (no key hash): read as a miss, not as damage."""


class NotCachedError(LlamacacheError, KeyError):
    """The model revision or dataset is not (or no longer completely) in the cache."""

    exit_code = ExitCode.PROBLEM

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""


class ArchiveError(LlamacacheError):
    """The archive is damaged, tampered with, or not a llamacache backup (exit 1)."""


class SafetensorsError(LlamacacheError, ValueError):
    """The file is not a structurally valid safetensors file (the message says why)."""


class UnsafeCacheDirError(LlamacacheError):
    """The cache directory could let another user plant code (pickles) in it."""

    exit_code = ExitCode.USAGE


class CacheIOError(LlamacacheError):
    """A read or write of the cache failed at the operating-system level."""


class DiskFullError(CacheIOError):
    """The filesystem holding a cache has no room left."""


class ReadOnlyCacheError(CacheIOError):
    """The cache directory cannot be written (read-only mount or permissions)."""


class LockBusyError(LlamacacheError):
    """Another process holds the cache's admin lock.

    ``wait_argument`` names the argument that would have waited longer (``wait``); the
    message advises it as Python (``wait=SECONDS``) and the command line's error boundary
    spells its flag (``--wait DURATION``), as with OptionError.
    """

    exit_code = ExitCode.BUSY

    def __init__(self, message: str, *, wait_argument: str | None = None) -> None:
        self.message = message
        self.wait_argument = wait_argument
        super().__init__(self.render(lambda name: f"{name}=SECONDS"))

    def render(self, flag: Callable[[str], str]) -> str:
        """The message, advising ``wait_argument`` spelled by ``flag`` (e.g. as a CLI flag)."""
        if self.wait_argument is None:
            return self.message
        return f"{self.message}; retry later or pass {flag(self.wait_argument)}"


class NetworkTierError(LlamacacheError):
    """The shared network tier (Redis) could not be reached or answered wrongly."""


def translate_os_error(exc: BaseException, cache: str, path: object) -> LlamacacheError | None:
    """Map an OS or SQLite failure to our error family (see ``engine/failures.py``)."""
    from llamacache.engine.failures import translate_os_error as translate

    return translate(exc, cache, path)
