"""``--tier network`` for the admin commands: call ops.network_admin, render, set the exit code.

Each admin command (inspect, ls, verify, evict, clean) hands over to one function here when
asked for the shared tier, so the commands themselves change by two lines each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli.render import Renderer, size
from llamacache.cli.state import State
from llamacache.errors import UsageError

if TYPE_CHECKING:  # redis is imported only when --tier network is asked for (~0.2 s)
    from llamacache.ops import network_admin, network_verify

TierOpt = Annotated[
    str,
    typer.Option(
        "--tier",
        metavar="TIER",
        help="local (memory and disk), network: the shared Redis tier, or object: the "
        "S3-compatible store.",
    ),
]


def wants_network(tier: str, unsupported: Mapping[str, bool] | None = None) -> bool:
    """True for ``--tier network``; UsageError for anything but local/network, or for an
    option given (``unsupported[name]`` true) that the network tier does not take."""
    if tier not in ("local", "network"):
        raise UsageError(f"--tier: {tier!r} is not a tier here; expected local or network")
    given = [name for name, on in (unsupported or {}).items() if on]
    if tier == "network" and given:
        raise UsageError(f"{', '.join(given)}: not available with --tier network")
    return tier == "network"


def _need_redis(s: State) -> None:
    """Before importing the network ops (they import redis): a url, and the redis package."""
    if s.manager().settings.network is None:
        raise UsageError("no network tier: set [cache.network] url (or LLAMACACHE_NETWORK_URL)")
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        from llamacache.manager import missing_redis

        raise missing_redis(exc) from None


def _inspect_human(r: Renderer, rep: network_admin.NetworkInspectReport) -> None:
    from llamacache.ops import network_admin

    rows = [
        (
            c.cache,
            c.url,
            c.server_version or "-",
            "yes" if c.reachable else "NO",
            f"{c.entries:,}",
            f"{c.chunks:,}",
            size(c.used_memory),
            "-" if c.maxmemory is None else (size(c.maxmemory) if c.maxmemory else "none"),
            c.maxmemory_policy or "-",
            "-" if c.keyspace_hits is None else f"{c.keyspace_hits:,}/{c.keyspace_misses:,}",
            c.mode + (", signed" if c.signed else ", UNSIGNED"),
        )
        for c in rep.caches
    ]
    cols: tuple[str, ...] = ("cache", "url", "server", "up", "entries", "chunks", "used")
    cols += ("maxmemory", "policy", "server hits/misses", "mode")
    r.table("network tier", cols, rows, right=("entries", "chunks", "used"))
    if rep.top:
        _ls_human(r, network_admin.NetworkListReport(rep.top))


def inspect(s: State, cache: str | None, top: int) -> network_admin.NetworkInspectReport:
    _need_redis(s)
    from llamacache.ops import network_admin

    r = s.renderer()
    manager = s.manager()
    report = network_admin.inspect_network(manager, cache, top=top)
    r.emit(report, _inspect_human)
    for c in report.caches:
        if not c.reachable:
            r.status(f"network tier {c.url} unreachable: {c.error}")
            break
    return report


def _ls_human(r: Renderer, rep: network_admin.NetworkListReport) -> None:
    rows = [
        (
            e.cache,
            e.key,
            size(e.bytes),
            e.kind,
            "chunked" if e.chunked else "inline",
            "-" if e.ttl is None else f"{e.ttl:.0f}s",
            size(e.memory_usage),
        )
        for e in rep.entries
    ]
    cols = ("cache", "key", "size", "kind", "stored", "ttl", "memory usage")
    r.table(None, cols, rows, right=("size", "memory usage"))


def ls(
    s: State,
    cache: str | None,
    *,
    keys_only: bool = False,
    top: int | None = None,
    match: str | None = None,
) -> network_admin.NetworkListReport:
    _need_redis(s)
    from llamacache.ops import network_admin

    report = network_admin.list_network(s.manager(), cache, match=match, top=top)
    r = s.renderer()
    if keys_only and not r.json_mode:
        r.keys(e.key for e in report.entries)
    else:
        r.emit(report, _ls_human)
    return report


def _verify_human(r: Renderer, rep: network_verify.NetworkVerifyReport) -> None:
    r.line(
        f"network tier: checked {rep.checked:,} entries ({size(rep.bytes_checked)}) "
        f"in {', '.join(rep.caches) or 'no caches'}"
    )
    if rep.problems:
        rows = [(p.cache, p.key, p.problem) for p in rep.problems]
        r.table(None, ("cache", "key", "problem"), rows)


def verify(s: State, cache: str | None) -> network_verify.NetworkVerifyReport:
    _need_redis(s)
    from llamacache.ops import network_verify

    r = s.renderer()
    with r.progress("verifying network tier") as progress:
        report = network_verify.verify_network(s.manager(), cache, progress=progress)
    r.emit(report, _verify_human)
    r.verdict(report)
    return report


def _removal_human(r: Renderer, rep: network_admin.NetworkRemovalReport) -> None:
    verb = "would remove" if rep.dry_run else "removed"
    for key in rep.keys:
        r.line(key)
    r.line(f"network tier: {verb} {rep.entries:,} entries and {rep.chunks:,} orphan chunks")


def evict(
    s: State,
    cache: str | None,
    *,
    keys: list[str],
    match: str | None,
    others_given: bool,
    dry_run: bool,
    yes: bool,
) -> network_admin.NetworkRemovalReport | None:
    _need_redis(s)
    from llamacache.ops import network_admin

    if others_given:
        raise UsageError("--tier network takes only --key and --match as selectors")
    if not keys and match is None:
        raise UsageError("--tier network needs --key KEY or --match GLOB")
    r = s.renderer()
    manager = s.manager()
    if not dry_run and not yes:
        plan = network_admin.evict_network_keys(
            manager, cache, keys=keys, match=match, dry_run=True
        )
        n = plan.entries
        if n and not r.confirm(f"remove {n} shared entries?", yes=yes, action="evict"):
            r.info("cancelled; nothing removed")
            return None
    report = network_admin.evict_network_keys(
        manager, cache, keys=keys, match=match, dry_run=dry_run
    )
    r.emit(report, _removal_human)
    return report


def clean(
    s: State, cache: str | None, dry_run: bool, grace: float | None = None
) -> network_admin.NetworkRemovalReport:
    _need_redis(s)
    from llamacache.ops import network_admin

    kw = {} if grace is None else {"grace": grace}
    report = network_admin.clean_network(s.manager(), cache, dry_run=dry_run, **kw)
    s.renderer().emit(report, _removal_human)
    return report
