"""(3) Fault injection at write N, the way SQLite's ioerr loop does it.

A failing syscall cannot be produced on demand, so this is the one place where calls are
replaced: the OS-level calls of the write path (``open(...).write``, ``os.fsync``,
``os.replace``, ``os.remove``) and the SQL write statements sent to SQLite. Our own
functions are never patched. For N = 1, 2, ... the Nth such call fails with ENOSPC or
EIO (or SQLite's matching error) until the operation runs without reaching N. After each
failure: an error from our family naming the cache, earlier entries intact, no partial
entry or temp file, and a retry succeeds.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import llamacache.engine.files as files_module
from llamacache.config import resolve
from llamacache.engine import TieredCache
from llamacache.errors import CacheIOError, DiskFullError, LlamacacheError
from llamacache.manager import CacheManager

from ._util import Figure, check_value, file_rows, make_value, value_files

_WRITE_SQL = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Injector:
    """Counts injectable calls; the ``fail_at``-th one raises instead of running."""

    def __init__(self, fail_at: int, err: int) -> None:
        self.fail_at = fail_at
        self.err = err
        self.calls = 0
        self.fired = False

    def tick(self, what: str) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            self.fired = True
            if what == "sql":
                text = "database or disk is full" if self.err == errno.ENOSPC else "disk I/O error"
                raise sqlite3.OperationalError(text)
            raise OSError(self.err, os.strerror(self.err), what)


class _FaultyFile:
    def __init__(self, f: Any, inj: Injector) -> None:
        self._f, self._inj = f, inj

    def write(self, data: Any) -> int:
        self._inj.tick("write")
        return int(self._f.write(data))

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class _FaultyConnection:
    def __init__(self, con: sqlite3.Connection, inj: Injector) -> None:
        self._con, self._inj = con, inj

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith(_WRITE_SQL):
            self._inj.tick("sql")
        return self._con.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        if sql.lstrip().upper().startswith(_WRITE_SQL):
            self._inj.tick("sql")
        return self._con.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@contextmanager
def faults(cache: TieredCache, inj: Injector, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_open, real_fsync, real_replace, real_remove = open, os.fsync, os.replace, os.remove

    def faulty_open(path: Any, mode: str = "r", *a: Any, **kw: Any) -> Any:
        f = real_open(path, mode, *a, **kw)
        return _FaultyFile(f, inj) if "b" in mode and ("w" in mode or "x" in mode) else f

    def faulty_fsync(fd: int) -> None:
        inj.tick("fsync")
        real_fsync(fd)

    def faulty_replace(src: Any, dst: Any, **kw: Any) -> None:
        inj.tick("replace")
        real_replace(src, dst, **kw)

    def faulty_remove(path: Any, **kw: Any) -> None:
        inj.tick("remove")
        real_remove(path, **kw)

    dc = cache.disk._cache
    real_con = dc._con
    with monkeypatch.context() as m:
        m.setattr(files_module, "open", faulty_open, raising=False)
        m.setattr(os, "fsync", faulty_fsync)
        m.setattr(os, "replace", faulty_replace)
        m.setattr(os, "remove", faulty_remove)
        dc._local.con = _FaultyConnection(real_con, inj)
        try:
            yield
        finally:
            dc._local.con = real_con


def seed(cache: TieredCache) -> dict[str, bytes]:
    earlier = {}
    for i, size in enumerate((100, 2_000, 9_000, 50_000)):
        key = f"earlier{i}"
        earlier[key] = make_value(key, i, size)
        cache.put(key, earlier[key])
    cache.put("expired-inline", b"x" * 100, ttl=0.001)
    cache.put("expired-file", b"y" * 20_000, ttl=0.001)
    time.sleep(0.002)
    return earlier


def leftovers(directory: Path) -> tuple[int, int]:
    """(temp files, value files no index row points at — expired rows count as pointing)."""
    tmp = len(list((directory / "tmp").glob("*"))) if (directory / "tmp").exists() else 0
    referenced = {directory / name for name, _size in file_rows(directory)}
    orphans = sum(1 for p in value_files(directory) if p not in referenced)
    return tmp, orphans


def _put_inline(m: CacheManager, c: TieredCache) -> None:
    c.put("new", make_value("new", 1, 1_000))


def _put_file(m: CacheManager, c: TieredCache) -> None:
    c.put("new", make_value("new", 1, 40_000))


def _put_stream(m: CacheManager, c: TieredCache) -> None:
    import io

    c.put_file("new", io.BytesIO(make_value("new", 1, 300_000)))


def _evict(m: CacheManager, c: TieredCache) -> None:
    c.disk.evict_to(0)


def _clean(m: CacheManager, c: TieredCache) -> None:
    """``llamacache clean``'s op: expire the two expired entries seed() left."""
    from llamacache.ops.clean import clean

    clean(m, "default")


OPERATIONS: dict[str, Callable[[CacheManager, TieredCache], None]] = {
    "clean": _clean,
    "put_inline": _put_inline,
    "put_file": _put_file,
    "put_stream": _put_stream,
    "evict": _evict,
}


def classify(error: BaseException | None, err: int) -> int:
    """1 when a failure did not surface as our error naming the cache, else 0."""
    if error is None:
        # the fault hit a step whose failure is harmless by design (deleting an evicted
        # file after the commit: it stays as an orphan for repair/clean to sweep)
        return 0
    if not isinstance(error, LlamacacheError) or "'default'" not in str(error):
        return 1
    expected = DiskFullError if err == errno.ENOSPC else CacheIOError
    assert isinstance(error, expected), error
    return 0


def damage_after(cache: TieredCache, earlier: dict[str, bytes], op: str) -> tuple[int, int]:
    """(earlier entries lost or damaged, partial/damaged new entries) after a failure."""
    lost = 0
    for key in earlier:
        got = cache.get(key)
        if got is None:
            lost += op != "evict"  # eviction may remove them; it must never damage them
        elif check_value(key, got) is not None:
            lost += 1
    got_new = cache.get("new")
    partial = int(got_new is not None and check_value("new", got_new) is not None)
    return lost, partial


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_fault_at_write_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure, op: str, err: int
) -> None:
    action = OPERATIONS[op]
    failures = unclear = lost = partial = orphans_left = 0
    for n in range(1, 100):
        root = tmp_path / f"n{n}"
        manager = CacheManager(
            resolve(
                read_files=False,
                env={},
                overrides={
                    "cache.disk.path": str(root),
                    "cache.disk.file_threshold": "4KiB",
                    "cache.compression": "none",
                    "cache.disk.temp_grace": "0s",  # repair sweeps after the fault
                },
            )
        )
        cache = manager.cache("default")
        earlier = seed(cache)
        inj = Injector(n, err)
        error: BaseException | None = None
        with faults(cache, inj, monkeypatch):
            try:
                action(manager, cache)
            except BaseException as exc:  # noqa: BLE001 (classified below)
                error = exc
        if not inj.fired:
            assert error is None, error
            manager.close()
            break
        failures += 1
        unclear += classify(error, err)
        lost_n, partial_n = damage_after(cache, earlier, op)
        tmp_files, orphans = leftovers(root / "default")
        lost += lost_n
        partial += partial_n + tmp_files + (orphans if error is not None else 0)
        orphans_left += orphans
        if orphans:  # a failed delete after the commit: repair sweeps what it left
            from llamacache.ops.repair import repair

            repair(manager, "default")
            assert leftovers(root / "default") == (0, 0)
        action(manager, cache)  # the retry succeeds with the fault gone
        if op.startswith("put"):
            assert check_value("new", cache.get("new")) is None
        manager.close()
    else:
        pytest.fail("the operation never completed")
    name = f"{op}_{errno.errorcode[err]}"
    figure(f"faults_{name}", failures)
    figure(f"anomalies_unclear_error_{name}", unclear)
    figure(f"lost_earlier_{name}", lost)
    figure(f"corrupt_partial_{name}", partial)
    figure(f"orphans_after_failed_delete_{name}", orphans_left)
    assert failures >= 1
    assert (unclear, lost, partial) == (0, 0, 0)
