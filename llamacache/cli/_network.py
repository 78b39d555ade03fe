"""``--tier network`` for the admin commands: call ops.network_admin, render, set the exit code.

Each admin command (inspect, ls, verify, evict, clean) hands over to one function here when
asked for the shared tier, so the commands themselves change by two lines each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
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


def _need_redis(state: State) -> None:
    """Before importing the network ops (they import redis): a url, and the redis package."""
    if state.manager().settings.network is None:
        raise UsageError("no network tier: set [cache.network] url (or LLAMACACHE_NETWORK_URL)")
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        from llamacache.manager import missing_redis

        raise missing_redis(exc) from None


def inspect(state: State, cache: str | None, top: int) -> network_admin.NetworkInspectReport:
    _need_redis(state)
    from llamacache.ops import network_admin

    r = state.renderer()
    manager = state.manager()
    report = network_admin.inspect_network(manager, cache, top=top)
    r.emit(report, render.network_inspect_view)
    for c in report.caches:
        if not c.reachable:
            r.status(f"network tier {c.url} unreachable: {c.error}")
            break
    return report


def ls(
    state: State,
    cache: str | None,
    *,
    keys_only: bool = False,
    top: int | None = None,
    match: str | None = None,
) -> network_admin.NetworkListReport:
    _need_redis(state)
    from llamacache.ops import network_admin

    report = network_admin.list_network(state.manager(), cache, match=match, top=top)
    r = state.renderer()
    if keys_only and not r.json_mode:
        r.keys(e.key for e in report.entries)
    else:
        r.emit(report, render.network_ls_view)
    return report


def verify(state: State, cache: str | None) -> network_verify.NetworkVerifyReport:
    _need_redis(state)
    from llamacache.ops import network_verify

    r = state.renderer()
    with r.progress("verifying network tier") as progress:
        report = network_verify.verify_network(state.manager(), cache, progress=progress)
    r.emit(report, render.network_verify_view)
    r.verdict(report)
    return report


def evict(
    state: State,
    cache: str | None,
    *,
    keys: list[str],
    match: str | None,
    others_given: bool,
    dry_run: bool,
    yes: bool,
) -> network_admin.NetworkRemovalReport | None:
    _need_redis(state)
    from llamacache.ops import network_admin

    if others_given:
        raise UsageError("--tier network takes only --key and --match as selectors")
    if not keys and match is None:
        raise UsageError("--tier network needs --key KEY or --match GLOB")
    r = state.renderer()
    manager = state.manager()
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
    r.emit(report, render.network_removal_view)
    return report


def clean(
    state: State, cache: str | None, dry_run: bool, grace: float | None = None
) -> network_admin.NetworkRemovalReport:
    _need_redis(state)
    from llamacache.ops import network_admin

    kw = {} if grace is None else {"grace": grace}
    report = network_admin.clean_network(state.manager(), cache, dry_run=dry_run, **kw)
    state.renderer().emit(report, render.network_removal_view)
    return report
