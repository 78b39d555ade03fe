"""Issue 12 (the engine owns the index) and issue 15 (verify's edges), each as its reproduction.

Real caches on disk, the real CLI in-process; SQL below is the test planting damage the
way a bad disk or another program would, never the code under test.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from llamacache.engine.locking import admin_lock
from tests.cli.admin_helpers import fill, manager
from tests.cli.helpers import cli

BLOB = bytes(range(256)) * 400  # 100 KiB: a file-backed entry


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    result = cli("--json", *args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


# -- one figure for "used" -------------------------------------------------------------------


def test_inspect_stats_and_clean_agree_on_used_bytes_with_leftovers(tmp_path: Path) -> None:
    """Finding: three formulas for used bytes; killed puts' tmp files (and killed backups'
    ``.tmp-PID`` archives) were invisible to inspect while du saw them."""
    root = tmp_path / "root"
    d = fill(root, {f"k{i}": os.urandom(500) for i in range(20)}, {"f": BLOB})
    (d / "tmp").mkdir(exist_ok=True)
    (d / "tmp" / "killed-put.tmp").write_bytes(b"x" * 300_000)
    (d / ".caches.tar.zst.tmp-4242").write_bytes(b"y" * 200_000)
    disk = next(
        t
        for t in _json("--cache-dir", str(root), "inspect")["caches"][0]["tiers"]
        if t["tier"] == "disk"
    )
    used = disk["bytes"]
    stats = _json("--cache-dir", str(root), "stats")["caches"][0]
    dry = _json("--cache-dir", str(root), "clean", "--dry-run")["caches"][0]
    assert used == stats["disk_bytes"] == dry["used_bytes"]
    files = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    assert used >= 500_000 + len(BLOB)  # the leftovers count
    assert used <= files  # and nothing is counted twice
    # young leftovers stay (a live put's); after the grace clean sweeps both kinds
    assert dry["stale_tmp"] == 0
    _age(d / "tmp" / "killed-put.tmp", 3600)
    _age(d / ".caches.tar.zst.tmp-4242", 3600)
    done = _json("--cache-dir", str(root), "clean")["caches"][0]
    assert done["stale_tmp"] == 2 and done["stale_tmp_bytes"] == 500_000
    assert not (d / "tmp" / "killed-put.tmp").exists()
    assert not (d / ".caches.tar.zst.tmp-4242").exists()
    after = next(
        t
        for t in _json("--cache-dir", str(root), "inspect")["caches"][0]["tiers"]
        if t["tier"] == "disk"
    )
    assert after["bytes"] == done["used_bytes"] and after["bytes"] < used - 400_000


def test_temp_grace_is_a_setting_and_held_open_temps_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"a": b"1"})
    (d / "tmp").mkdir(exist_ok=True)
    young = d / "tmp" / "young.tmp"
    held = d / "tmp" / "held.tmp"
    young.write_bytes(b"y")
    held.write_bytes(b"h")
    _age(held, 3600)
    ten_min, zero, bad = (tmp_path / f"{n}.toml" for n in ("ten", "zero", "bad"))
    ten_min.write_text('[cache.disk]\ntemp_grace = "10m"\n')
    zero.write_text('[cache.disk]\ntemp_grace = "0s"\n')
    bad.write_text('[cache.disk]\ntemp_grace = "soon"\n')
    with open(held, "rb"):  # a writer still has it open: never swept, however old
        done = _json("--config", str(ten_min), "--cache-dir", str(root), "clean")["caches"][0]
    assert young.exists() and held.exists() and done["stale_tmp"] == 0
    body = _json("--config", str(zero), "--cache-dir", str(root), "repair")
    assert body["caches"][0]["files_removed"] == 2
    assert not young.exists() and not held.exists()
    refused = cli("--config", str(bad), "--cache-dir", str(root), "clean")
    assert refused.exit_code == 2 and "temp_grace" in refused.stderr


def test_repair_leaves_young_orphans_and_temps_alone(tmp_path: Path) -> None:
    """Finding: repair deleted in-flight temp files and just-renamed value files."""
    root = tmp_path / "root"
    d = fill(root, {"a": b"1"})
    (d / "tmp").mkdir(exist_ok=True)
    (d / "tmp" / "inflight.tmp").write_bytes(b"half")
    (d / "ab").mkdir()
    (d / "ab" / "renamed.val").write_bytes(b"row not committed yet")
    body = _json("--cache-dir", str(root), "repair")
    assert body["caches"][0]["files_removed"] == 0
    assert (d / "tmp" / "inflight.tmp").exists() and (d / "ab" / "renamed.val").exists()


# -- bounds: nothing in an index makes ls / inspect fail ---------------------------------------


def test_ls_and_inspect_survive_any_index_row(tmp_path: Path) -> None:
    """Finding: ``put k v --ttl 1e300`` made ``ls`` fail for the whole cache (OverflowError)."""
    root = tmp_path / "root"
    d = fill(root, {"ok": b"fine", "huge-ttl": b"v"})
    con = sqlite3.connect(d / "cache.db")
    con.execute("UPDATE Cache SET expire_time = 1e300 WHERE key = 'huge-ttl'")
    cols = "key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, value"
    for row in (
        ("nulls", 1, None, None, None, None, None, 0, 1, None),
        ("texts", 1, "x", -1e308, "y", "z", b"\x01\x02", 5, 1, b"12345"),
        ("infinite", 1, 9e999, 9e999, -9e999, 1e300, "text", 3, 1, "abc"),
        (b"\x80bytes", 1, 1.0, 2.0, 3.0, 4, b"", 0, 1, b""),
    ):
        con.execute(f"INSERT INTO Cache({cols}) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
    con.commit()
    con.close()
    base = ("--cache-dir", str(root))
    for args in (
        ("ls",),
        ("ls", "--sort", "expires"),
        ("ls", "--sort", "stored:asc"),
        ("ls", "--filter", "expires>1d"),
        ("inspect", "--top", "10"),
        ("stats",),
    ):
        for mode in ((), ("--json",)):
            result = cli(*base, *mode, *args)
            assert result.exit_code == 0, (args, mode, result.stderr)
            assert "Traceback" not in result.stderr
    listed = _json(*base, "ls")
    assert listed["total"] == 6 and {e["key"] for e in listed["entries"]} >= {"ok", "nulls"}


# -- verify: issue 15 ----------------------------------------------------------------------


def test_verify_with_nothing_to_check_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = cli("--cache-dir", str(missing), "verify")
    assert result.exit_code == 2
    assert result.stderr.startswith("llamacache: error: no cache at ")
    assert str(missing) in result.stderr and result.stderr.count("\n") == 1
    assert not missing.exists()


def test_verify_sample_of_one_entry_checks_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {"only": b"one entry"})
    for _ in range(10):  # a 10% sample of one entry rounds up to that entry
        result = cli("--cache-dir", str(root), "verify", "--sample", "10%")
        assert result.exit_code == 0
        assert "checked 1 of 1" in result.stdout and "10% sample" in result.stdout
        assert "full verify" not in result.stdout
    whole = cli("--cache-dir", str(root), "verify")
    assert "full verify" in whole.stdout


def test_verify_exits_3_while_the_admin_lock_is_held(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"a": b"1"})
    with admin_lock(d, cache="default"):
        # another process holds it: run the real CLI in a subprocess
        import subprocess

        from tests.cli.helpers import llamacache_exe

        done = subprocess.run(
            [*llamacache_exe(), "--cache-dir", str(root), "verify"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3, done.stderr
    assert "locked" in done.stderr and "Traceback" not in done.stderr
    assert cli("--cache-dir", str(root), "verify").exit_code == 0


def test_verify_skips_a_row_rewritten_after_its_snapshot(tmp_path: Path) -> None:
    """Finding: beside writers verify compared a file with a newer row (false mismatches)."""
    from llamacache.engine import index
    from llamacache.ops import verify as verify_ops

    root = tmp_path / "root"
    fill(root, {}, {"f": BLOB})
    m = manager(root)
    s = m.settings.cache("default")
    with index.Snapshot(s.path) as snap:
        (row,) = list(snap.rows())
    c = m.cache("default")
    c.put_file("f", _src(tmp_path, b"new" * 50_000))  # rewritten: the old file is gone
    c.close()
    st = verify_ops._State(deadline=None, progress=lambda d, t: None, total=None)
    problem = verify_ops._check_row(row, s, index.Snapshot(s.path), False, st)
    assert isinstance(problem, index.Problem) and problem.kind == "missing"
    assert verify_ops._confirm(row, problem, s, False, st) is None  # skipped, not corrupt
    m.close()


def _src(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / f"src-{os.urandom(4).hex()}"
    p.write_bytes(data)
    return p


def test_repair_of_an_unreadable_index_never_empties_the_cache(tmp_path: Path) -> None:
    """Finding: a repair left an empty cache.db; the next one deleted every value file as
    an orphan. An index nothing can be salvaged from stays; no value file is touched."""
    root = tmp_path / "root"
    d = fill(root, {}, {f"f{i}": BLOB for i in range(5)})
    old = time.time() - 7200
    vals = sorted(p for p in d.rglob("*.val"))
    for p in vals:
        os.utime(p, (old, old))
    with open(d / "cache.db", "r+b") as f:  # the SQLite header and first page destroyed
        f.write(b"\x00garbage" * 512)
    db_before = (d / "cache.db").read_bytes()
    for _ in range(2):
        result = cli("--cache-dir", str(root), "repair")
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert "left in place" in result.stderr and "Traceback" not in result.stderr
        assert sorted(p for p in d.rglob("*.val") if "quarantine" not in p.parts) == vals
        assert (d / "cache.db").read_bytes() == db_before
    assert cli("--cache-dir", str(root), "verify").exit_code == 1
