"""Admin work on the shared network tier: inspect, ls, verify, evict and clean on Redis.

Everything walks keys with SCAN (never KEYS, which blocks a shared server) in batches of
1000, and deletes with UNLINK (freed in the background). An unreachable server raises
NetworkTierError naming the URL: the commands turn it into one line and exit code 1.
The record format belongs to the network tier (``engine/network.py``); nothing here parses
or unpickles a record.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from llamacache.engine.netclient import as_bytes, redact
from llamacache.engine.network import NetworkTier
from llamacache.errors import ExitCode, NetworkTierError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops._report import Report

Progress = Callable[[int, int | None], None]
CLEAN_GRACE = 300.0  # chunks idle less than this may belong to an upload still in flight


def tier_for(manager: CacheManager, cache: str) -> NetworkTier:
    """A listener-less NetworkTier for admin use; UsageError when none is configured."""
    net = manager.settings.network
    if net is None:
        raise UsageError("no network tier: set [cache.network] url (or LLAMACACHE_NETWORK_URL)")
    manager.settings.cache(cache)  # CacheNotFoundError for unknown names
    return NetworkTier(net, cache, listen=False)


def network_caches(manager: CacheManager, cache: str | None) -> list[str]:
    """The named cache, else every configured cache that uses the network tier."""
    if manager.settings.network is None:
        raise UsageError("no network tier: set [cache.network] url (or LLAMACACHE_NETWORK_URL)")
    if cache is not None:
        if not manager.settings.cache(cache).network:
            raise UsageError(f"cache {cache!r} does not use the network tier (network = false)")
        return [cache]
    return [n for n in manager.names() if manager.settings.caches[n].network]


def unreachable(tier: NetworkTier, exc: BaseException) -> NetworkTierError:
    """The one-line error (exit code 1) for a server that cannot be reached."""
    return NetworkTierError(
        f"cache {tier.cache!r}: network tier {redact(tier.url)} unreachable: {exc}"
    )


@dataclass(frozen=True)
class NetworkEntry:
    """One shared entry: its key, how it is stored, its size and remaining lifetime."""

    cache: str
    key: str
    kind: str  # framing kind: bytes, str, numpy, pickle, rawfile ("?" if unreadable)
    chunked: bool
    bytes: int  # stored payload length
    ttl: float | None  # seconds left, None when it never expires
    memory_usage: int | None  # Redis MEMORY USAGE of the record (and chunks), with --top


# -- inspect ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkInfo:
    """The server and one cache's share of it."""

    cache: str
    url: str
    reachable: bool
    error: str | None
    server_version: str | None
    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None
    evicted_keys: int | None
    keyspace_hits: int | None  # server-wide, since the server started
    keyspace_misses: int | None
    entries: int
    chunks: int
    mode: str
    signed: bool


@dataclass(frozen=True)
class NetworkInspectReport(Report):
    schema = "network.inspect"
    caches: tuple[NetworkInfo, ...]
    top: tuple[NetworkEntry, ...] = ()  # the largest entries, with MEMORY USAGE (--top N)

    @property
    def reachable(self) -> bool:
        return all(c.reachable for c in self.caches)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.reachable else ExitCode.PROBLEM


def inspect_network(
    manager: CacheManager, cache: str | None = None, top: int = 0
) -> NetworkInspectReport:
    """Server facts from INFO and counts under each cache's prefix (one SCAN; no values read).

    Never raises for an unreachable server: ``reachable`` is False and ``error`` says why.
    ``top`` adds the N largest entries (one more SCAN + MGET, and MEMORY USAGE for N keys).
    """
    names = network_caches(manager, cache)
    infos = tuple(_inspect_one(manager, n) for n in names)
    largest: tuple[NetworkEntry, ...] = ()
    if top and all(i.reachable for i in infos):
        largest = list_network(manager, cache, top=top).entries
    return NetworkInspectReport(infos, largest)


def _inspect_one(manager: CacheManager, cache: str) -> NetworkInfo:
    tier = tier_for(manager, cache)
    base: dict[str, Any] = {"cache": cache, "url": redact(tier.url), "mode": tier.settings.mode}
    base["signed"] = bool(tier.settings.keys)
    try:
        info = tier.client.info()
        entries = chunks = 0
        for batch in tier.scan_batches(tier.prefix + "*"):
            for k in batch:
                if k.startswith(tier.entry_prefix.encode()):
                    entries += 1
                elif b"}:c:" in k:
                    chunks += 1
    except (redis.RedisError, OSError) as exc:
        return NetworkInfo(**base, reachable=False, error=str(exc), server_version=None,
                           used_memory=None, maxmemory=None, maxmemory_policy=None,
                           evicted_keys=None, keyspace_hits=None, keyspace_misses=None,
                           entries=0, chunks=0)  # fmt: skip
    return NetworkInfo(
        **base,
        reachable=True,
        error=None,
        server_version=str(info.get("valkey_version") or info.get("redis_version")),
        used_memory=int(info.get("used_memory", 0)),
        maxmemory=int(info.get("maxmemory", 0)),
        maxmemory_policy=str(info.get("maxmemory_policy", "")),
        evicted_keys=int(info.get("evicted_keys", 0)),
        keyspace_hits=int(info.get("keyspace_hits", 0)),
        keyspace_misses=int(info.get("keyspace_misses", 0)),
        entries=entries,
        chunks=chunks,
    )


# -- ls -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkListReport(Report):
    schema = "network.ls"
    entries: tuple[NetworkEntry, ...]


def list_network(
    manager: CacheManager,
    cache: str | None = None,
    match: str | None = None,
    top: int | None = None,
) -> NetworkListReport:
    """Entries under each cache's prefix; ``top`` = the N largest with MEMORY USAGE.

    Costs one SCAN plus one MGET per 1000 entries (records are small; chunks are not read).
    """
    found: list[NetworkEntry] = []
    for name in network_caches(manager, cache):
        found += _list_one(manager, name, match, top)
    if top is not None:
        found = sorted(found, key=lambda e: e.bytes, reverse=True)[:top]
    return NetworkListReport(tuple(found))


def _list_one(
    manager: CacheManager, cache: str, match: str | None, top: int | None
) -> list[NetworkEntry]:
    tier = tier_for(manager, cache)
    found: list[tuple[str, NetworkEntry]] = []
    try:
        for rkey, data in tier.records():
            key = tier.key_text(rkey)
            if data is None or (match and not fnmatch.fnmatchcase(key, match)):
                continue
            found.append((rkey, _entry(tier, rkey, key, data)))
        if top is not None:
            found.sort(key=lambda pair: pair[1].bytes, reverse=True)
            found = [(rkey, _with_usage(tier, rkey, e)) for rkey, e in found[:top]]
    except (redis.RedisError, OSError) as exc:
        raise unreachable(tier, exc) from exc
    return [e for _, e in found]


def _entry(tier: NetworkTier, rkey: str, key: str, data: bytes) -> NetworkEntry:
    pttl = tier.client.pttl(rkey)
    ttl = None if pttl is None or int(pttl) < 0 else int(pttl) / 1000
    shape = tier.record_shape(rkey, data)
    return NetworkEntry(tier.cache, key, shape.kind, shape.chunked, shape.bytes, ttl, None)


def _with_usage(tier: NetworkTier, rkey: str, e: NetworkEntry) -> NetworkEntry:
    usage = int(tier.client.memory_usage(rkey) or 0)
    if e.chunked:
        usage += e.bytes  # chunks are shared content; count their payload once
    return NetworkEntry(e.cache, e.key, e.kind, e.chunked, e.bytes, e.ttl, usage)


# -- evict and clean ----------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkRemovalReport(Report):
    schema = "network.remove"
    caches: tuple[str, ...]
    dry_run: bool
    entries: int  # entry records unlinked (or that would be)
    chunks: int  # orphan chunks unlinked (or that would be)
    keys: tuple[str, ...]  # entry keys removed (evict), for the record


def evict_network(
    manager: CacheManager, cache: str | None, match: str, dry_run: bool = False
) -> NetworkRemovalReport:
    """UNLINK the entries whose key matches the glob ``match``; their chunks become orphans."""
    names = network_caches(manager, cache)
    parts = [_evict_one(manager, n, match, dry_run) for n in names]
    keys = tuple(k for p, _ in parts for k in p)
    return NetworkRemovalReport(
        caches=tuple(names),
        dry_run=dry_run,
        entries=len(keys),
        chunks=sum(c for _, c in parts),
        keys=keys,
    )


def evict_network_keys(
    manager: CacheManager,
    cache: str | None,
    *,
    keys: Sequence[str] = (),
    match: str | None = None,
    dry_run: bool = False,
) -> NetworkRemovalReport:
    """Remove the entries named exactly by ``keys``, or those matching the glob ``match``."""
    if not keys and match is None:
        raise UsageError("evicting from the network tier needs keys or a glob to match")
    globs = [match] if match is not None else [glob_literal(k) for k in keys]
    done = [evict_network(manager, cache, g, dry_run=dry_run) for g in globs]
    removed = tuple(k for d in done for k in d.keys)
    return NetworkRemovalReport(
        caches=done[0].caches,
        dry_run=dry_run,
        entries=len(removed),
        chunks=sum(d.chunks for d in done),
        keys=removed,
    )


def glob_literal(text: str) -> str:
    """``text`` matched literally by a glob (``*``, ``?`` and ``[`` bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _evict_one(
    manager: CacheManager, cache: str, match: str, dry_run: bool
) -> tuple[list[str], int]:
    """Unlink the matching entries and the chunks only they referred to: (keys, chunks)."""
    tier = tier_for(manager, cache)
    if tier.read_only:
        raise UsageError(f"cache {cache!r}: the network tier is read-only (mode = read-only)")
    chosen: list[str] = []
    freed: set[str] = set()  # chunk addresses of the evicted entries
    live: set[str] = set()  # ...and of the entries that stay
    try:
        for rkey, data in tier.records():
            addr = None if data is None else tier.record_shape(rkey, data).chunks_address
            if fnmatch.fnmatchcase(tier.key_text(rkey), match):
                chosen.append(rkey)
                if addr:
                    freed.add(addr)
            elif addr:
                live.add(addr)
        freed -= live  # content another entry shares stays
        chunks = [
            k
            for addr in sorted(freed)
            for batch in tier.scan_batches(f"{tier.prefix}{{{_glob_escape(addr)}}}:c:*")
            for k in batch
        ]
        if not dry_run:
            for i in range(0, len(chosen), 1000):
                tier.client.unlink(*chosen[i : i + 1000])
            for i in range(0, len(chunks), 1000):
                tier.client.unlink(*chunks[i : i + 1000])
    except (redis.RedisError, OSError) as exc:
        raise unreachable(tier, exc) from exc
    return [tier.key_text(k) for k in chosen], len(chunks)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def clean_network(
    manager: CacheManager,
    cache: str | None = None,
    dry_run: bool = False,
    grace: float = CLEAN_GRACE,
) -> NetworkRemovalReport:
    """Sweep orphan chunks: no manifest refers to them and they sat idle for ``grace`` s.

    The grace keeps an upload in flight (chunks written, manifest not yet) safe.
    """
    names = network_caches(manager, cache)
    swept = sum(_clean_one(manager, n, dry_run, grace) for n in names)
    return NetworkRemovalReport(
        caches=tuple(names), dry_run=dry_run, entries=0, chunks=swept, keys=()
    )


def _clean_one(manager: CacheManager, cache: str, dry_run: bool, grace: float) -> int:
    tier = tier_for(manager, cache)
    if tier.read_only:
        raise UsageError(f"cache {cache!r}: the network tier is read-only (mode = read-only)")
    live: set[str] = set()
    orphans: list[bytes] = []
    seen_key = tier.prefix + "orphans-seen"  # address -> when a clean first saw it orphaned
    now = time.time()
    try:
        for rkey, data in tier.records():
            addr = None if data is None else tier.record_shape(rkey, data).chunks_address
            if addr:
                live.add(addr)
        seen = _first_seen(tier, seen_key)
        first_seen: dict[str, float] = {}
        for batch in tier.scan_batches(tier.prefix + "{*}:c:*"):
            for k in batch:
                addr = tier.chunk_address(k.decode("utf-8", "replace"))
                if not addr or addr in live:
                    continue
                if _age(tier, k, addr, seen, first_seen, now) >= grace:
                    orphans.append(k)
        if not dry_run:
            for i in range(0, len(orphans), 1000):
                tier.client.unlink(*orphans[i : i + 1000])
            pipe = tier.client.pipeline(transaction=False)
            pipe.delete(seen_key)
            if first_seen:
                pipe.hset(seen_key, mapping={a: repr(t) for a, t in first_seen.items()})
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        raise unreachable(tier, exc) from exc
    return len(orphans)


def _first_seen(tier: NetworkTier, seen_key: str) -> dict[str, float]:
    raw: dict[Any, Any] = tier.client.hgetall(seen_key) or {}
    return {as_bytes(k).decode(): float(v) for k, v in raw.items()}


def _age(
    tier: NetworkTier,
    key: bytes,
    addr: str,
    seen: dict[str, float],
    first_seen: dict[str, float],
    now: float,
) -> float:
    """How long an orphan chunk has sat unused: its idle time, or under an LFU policy
    (no idle time kept) how long ago a clean first saw it orphaned (noted in first_seen)."""
    idle = _idle(tier, key)
    if idle is not None:
        return idle
    first_seen[addr] = seen.get(addr, now)
    return now - first_seen[addr]


def _idle(tier: NetworkTier, key: bytes) -> float | None:
    """Seconds since the key was last touched, or None under an LFU policy (no idle time)."""
    try:
        return float(tier.client.object("idletime", key) or 0)
    except redis.ResponseError:
        return None
