"""``--tier object`` for the admin commands: call ops.object_admin, render, set the exit code.

Each admin command (inspect, ls, verify, evict, clean) hands over to one function here when
asked for the object tier, as it does to ``_network`` for ``--tier network``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.state import State
from llamacache.errors import UsageError

if TYPE_CHECKING:
    from llamacache.ops import object_admin
else:
    object_admin = lazy("llamacache.ops.object_admin")


def wants_object(tier: str, unsupported: Mapping[str, bool] | None = None) -> bool:
    """True for ``--tier object``; UsageError for an option given that it does not take."""
    if tier != "object":
        return False
    given = [name for name, on in (unsupported or {}).items() if on]
    if given:
        raise UsageError(f"{', '.join(given)}: not available with --tier object")
    return True


def inspect(state: State, cache: str | None) -> object_admin.ObjectInspectReport:
    r = state.renderer()
    report = object_admin.inspect_object(state.manager(), cache)
    r.emit(report, render.object_inspect_view)
    for c in report.caches:
        if not c.reachable:
            r.status(f"object tier {c.url} {c.error}")
            break
    return report


def ls(
    state: State, cache: str | None, *, keys_only: bool = False, match: str | None = None
) -> object_admin.ObjectListReport:
    report = object_admin.list_object(state.manager(), cache, match=match)
    r = state.renderer()
    if keys_only and not r.json_mode:
        r.keys(e.key for e in report.entries)
    else:
        r.emit(report, render.object_ls_view)
    return report


def verify(state: State, cache: str | None, sample: float) -> object_admin.ObjectVerifyReport:
    r = state.renderer()
    with r.progress("verifying object tier") as progress:
        report = object_admin.verify_object(
            state.manager(), cache, sample=sample, progress=progress
        )
    r.emit(report, render.object_verify_view)
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
) -> object_admin.ObjectRemovalReport | None:
    if others_given:
        raise UsageError("--tier object takes only --key and --match as selectors")
    r = state.renderer()
    manager = state.manager()
    if not dry_run and not yes:
        plan = object_admin.evict_object_keys(manager, cache, keys=keys, match=match, dry_run=True)
        n = plan.entries
        if n and not r.confirm(f"remove {n} shared entries?", yes=yes, action="evict"):
            r.info("cancelled; nothing removed")
            return None
    report = object_admin.evict_object_keys(manager, cache, keys=keys, match=match, dry_run=dry_run)
    r.emit(report, render.object_removal_view)
    return report


def clean(
    state: State, cache: str | None, dry_run: bool, grace: float | None = None
) -> object_admin.ObjectRemovalReport:
    kw = {} if grace is None else {"grace": grace}
    report = object_admin.clean_object(state.manager(), cache, dry_run=dry_run, **kw)
    state.renderer().emit(report, render.object_removal_view)
    return report
