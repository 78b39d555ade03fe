"""What every admin op shares: which caches to act on, and the network-filesystem rule."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llamacache.config.settings import CacheSettings, Settings
from llamacache.engine.safety import check_parents, check_private_dir, is_network_fs
from llamacache.errors import UnsafeCacheDirError
from llamacache.ops._report import ReportWarning

if TYPE_CHECKING:
    from llamacache.manager import CacheManager

# One meaning of --tier in every command: the tiers an op acts on. Each command takes the
# ones it can act on (admin commands: local or network; evict: memory, disk, local or
# network; bench: any). The older spellings "all" (evict) and "tiered" (bench) mean local.
TIERS = {
    "memory": "the in-process memory front",
    "disk": "the persistent disk tier",
    "local": "memory and disk together: this machine's whole stack",
    "network": "the shared Redis tier",
}
TIER_ALIASES = {"all": "local", "tiered": "local"}


def canonical_tier(value: str) -> str:
    """``value`` with an older spelling replaced by its name in TIERS ("all" -> "local")."""
    return TIER_ALIASES.get(value, value)


def targets(manager: CacheManager, cache: str | None) -> list[CacheSettings]:
    """The named cache (CacheNotFoundError if unknown), else every cache that exists on disk.

    Raises UnsafeCacheDirError when the root or a target folder is not ours alone (a link,
    another owner, writable by others, below a folder or link another user controls): an
    admin command never lists or deletes in there.
    """
    root = manager.settings.root
    if os.path.lexists(root):
        check_private_dir(root, "cache root")
    else:  # nothing to act on, but a root below another user's folder is refused anyway
        check_parents(root, "cache root")
    if cache is not None:
        out = [manager.settings.cache(cache)]
    else:
        out = [manager.settings.caches[n] for n in manager.existing_names()]
    for s in out:
        if os.path.lexists(s.path):
            check_private_dir(s.path)
    return out


def network_warning(settings: CacheSettings) -> ReportWarning | None:
    """A loud warning when the cache lies on NFS/CIFS/Lustre/GPFS (SQLite locking is unsafe)."""
    if settings.path.exists() and is_network_fs(settings.path):
        return ReportWarning(
            "network-filesystem",
            settings.name,
            f"cache {settings.name!r}: {settings.path} is on a network filesystem; "
            "SQLite locking is unsafe there"
            + ("" if settings.allow_network_fs else " (writes refused: allow_network_fs = false)"),
        )
    return None


def unsigned_warning(
    settings: Settings, cache: CacheSettings | None = None
) -> ReportWarning | None:
    """Say when the shared tier is unauthenticated (anyone who can write to it feeds readers)."""
    net = settings.network
    if net is None or net.keys or (cache is not None and not cache.network):
        return None
    from llamacache.engine.netclient import redact

    return ReportWarning(
        "unsigned-network",
        None if cache is None else cache.name,
        f"network tier {redact(net.url)} is unsigned: anyone who can write to it can feed "
        "every reader bytes, so pickled values are not shared; set cache.network.signing_key",
    )


def no_index_warning(settings: CacheSettings) -> ReportWarning | None:
    """Say why a cache folder with files but no index (``cache.db``) was left alone.

    A sweep there would have to call every file an orphan: a lost index would cost every
    entry, and a project folder that merely has ``default/`` in it would lose its files.
    """
    from llamacache.engine import index

    n = index.files_without_index(settings.path, skip=settings.temp_dir)
    if not n:
        return None
    return ReportWarning(
        "no-index",
        settings.name,
        f"cache {settings.name!r}: {settings.path} has {n} cache-named file(s) but no index "
        f"({index.DB_NAME}); left untouched: without an index no file there can be told "
        "apart from someone else's (restore the cache from a backup, or remove the folder)",
    )


def check_writable(settings: CacheSettings) -> None:
    """Refuse a writing admin command on a network filesystem unless allowed."""
    if not settings.allow_network_fs and settings.path.exists() and is_network_fs(settings.path):
        raise UnsafeCacheDirError(
            f"cache {settings.name!r}: {settings.path} is on a network filesystem where "
            "SQLite locking is unsafe; set allow_network_fs = true to write it anyway"
        )
