"""``ls``: the entries of a cache, filtered and sorted by the engine over an index snapshot.

Filters are small records (field, operator, value) the engine compiles to one query:
``size>1GB``, ``accessed>30d`` (last read more than 30 days ago), ``stored<1h``,
``hits>=10``, ``expires<1d``, ``key~tok*`` (glob), ``key=exact``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llamacache.config import units
from llamacache.engine import index
from llamacache.errors import OptionError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops._common import network_warning, targets
from llamacache.ops._report import Report, ReportWarning

# sort name -> index field
SORTS: dict[str, str] = {
    "size": "size",
    "accessed": "access_time",
    "stored": "store_time",
    "hits": "access_count",
    "key": "key",
    "expires": "expire_time",
}
_FILTER = re.compile(r"^\s*(\w+)\s*(>=|<=|!=|=|>|<|~)\s*(.+?)\s*$")


@dataclass(frozen=True)
class FilterField:
    """How one filterable field compiles: index field and how its value parses."""

    field: str
    parse: Callable[[str], Any]
    age: bool = False  # value is a duration: "accessed>30d" means older than 30 days


def _size(text: str) -> int:
    return units.parse_size(text, field="--filter size")


def _dur(text: str) -> float:
    return units.parse_duration(text, field="--filter")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionError("filter", f"{text!r} is not a whole number") from None


FIELDS: dict[str, FilterField] = {
    "size": FilterField("size", _size),
    "accessed": FilterField("access_time", _dur, age=True),
    "stored": FilterField("store_time", _dur, age=True),
    "hits": FilterField("access_count", _int),
    "expires": FilterField("expire_time", _dur, age=False),
}


@dataclass(frozen=True)
class Entry:
    cache: str
    key: str
    bytes: int
    stored: float
    accessed: float
    hits: int
    expires: float | None
    kind: str | None
    codec: str | None
    checksum: str | None  # algorithm, or None when the header is damaged
    digest: str | None
    file: bool
    header_ok: bool


@dataclass(frozen=True)
class LsReport(Report):
    schema = "ls"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    entries: tuple[Entry, ...]
    total: int  # matching entries before --limit
    sort: str
    filters: tuple[str, ...]
    warnings: tuple[ReportWarning, ...] = ()


def compile_filter(text: str, now: float) -> index.Cond:
    """One ``--filter`` to an index condition; UsageError naming the filter when not valid."""
    m = _FILTER.match(text)
    if m is None:
        raise OptionError(
            "filter",
            f'{text!r} is not a filter; expected e.g. "size>1GB", "accessed>30d", "key~tok*"',
        )
    name, op, value = m.groups()
    if name == "key":
        if op == "~":
            return index.Cond("key", "glob", value)
        if op in ("=", "!="):
            return index.Cond("key", op, value)
        raise OptionError("filter", f"key takes ~ (glob), = or !=, not {op!r}")
    field = FIELDS.get(name)
    if field is None or op == "~":
        known = ", ".join(["key", *FIELDS])
        raise OptionError("filter", f"{text!r}: unknown field or operator; fields: {known}")
    try:
        parsed = field.parse(value)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(str(exc)) from None
    if field.age:  # "older than" flips the comparison on the timestamp
        flip = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "=": "=", "!=": "!="}[op]
        return index.Cond(field.field, flip, now - parsed)
    if name == "expires":
        return index.Cond("expire_time", op, now + parsed)
    return index.Cond(field.field, op, parsed)


def parse_sort(text: str) -> tuple[str, bool]:
    """``size``, ``size:asc``, ``key:desc`` to (index field, descending); descending by
    default except for key."""
    name, _, direction = text.partition(":")
    if name not in SORTS or direction not in ("", "asc", "desc"):
        raise OptionError(
            "sort",
            f"{text!r} is not a sort; expected one of {', '.join(SORTS)} "
            "optionally followed by :asc or :desc",
        )
    direction = direction or ("asc" if name == "key" else "desc")
    return SORTS[name], direction == "desc"


def ls(
    manager: CacheManager,
    cache: str | None = None,
    *,
    sort: str = "stored",
    limit: int | None = None,
    filters: tuple[str, ...] = (),
) -> LsReport:
    """Matching entries of one cache or every existing one; index only, no value read."""
    now = time.time()
    order, desc = parse_sort(sort)
    conds = [compile_filter(f, now) for f in filters]
    out: list[Entry] = []
    total = 0
    warnings: list[ReportWarning] = []
    for s in targets(manager, cache):
        if (warning := network_warning(s)) is not None:
            warnings.append(warning)
        if not index.exists(s.path):
            continue
        with index.Snapshot(s.path, cache=s.name) as snap:
            total += snap.count(conds)
            for row in snap.rows(conds, order=order, desc=desc, limit=limit):
                meta = row.meta
                out.append(
                    Entry(
                        cache=s.name,
                        key=row.key_text,
                        bytes=row.size,
                        stored=row.store_time,
                        accessed=row.access_time,
                        hits=row.access_count,
                        expires=row.expire_time,
                        kind=meta.kind if meta else None,
                        codec=meta.codec if meta else None,
                        checksum=meta.checksum if meta else None,
                        digest=meta.digest.hex() if meta else None,
                        file=row.filename is not None,
                        header_ok=meta is not None,
                    )
                )
    if len(targets(manager, cache)) > 1:  # merge caches under one order
        key_name = sort.partition(":")[0]
        desc = (sort.partition(":")[2] or ("asc" if key_name == "key" else "desc")) == "desc"
        attr = {"size": "bytes"}.get(key_name, key_name)
        present = [e for e in out if getattr(e, attr) is not None]
        present.sort(key=lambda e: getattr(e, attr), reverse=desc)
        out = present + [e for e in out if getattr(e, attr) is None]
        if limit is not None:
            out = out[:limit]
    return LsReport(
        entries=tuple(out), total=total, sort=sort, filters=filters, warnings=tuple(warnings)
    )
