"""``verify``: prove a cache is sound without changing a byte of it (for CI).

Checks, per cache: SQLite integrity, every indexed file present with its recorded size,
every entry's bytes against its digest (full mode), structural validators for caches with
a ``format``, and no unknown files or half-written temporaries in the directory older
than ``temp_grace`` (younger ones may be a live put's).

Never writes: the index is read through one read-only engine snapshot and files are opened
for reading only. Beside live writers, a problem is re-checked against the index as it is
now, and a row removed or rewritten since the snapshot is skipped, not called corrupt.
Hashing reads 4 MiB blocks with ``readinto`` into one reused buffer, so the cost per byte
is the hash's and the disk's, not Python's.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import random
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llamacache.config.settings import CacheSettings
from llamacache.engine import EntryMeta, check_key, checksums, index
from llamacache.engine.index import Problem
from llamacache.engine.locking import lock_holder
from llamacache.engine.safety import leads_outside
from llamacache.errors import CorruptEntryError, ExitCode, LockBusyError, UsageError
from llamacache.formats import VALIDATORS
from llamacache.manager import CacheManager
from llamacache.ops import _models
from llamacache.ops._common import network_warning, targets
from llamacache.ops._report import Report, ReportWarning

__all__ = ["CacheVerify", "Problem", "VerifyReport", "verify"]

BLOCK = 4 * 1024 * 1024
MMAP_MIN = 16 * 1024 * 1024  # files at least this large are hashed from a mapping
MMAP_STEP = 64 * 1024 * 1024  # progress / --max-time granularity within a mapped file
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
    ok: bool

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
    buf: bytearray = field(default_factory=lambda: bytearray(BLOCK))

    def out_of_time(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped = True
        return self.stopped


def _hash_file(path: Path, algo: str, st: _State) -> tuple[bytes | None, int]:
    """(digest, bytes read), digest None when stopped by the deadline mid-file.

    Large files are hashed straight from a read-only mapping (no copy into a buffer:
    ~2x the throughput of read+hash when the file is in the page cache); small ones are
    read with ``readinto`` into the one reused 4 MiB buffer. Value files are replaced by
    rename and removed by unlink, never truncated in place, so a mapping stays valid.
    """
    hasher = checksums.hasher(algo)
    update = hasher.update
    total = 0
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size >= MMAP_MIN:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                if hasattr(mm, "madvise"):
                    mm.madvise(mmap.MADV_SEQUENTIAL)
                view = memoryview(mm)
                try:
                    for start in range(0, size, MMAP_STEP):
                        chunk = view[start : start + MMAP_STEP]
                        update(chunk)
                        chunk.release()
                        n = min(MMAP_STEP, size - start)
                        total += n
                        st.done += n
                        st.progress(st.done, st.total)
                        if st.out_of_time():
                            return None, total
                finally:
                    view.release()
            return hasher.digest(), total
        view = memoryview(st.buf)
        readinto = f.readinto
        while True:
            n = readinto(view)
            if not n:
                break
            update(view[:n])
            total += n
            st.done += n
    return hasher.digest(), total


def _check_file(
    row: index.Row, meta: EntryMeta, s: CacheSettings, quick: bool, st: _State
) -> tuple[str, str] | None | bool:
    """(kind, detail), None when sound, or False when the deadline stopped it mid-file.

    A file that vanishes at any point (a concurrent remove or overwrite) is "missing";
    the caller re-reads the row to tell a change from damage.
    """
    path = s.path / (row.filename or "")
    try:
        if leads_outside(s.path, path) and os.path.lexists(path):
            return ("corrupt", "value file is a symbolic link (not followed)")
        stt = os.lstat(path)
        if not stat.S_ISREG(stt.st_mode):
            return ("corrupt", "value file is not a regular file")
        if stt.st_size != row.size:
            return ("corrupt", f"value file is {stt.st_size} bytes, index records {row.size}")
        if not quick:
            digest, _n = _hash_file(path, meta.checksum, st)
            if digest is None:
                return False
            if digest != meta.digest:
                return ("corrupt", "checksum mismatch")
        validator = VALIDATORS.get(s.format or "")
        # Only files that claim the format by name: a model's config.json is not safetensors.
        claims = isinstance(row.key, str) and row.key.endswith(f".{s.format}")
        if validator is not None and meta.kind == "rawfile" and claims:
            problem = validator(path)
            if problem is not None:
                return ("corrupt", f"not a valid {s.format} file: {problem}")
    except FileNotFoundError:
        return ("missing", "value file is missing")
    return None


def _check_row(
    row: index.Row, s: CacheSettings, snap: index.Snapshot, quick: bool, st: _State
) -> Problem | None | bool:
    """A Problem, None when sound, or False when the deadline stopped it mid-entry."""
    meta = row.meta
    found: tuple[str, str] | None | bool = None
    if meta is None:
        found = ("corrupt", "damaged entry header")
    elif meta.stored_len != row.size:
        found = ("corrupt", f"payload is {row.size} bytes, header records {meta.stored_len}")
    elif not check_key(meta, row.key):
        found = ("corrupt", "entry belongs to another key (or predates key binding)")
    elif row.filename is not None:
        found = _check_file(row, meta, s, quick, st)
    elif not quick:
        payload = snap.value_of(row.rowid) or b""
        st.done += len(payload)
        if checksums.digest(meta.checksum, payload) != meta.digest:
            found = ("corrupt", "checksum mismatch")
    if found is None or found is False:
        return found
    assert isinstance(found, tuple)
    kind, detail = found
    return Problem(kind, row.key_text, row.filename, detail, row.rowid, row.store_time, row.size)


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


def _scan(
    snap: index.Snapshot,
    s: CacheSettings,
    quick: bool,
    fraction: float,
    st: _State,
    rng: random.Random,
    counts: dict[str, int],
    problems: list[Problem],
) -> None:
    """Check every (sampled) row of the snapshot until done or out of time."""
    for row in snap.rows():
        if fraction < 1.0 and rng.random() >= fraction:
            continue
        if st.out_of_time():
            break
        before = st.done
        found = _check_row(row, s, snap, quick, st)
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
        if quick:
            st.done += 1
        elif st.done == before:
            st.done += row.size
        st.progress(st.done, st.total)


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
            problems += _models.problems(snap, time.time(), s.temp_grace)  # revisions, blobs
            _scan(snap, s, quick, fraction, st, rng, counts, problems)
        except index.ERRORS as exc:
            index_ok = False
            problems.append(
                Problem("index", None, index.DB_NAME, f"SQLite index is damaged: {exc}")
            )
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
    return int(total * fraction)


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
    Raises UsageError (exit 2) when no chosen cache exists on disk, LockBusyError (exit 3)
    when ``check_lock`` and another process holds a cache's admin lock.
    """
    chosen = targets(manager, cache)
    if not any(index.exists(c.path) for c in chosen):
        where = chosen[0].path if cache is not None and chosen else manager.settings.root
        raise UsageError(f"no cache at {where}: nothing to verify")
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
    return VerifyReport(
        mode="quick" if quick else "full",
        sample_percent=fraction * 100.0,
        max_time=max_time,
        caches=results,
        seconds=seconds,
        checked_bytes=checked,
        bytes_per_second=checked / seconds if seconds > 0 else 0.0,
        complete=all(c.complete for c in results),
        ok=not any(c.problems for c in results),
    )
