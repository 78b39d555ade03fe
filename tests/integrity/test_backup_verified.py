"""Backup is a read path too: only verified bytes of entries bound to their keys reach an archive.

An archive is a consumer that cannot un-read what it was given (it is copied, mailed,
kept for years), so a damaged, planted or misdirected entry must be left out before any
of its bytes are written, and reported as corrupt (exit 1).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import time
from pathlib import Path

import zstandard

from llamacache.cli.app import State
from llamacache.engine import files
from llamacache.manager import CacheManager
from llamacache.ops import backup as backup_ops
from llamacache.ops import restore as restore_ops
from tests.cli.helpers import run


def _manager(root: Path) -> CacheManager:
    return State(cache_dir=root).manager()


def _members(archive: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with open(archive, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                f = tar.extractfile(member)
                if f is not None:
                    out[member.name] = f.read()
    return out


def _archived_bytes(archive: Path) -> bytes:
    return b"".join(_members(archive).values())


def _flip(path: Path, offset: int) -> None:
    time.sleep(0.02)  # a new mtime tick: the identity check must see a changed file
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x04]))


def test_damaged_entries_never_reach_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big = os.urandom(200_000)
    with _manager(root) as m:
        c = m.cache("default")
        c.put("file", big)
        c.put("inline", b"inline-secret-" * 8)
        c.put("good", b"fine")
        path = c.get_path("file")
    assert path is not None
    _flip(path, 150_000)
    damaged = path.read_bytes()
    con = sqlite3.connect(root / "default" / "cache.db")
    (value,) = con.execute("SELECT value FROM Cache WHERE key = 'inline'").fetchone()
    bad_inline = bytes(value[:-1]) + bytes([value[-1] ^ 1])
    con.execute("UPDATE Cache SET value = ? WHERE key = 'inline'", (bad_inline,))
    con.commit()
    con.close()
    files.forget_verified()
    archive = tmp_path / "b.tar.zst"
    with _manager(root) as m:
        report = backup_ops.backup(m, archive)
    assert sorted(report.corrupt) == ["default: 'file'", "default: 'inline'"]
    assert report.entries == 1
    members = _members(archive)
    entries = [n for n in members if "/entries/" in n]
    assert len(entries) == 1  # only the good entry's payload: nothing unlisted either
    blob = b"".join(members.values())
    assert damaged[140_000:160_000] not in blob and bad_inline not in blob


def test_a_planted_symlink_is_not_followed_into_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = os.urandom(100_000)
    with _manager(root) as m:
        m.cache("default").put("blob", data)
        path = m.cache("default").get_path("blob")
    assert path is not None
    secret = tmp_path / "passwd"
    secret.write_bytes(b"root:x:0:0:" + os.urandom(50_000))
    path.unlink()
    path.symlink_to(secret)
    archive = tmp_path / "b.tar.zst"
    got = run("--json", "--cache-dir", str(root), "backup", "--to", str(archive))
    assert got.returncode == 1, got.stderr
    body = json.loads(got.stdout)
    assert body["entries"] == 0 and body["corrupt"] == ["default: 'blob'"]
    assert secret.read_bytes()[:20_000] not in _archived_bytes(archive)


def test_a_row_moved_to_another_key_is_not_backed_up_under_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with _manager(root) as m:
        m.cache("default").put("user:1001", "secret-of-1001")
    con = sqlite3.connect(root / "default" / "cache.db")
    assert con.execute("UPDATE Cache SET key = 'user:1000' WHERE key = 'user:1001'").rowcount
    con.commit()
    con.close()
    archive = tmp_path / "b.tar.zst"
    with _manager(root) as m:
        report = backup_ops.backup(m, archive)
    assert report.corrupt == ("default: 'user:1000'",) and report.entries == 0
    assert b"secret-of-1001" not in _archived_bytes(archive)


def test_backup_records_no_hits_and_a_restore_checks_again_as_it_stores(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with _manager(root) as m:
        c = m.cache("default")
        for i in range(5):
            c.put(f"k{i}", f"v{i}" * 100)
        c.put("big", os.urandom(300_000))
    archive = tmp_path / "b.tar.zst"
    with _manager(root) as m:
        before = m.cache("default").disk.hits
        assert backup_ops.backup(m, archive).entries == 6
        assert m.cache("default").disk.hits == before
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        report = restore_ops.restore(m, archive)
        assert report.caches[0].entries == 6
        assert m.cache("default").get("k3") == "v3" * 100


def test_import_refuses_a_payload_that_does_not_match_its_header(tmp_path: Path) -> None:
    import pytest

    from llamacache.engine import transfer
    from llamacache.errors import CorruptEntryError

    with _manager(tmp_path / "src") as m:
        m.cache("default").put("small", b"s" * 100)
        m.cache("default").put("large", os.urandom(200_000))
        exported = {
            e.key: (e.meta, e.handle.read())
            for e in transfer.export_entries(m.cache("default").disk)
            if isinstance(e, transfer.ExportedEntry)
        }
    with _manager(tmp_path / "dst") as m:
        disk = m.cache("default").disk
        for key, (meta, payload) in exported.items():
            bad = payload[:-1] + bytes([payload[-1] ^ 1])
            with pytest.raises(CorruptEntryError):
                transfer.import_entry(disk, key, meta, io.BytesIO(bad), len(bad))
            assert disk.get(key) is None
            transfer.import_entry(disk, key, meta, io.BytesIO(payload), len(payload))
        assert m.cache("default").get("small") == b"s" * 100
    assert not any((tmp_path / "dst" / "default" / "tmp").iterdir())
