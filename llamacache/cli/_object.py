"""``--tier object`` for the admin commands: call ops.object_admin, render, set the exit code.

Each admin command (inspect, ls, verify, evict, clean) hands over to one function here when
asked for the object tier, as it does to ``_network`` for ``--tier network``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from llamacache.cli._lazy import lazy
from llamacache.cli.render import Renderer, size
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


def _inspect_human(r: Renderer, rep: object_admin.ObjectInspectReport) -> None:
    rows = [
        (
            c.cache,
            c.url,
            "yes" if c.reachable else "NO",
            f"{c.entries:,}",
            size(c.bytes),
            f"{c.parts:,}",
            size(c.part_bytes),
            c.mode + (", signed" if c.signed else ", UNSIGNED"),
        )
        for c in rep.caches
    ]
    cols = ("cache", "url", "up", "entries", "bytes", "parts (all caches)", "part bytes", "mode")
    r.table("object tier", cols, rows, right=("entries", "bytes", "part bytes"))
    for c in rep.caches[:1]:
        r.line(f"not shared through the object tier: {c.not_shared}")


def inspect(s: State, cache: str | None) -> object_admin.ObjectInspectReport:
    r = s.renderer()
    report = object_admin.inspect_object(s.manager(), cache)
    r.emit(report, _inspect_human)
    for c in report.caches:
        if not c.reachable:
            r.status(f"object tier {c.url} {c.error}")
            break
    return report


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _ls_human(r: Renderer, rep: object_admin.ObjectListReport) -> None:
    rows = [
        (e.cache, e.key, size(e.bytes), e.kind, e.stored, _when(e.modified)) for e in rep.entries
    ]
    r.table(
        None, ("cache", "key", "size", "kind", "stored", "written (UTC)"), rows, right=("size",)
    )


def ls(
    s: State, cache: str | None, *, keys_only: bool = False, match: str | None = None
) -> object_admin.ObjectListReport:
    report = object_admin.list_object(s.manager(), cache, match=match)
    r = s.renderer()
    if keys_only and not r.json_mode:
        r.keys(e.key for e in report.entries)
    else:
        r.emit(report, _ls_human)
    return report


def _verify_human(r: Renderer, rep: object_admin.ObjectVerifyReport) -> None:
    sampled = "" if rep.sample >= 100 else f", {rep.sample:g}% of the parts"
    r.line(
        f"object tier: checked {rep.checked:,} entries ({size(rep.bytes_checked)}{sampled}) "
        f"in {', '.join(rep.caches) or 'no caches'}"
    )
    if rep.problems:
        r.table(
            None, ("cache", "key", "problem"), [(p.cache, p.key, p.problem) for p in rep.problems]
        )


def verify(s: State, cache: str | None, sample: float) -> object_admin.ObjectVerifyReport:
    r = s.renderer()
    with r.progress("verifying object tier") as progress:
        report = object_admin.verify_object(s.manager(), cache, sample=sample, progress=progress)
    r.emit(report, _verify_human)
    r.verdict(report)
    return report


def _removal_human(r: Renderer, rep: object_admin.ObjectRemovalReport) -> None:
    verb = "would remove" if rep.dry_run else "removed"
    for key in rep.keys:
        r.line(key)
    r.line(
        f"object tier: {verb} {rep.entries:,} entries and {rep.parts:,} unreferenced parts "
        f"({size(rep.bytes)})"
    )


def evict(
    s: State,
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
    r = s.renderer()
    manager = s.manager()
    if not dry_run and not yes:
        plan = object_admin.evict_object_keys(manager, cache, keys=keys, match=match, dry_run=True)
        n = plan.entries
        if n and not r.confirm(f"remove {n} shared entries?", yes=yes, action="evict"):
            r.info("cancelled; nothing removed")
            return None
    report = object_admin.evict_object_keys(manager, cache, keys=keys, match=match, dry_run=dry_run)
    r.emit(report, _removal_human)
    return report


def clean(
    s: State, cache: str | None, dry_run: bool, grace: float | None = None
) -> object_admin.ObjectRemovalReport:
    kw = {} if grace is None else {"grace": grace}
    report = object_admin.clean_object(s.manager(), cache, dry_run=dry_run, **kw)
    s.renderer().emit(report, _removal_human)
    return report
