"""``verify``: prove a cache is sound without changing a byte of it (for CI).

Checks, per cache: SQLite integrity, every indexed file present with its recorded size,
every entry's bytes against its digest (full mode), structural validators for caches with
a ``format``, and no unknown files or half-written temporaries in the directory older
than ``temp_grace`` (younger ones may be a live put's).

Never writes: the index is read through one read-only engine snapshot and files are opened
for reading only. Beside live writers, a problem is re-checked against the index as it is
now, and a row removed or rewritten since the snapshot is skipped, not called corrupt.
Value files are hashed on one thread per CPU (the engine's digest pool; the hashers release
the GIL), from read-only mappings, so the cost per byte is the hash's and the disk's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import stat
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llamacache.engine import check_key, checksums, index
from llamacache.engine.index import Problem
from llamacache.engine.locking import lock_holder
from llamacache.engine.safety import leads_outside
from llamacache.errors import CorruptEntryError, ExitCode, LockBusyError, UsageError
from llamacache.ops._common import network_warning, no_index_warning, targets
from llamacache.ops._report import Report, ReportWarning

if TYPE_CHECKING:
    from llamacache.config.settings import CacheSettings
    from llamacache.engine import EntryMeta
    from llamacache.manager import CacheManager

__all__ = ["CacheVerify", "Problem", "VerifyReport", "verify"]

LOOKAHEAD = 64  # value files queued on the digest pool ahead of the one being finished
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class CacheVerify:
    name: str
    path: Path
    exists: bool
    index_ok: bool
    entries: int  # rows in the index
    checked: int  # rows examined (fewer with --sample or --max-time)
    checked_bytes: int
    verified: int
    corrupt: int
    missing: int
    orphaned: int
    orphaned_bytes: int
    stale_tmp: int
    complete: bool
    problems: tuple[Problem, ...]
    warnings: tuple[ReportWarning, ...] = ()
    immutable: bool = False  # the index was read as an immutable snapshot
    skipped: int = 0  # rows changed or removed by a live writer after the snapshot


@dataclass(frozen=True)
class VerifyReport(Report):
    schema = "verify"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    mode: str  # "full" or "quick"
    sample_percent: float
    max_time: float | None
    caches: tuple[CacheVerify, ...]
    seconds: float
    checked_bytes: int
    bytes_per_second: float
    complete: bool  # every selected entry was examined (no --max-time stop)
    ok: bool  # no problem found, and some entry checked when there were any
    checked_nothing: bool = False  # 0 of N>0 entries checked (e.g. --max-time 0): no pass

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.PROBLEM

    @property
    def problem_count(self) -> int:
        return sum(len(c.problems) for c in self.caches)


@dataclass
class _State:
    deadline: float | None
    progress: Progress
    total: int | None
    done: int = 0
    stopped: bool = False

    def out_of_time(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped = True
        return self.stopped

    def advance(self, n: int) -> None:
        self.done += n
        self.progress(self.done, self.total)


# (kind, detail) of a problem found, None when sound, False when the deadline stopped it
Found = tuple[str, str] | None | bool


def _stat_file(row: index.Row, s: CacheSettings) -> tuple[str, str] | None:
    """The checks on a value file that need no reading: not a link leading out, a regular
    file, the size the index records. A vanished file is "missing"."""
    path = s.path / (row.filename or "")
    try:
        if leads_outside(s.path, path) and os.path.lexists(path):
            return ("corrupt", "value file is a symbolic link (not followed)")
        stt = os.lstat(path)
    except FileNotFoundError:
        return ("missing", "value file is missing")
    if not stat.S_ISREG(stt.st_mode):
        return ("corrupt", "value file is not a regular file")
    if stt.st_size != row.size:
        return ("corrupt", f"value file is {stt.st_size} bytes, index records {row.size}")
    return None


def _after_digest(row: index.Row, meta: EntryMeta, s: CacheSettings, digest: bytes) -> Found:
    """The checks after a value file was hashed: its digest, then its format's validator."""
    if digest != meta.digest:
        return ("corrupt", "checksum mismatch")
    return _format_check(row, meta, s)


def _format_check(row: index.Row, meta: EntryMeta, s: CacheSettings) -> Found:
    """A cache with a ``format``: the structural validator, on files that claim the format
    by name (a model's config.json is not safetensors)."""
    claims = isinstance(row.key, str) and row.key.endswith(f".{s.format}")
    if s.format and meta.kind == "rawfile" and claims:
        from llamacache.formats import VALIDATORS

        validator = VALIDATORS.get(s.format)
        problem = validator(s.path / (row.filename or "")) if validator else None
        if problem is not None:
            return ("corrupt", f"not a valid {s.format} file: {problem}")
    return None


def _check_file(
    row: index.Row, meta: EntryMeta, s: CacheSettings, quick: bool, st: _State
) -> Found:
    """One value file checked in this thread (a re-check, or a file that changed under
    the pool). A file that vanishes at any point (a concurrent remove or overwrite) is
    "missing"; the caller re-reads the row to tell a change from damage."""
    found = _stat_file(row, s)
    if found is not None or quick:
        return found if found is not None else _format_check(row, meta, s)
    try:
        digest = checksums.digest_file(
            meta.checksum, s.path / (row.filename or ""), size=row.size, deadline=st.deadline
        )
    except FileNotFoundError:
        return ("missing", "value file is missing")
    except checksums.FileChanged as exc:
        return ("corrupt", f"value file changed while read: {exc.strerror}")
    if digest is None:
        st.stopped = True
        return False
    return _after_digest(row, meta, s, digest)


def _check_header(row: index.Row) -> tuple[str, str] | None:
    """The checks on an entry's header: readable, its length, bound to this key."""
    meta = row.meta
    if meta is None:
        return ("corrupt", "damaged entry header")
    if meta.stored_len != row.size:
        return ("corrupt", f"payload is {row.size} bytes, header records {meta.stored_len}")
    if not check_key(meta, row.key):
        return ("corrupt", "entry belongs to another key (or predates key binding)")
    return None


def _as_problem(row: index.Row, found: Found) -> Problem | None | bool:
    if found is None or found is False:
        return found
    assert isinstance(found, tuple)
    kind, detail = found
    return Problem(kind, row.key_text, row.filename, detail, row.rowid, row.store_time, row.size)


def _check_row(
    row: index.Row, s: CacheSettings, snap: index.Snapshot, quick: bool, st: _State
) -> Problem | None | bool:
    """A Problem, None when sound, or False when the deadline stopped it mid-entry; every
    check in this thread."""
    found: Found = _check_header(row)
    meta = row.meta
    if found is not None or meta is None:
        pass
    elif row.filename is not None:
        found = _check_file(row, meta, s, quick, st)
    elif not quick:
        payload = snap.value_of(row.rowid) or b""
        if checksums.digest(meta.checksum, payload) != meta.digest:
            found = ("corrupt", "checksum mismatch")
    return _as_problem(row, found)


def _same(a: index.Row, b: index.Row | None) -> bool:
    """The row is still the one the snapshot saw (not removed or rewritten since)."""
    return b is not None and (a.store_time, a.size, a.filename, a.tag, a.db_key) == (
        b.store_time,
        b.size,
        b.filename,
        b.tag,
        b.db_key,
    )


def _confirm(
    row: index.Row, problem: Problem, s: CacheSettings, quick: bool, st: _State
) -> Problem | None:
    """Re-check a problem against the index as it is now: a row that changed or went away
    after the snapshot (a live writer) is skipped, not called damaged (returns None)."""
    now = index.current(s.path, row.rowid)
    if not _same(row, now):
        return None
    assert now is not None
    try:
        with index.Snapshot(s.path, cache=s.name) as snap:
            again = _check_row(now, s, snap, quick, st)
            if again is not None and again is not False and not _same(row, snap.row(row.rowid)):
                return None
    except index.READ_ERRORS:
        return problem
    return again if isinstance(again, Problem) else None


def _one(
    s: CacheSettings, quick: bool, fraction: float, st: _State, rng: random.Random
) -> CacheVerify:
    """Verify one cache. An index read as immutable (no writer when opened) that turns
    out unreadable while a writer has since appeared (a ``-wal`` exists now) is read
    again through SQLite's locks before being called damaged: a writer's checkpoint
    can move pages under an immutable reader."""
    done = _verify_one(s, quick, fraction, st, rng, prefer_ro=False)
    wal = s.path / (index.DB_NAME + "-wal")
    if not done.index_ok and done.immutable and wal.exists() and not st.stopped:
        done = _verify_one(s, quick, fraction, st, rng, prefer_ro=True)
    return done


class _Sample:
    """Which rows a ``--sample`` checks: exactly ``ceil(entries x fraction)`` of them (at
    least one when the cache has any), chosen uniformly at random in one pass (selection
    sampling). A 10% sample of 11 entries checks 2, never none."""

    def __init__(self, entries: int, fraction: float, rng: random.Random) -> None:
        self.all = fraction >= 1.0
        self.left = entries  # rows not yet seen
        self.want = math.ceil(entries * fraction - 1e-9) if entries else 0
        self.rng = rng

    def take(self) -> bool:
        if self.all:
            return True
        left, self.left = self.left, self.left - 1
        if self.want <= 0:
            return False
        if self.rng.random() * max(left, 1) < self.want:
            self.want -= 1
            return True
        return False


def _scan(
    snap: index.Snapshot,
    s: CacheSettings,
    quick: bool,
    sample: _Sample,
    st: _State,
    counts: dict[str, int],
    problems: list[Problem],
) -> None:
    """Check every (sampled) row of the snapshot until done or out of time.

    Value files are hashed on a pool of threads (one per CPU), up to LOOKAHEAD files
    ahead of the row being finished, which is finished in snapshot order in this thread:
    header, key binding and size are checked before a file is queued, the digest and
    format after. A file replaced between its check and its hashing is checked again
    here, and any problem is confirmed against the index as it is now.
    """
    pending: deque[tuple[index.Row, Found | checksums.DigestJob]] = deque()
    rows = iter(snap.rows())
    more = True
    with checksums.DigestPool(deadline=st.deadline) as pool:
        while True:
            while more and len(pending) < LOOKAHEAD:
                row = next(rows, None)
                if row is None:
                    more = False
                elif not sample.take():
                    continue
                elif st.out_of_time():
                    more = False
                else:
                    pending.append((row, _start(row, s, snap, quick, pool)))
            if not pending:
                break
            row, started = pending.popleft()
            found = _finish(row, started, s, quick, st, pending)
            if found is False:
                break
            assert found is None or isinstance(found, Problem)
            if isinstance(found, Problem):
                found = _confirm(row, found, s, quick, st)
                if found is None:
                    counts["skipped"] += 1
                    continue
            counts["checked"] += 1
            counts["bytes"] += row.size if not quick else 0
            if found is None:
                counts["verified"] += 1
            else:
                problems.append(found)
            st.advance(1 if quick else row.size)


def _start(
    row: index.Row, s: CacheSettings, snap: index.Snapshot, quick: bool, pool: checksums.DigestPool
) -> Found | checksums.DigestJob:
    """Every check of a row that needs no file read; a value file that passes them is
    queued on the pool (returned as its job)."""
    found = _check_header(row)
    meta = row.meta
    if found is not None or meta is None:
        return found
    if row.filename is not None:
        found = _stat_file(row, s)
        if found is not None or quick:
            return found if found is not None else _format_check(row, meta, s)
        return pool.submit(meta.checksum, s.path / row.filename, row.size)
    if not quick:
        payload = snap.value_of(row.rowid) or b""
        if checksums.digest(meta.checksum, payload) != meta.digest:
            return ("corrupt", "checksum mismatch")
    return None


def _finish(
    row: index.Row,
    started: Found | checksums.DigestJob,
    s: CacheSettings,
    quick: bool,
    st: _State,
    pending: deque[tuple[index.Row, Found | checksums.DigestJob]],
) -> Problem | None | bool:
    """The row's result once its file (if queued) is hashed; progress while waiting."""
    if not isinstance(started, checksums.DigestJob):
        return _as_problem(row, started)
    while not started.wait(0.2):
        ahead = sum(j.hashed for _r, j in pending if isinstance(j, checksums.DigestJob))
        st.progress(st.done + started.hashed + ahead, st.total)
    meta = row.meta
    assert meta is not None
    try:
        digest = started.result()
    except FileNotFoundError:
        return _as_problem(row, ("missing", "value file is missing"))
    except checksums.FileChanged:  # replaced since its check: check it again, in full
        return _as_problem(row, _check_file(row, meta, s, quick, st))
    if digest is None:
        st.stopped = True
        return False
    return _as_problem(row, _after_digest(row, meta, s, digest))


def _verify_one(
    s: CacheSettings,
    quick: bool,
    fraction: float,
    st: _State,
    rng: random.Random,
    *,
    prefer_ro: bool,
) -> CacheVerify:
    warnings = tuple(w for w in (network_warning(s),) if w)
    if not index.exists(s.path):
        return CacheVerify(
            s.name, s.path, False, True, 0, 0, 0, 0, 0, 0, 0, 0, 0, True, (), warnings
        )
    problems: list[Problem] = []
    counts = {"verified": 0, "checked": 0, "bytes": 0, "skipped": 0}
    index_ok = True
    entries = 0
    try:
        snap = index.Snapshot(s.path, cache=s.name, prefer_ro=prefer_ro)
    except CorruptEntryError as exc:
        problems.append(Problem("index", None, index.DB_NAME, exc.reason))
        return _result(s, False, 0, counts, problems, True, warnings)
    try:
        try:
            lines = snap.integrity(quick)
            if lines != ["ok"]:
                index_ok = False
                problems.append(Problem("index", None, index.DB_NAME, "; ".join(lines[:5])))
            entries = snap.count()
            orphans, stale = snap.strays(time.time(), grace=s.temp_grace, skip=s.temp_dir)
            problems += orphans + stale
            from llamacache.ops import _models  # model revisions and blobs (imports ml)

            problems += _models.problems(snap, time.time(), s.temp_grace)
            _scan(snap, s, quick, _Sample(entries, fraction, rng), st, counts, problems)
        except index.ERRORS as exc:
            index_ok = False
            why = (
                exc.reason
                if isinstance(exc, CorruptEntryError)
                else str(index.damaged(s.name, exc).reason)
            )
            problems.append(Problem("index", None, index.DB_NAME, why))
    finally:
        immutable = snap.immutable
        snap.close()
    done = _result(s, index_ok, entries, counts, problems, not st.stopped, warnings)
    return dataclasses.replace(done, immutable=immutable)


def _result(
    s: CacheSettings,
    index_ok: bool,
    entries: int,
    counts: dict[str, int],
    problems: list[Problem],
    complete: bool,
    warnings: tuple[ReportWarning, ...],
) -> CacheVerify:
    def n(kind: str) -> int:
        return sum(1 for p in problems if p.kind == kind)

    return CacheVerify(
        name=s.name,
        path=s.path,
        exists=True,
        index_ok=index_ok,
        entries=entries,
        checked=counts["checked"],
        checked_bytes=counts["bytes"],
        verified=counts["verified"],
        corrupt=n("corrupt"),
        missing=n("missing"),
        orphaned=n("orphan"),
        orphaned_bytes=sum(p.size for p in problems if p.kind == "orphan"),
        stale_tmp=n("stale_tmp"),
        complete=complete,
        problems=tuple(problems),
        warnings=warnings,
        skipped=counts.get("skipped", 0),
    )


def verify_one(s: CacheSettings) -> CacheVerify:
    """A full verify of one cache, for ``repair`` (which holds the admin lock itself)."""
    st = _State(deadline=None, progress=lambda done, total: None, total=None)
    return _one(s, False, 1.0, st, random.Random())


def _planned_total(settings: list[CacheSettings], quick: bool, fraction: float) -> int | None:
    total = 0
    for s in settings:
        if not index.exists(s.path):
            continue
        try:
            with index.Snapshot(s.path, cache=s.name) as snap:
                n, b = snap.totals()
        except index.READ_ERRORS:
            continue
        total += n if quick else b
    return math.ceil(total * fraction)


def verify(
    manager: CacheManager,
    cache: str | None = None,
    *,
    quick: bool = False,
    sample: float = 100.0,
    max_time: float | None = None,
    progress: Progress | None = None,
    seed: int | None = None,
    check_lock: bool = True,
) -> VerifyReport:
    """Check one cache or every existing one; never writes. ``sample`` is a percentage.

    Full mode reads every (sampled) entry's bytes once; ``quick`` reads only the index
    and file sizes. ``max_time`` stops between blocks and reports what was covered.
    Rows a live writer changes after the snapshot are skipped (counted, not reported).
    A sample checks ``ceil(entries x sample%)`` entries of each cache, at least one; a run
    that checked none of N>0 entries is not ok (``checked_nothing``: exit 1).
    Raises UsageError (exit 2) when no chosen cache exists on disk, LockBusyError (exit 3)
    when ``check_lock`` and another process holds a cache's admin lock.
    """
    chosen = targets(manager, cache)
    if not any(index.exists(c.path) for c in chosen):
        where = chosen[0].path if cache is not None and chosen else manager.settings.root
        lost = [w.detail for c in chosen if (w := no_index_warning(c)) is not None]
        raise UsageError(
            f"no cache at {where}: nothing to verify" + "".join(f"; {d}" for d in lost)
        )
    if check_lock:
        for c in chosen:
            holder = lock_holder(c.path)
            if holder is not None and holder != os.getpid():
                raise LockBusyError(
                    f"cache {c.name!r} is locked by another clean/evict/repair (pid {holder}); "
                    "retry later"
                )
    fraction = max(0.0, min(sample, 100.0)) / 100.0
    started = time.monotonic()
    progress = progress or (lambda done, total: None)
    st = _State(
        deadline=None if max_time is None else started + max_time,
        progress=progress,
        total=_planned_total(chosen, quick, fraction),
    )
    rng = random.Random(seed)
    results = tuple(_one(s, quick, fraction, st, rng) for s in chosen)
    seconds = time.monotonic() - started
    checked = sum(c.checked_bytes for c in results)
    # a verify that examined no entry of a cache that has some proves nothing: not a pass
    nothing = sum(c.entries for c in results) > 0 and sum(c.checked for c in results) == 0
    return VerifyReport(
        mode="quick" if quick else "full",
        sample_percent=fraction * 100.0,
        max_time=max_time,
        caches=results,
        seconds=seconds,
        checked_bytes=checked,
        bytes_per_second=checked / seconds if seconds > 0 else 0.0,
        complete=all(c.complete for c in results),
        ok=not any(c.problems for c in results) and not nothing,
        checked_nothing=nothing,
    )
