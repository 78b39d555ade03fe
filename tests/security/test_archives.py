"""Archives come from elsewhere: private when written, and on restore checked completely,
bounded by what they declare, and never a way to run code unless the user opts in."""

from __future__ import annotations

import base64
import json
import os
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from llamacache.cli.app import State
from llamacache.manager import CacheManager
from llamacache.ops import _archive
from tests.cli.helpers import cli, run
from tests.security.archive_tools import MANIFEST, Repeat, Zeros, members, with_manifest, write
from tests.security.attacks import Plant, evil_pickle

GiB = 1 << 30


def _manager(root: Path) -> CacheManager:
    return State(cache_dir=root).manager()


def _backup(tmp_path: Path, fill: dict[Any, Any], name: str = "a.tar.zst") -> Path:
    src = tmp_path / f"src-{name}"
    with _manager(src) as m:
        c = m.cache("default")
        for k, v in fill.items():
            c.put(k, v)
    out = tmp_path / name
    result = cli("--cache-dir", str(src), "backup", "--to", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _nothing_written(dest: Path) -> None:
    assert not dest.exists() or sorted(p.name for p in dest.iterdir()) == ["CACHEDIR.TAG"]


def test_backup_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = _backup(tmp_path, {"token": "hf_secret"})
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o600


def test_pickled_values_restore_only_with_allow_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    archive = _backup(tmp_path, {"evil": Plant(marker), "plain": b"x"})
    dest = tmp_path / "dest"
    out = run("--cache-dir", str(dest), "restore", str(archive))
    assert out.returncode == 2
    assert "--allow-pickle" in out.stderr.decode() and out.stderr.count(b"\n") == 1
    _nothing_written(dest)
    assert not marker.exists()
    # Opted in: restored, and restore itself still loads no value.
    assert run("--cache-dir", str(dest), "restore", str(archive), "--allow-pickle").returncode == 0
    assert not marker.exists()


def _pickled_key(body: dict[str, Any], marker: Path) -> None:
    row = body["entries"][0]
    row["key_type"], row["key"] = "pickle", base64.b64encode(evil_pickle(marker)).decode()


def test_pickled_manifest_keys_are_never_loaded_while_checking(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    archive = _backup(tmp_path, {"k": b"v", "k2": b"w"})
    items = with_manifest(members(archive), lambda b: _pickled_key(b, marker))
    evil = tmp_path / "evil.tar.zst"
    write(evil, items)
    dest = tmp_path / "dest"
    out = run("--cache-dir", str(dest), "restore", str(evil))
    assert out.returncode == 2 and not marker.exists()
    _nothing_written(dest)
    # With the flag but a payload that fails its checksum: refused before any key is loaded.
    tampered = [
        (i, (bytes([d[0] ^ 1]) + d[1:]) if i.name.endswith("00000002") else d) for i, d in items
    ]
    write(evil, tampered)
    out = run("--cache-dir", str(dest), "restore", str(evil), "--allow-pickle")
    assert out.returncode == 1 and not marker.exists()
    _nothing_written(dest)


def test_one_bad_field_in_row_300_writes_nothing(tmp_path: Path) -> None:
    archive = _backup(tmp_path, {f"k{i:04d}": f"v{i}" for i in range(400)})

    def spoil(body: dict[str, Any]) -> None:
        body["entries"][299]["expire_time"] = "soon"

    bad = tmp_path / "bad.tar.zst"
    write(bad, with_manifest(members(archive), spoil))
    dest = tmp_path / "dest"
    out = run("--cache-dir", str(dest), "restore", str(bad))
    assert out.returncode == 1
    err = out.stderr.decode()
    assert err.count("\n") == 1 and "row 300" in err and "expire_time" in err, err
    _nothing_written(dest)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("member", "../../etc/passwd"),
        ("cache", "elsewhere"),
        ("key_type", "marshal"),
        ("key", None),
        ("meta", "!!"),
        ("size", -1),
        ("size", True),
        ("store_time", "yesterday"),
        ("expire_time", float("nan")),
        ("kind", "pickle"),
    ],
)
def test_every_manifest_field_is_validated(tmp_path: Path, field: str, value: object) -> None:
    archive = _backup(tmp_path, {"a": b"1", "b": "2"})

    def spoil(body: dict[str, Any]) -> None:
        body["entries"][1][field] = value

    bad = tmp_path / "bad.tar.zst"
    write(bad, with_manifest(members(archive), spoil))
    dest = tmp_path / "dest"
    result = cli("--cache-dir", str(dest), "restore", str(bad))
    assert result.exit_code == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "nothing was restored" in result.stderr
    _nothing_written(dest)


def _zero_member(name: str, size: int) -> tuple[tarfile.TarInfo, Any]:
    info = tarfile.TarInfo(name)
    return info, (size, lambda: Zeros(size))


def test_an_undeclared_1gib_zero_member_is_never_staged(tmp_path: Path) -> None:
    archive = _backup(tmp_path, {"a": b"1" * 100, "b": "2"})
    items = members(archive)
    bomb = tmp_path / "bomb.tar.zst"
    write(bomb, [*items[:-2], _zero_member("llamacache-backup/entries/00000099", GiB), *items[-2:]])
    assert bomb.stat().st_size < 100_000  # a small file...
    manifest = _archive.read_manifest(bomb)
    staging = tmp_path / "staging"
    _archive.stage(bomb, staging, manifest)
    assert staging.stat().st_size == manifest.declared_bytes < 1000  # ...that stages little
    dest = tmp_path / "dest"
    assert cli("--cache-dir", str(dest), "restore", str(bomb)).exit_code == 0


def test_a_declared_member_larger_than_declared_is_refused_before_staging(tmp_path: Path) -> None:
    archive = _backup(tmp_path, {"a": b"1" * 100})
    items = members(archive)
    entry = items[0][0].name
    swapped = [_zero_member(entry, GiB) if i.name == entry else (i, d) for i, d in items]
    bomb = tmp_path / "bomb.tar.zst"
    write(bomb, swapped)
    dest = tmp_path / "dest"
    result = cli("--cache-dir", str(dest), "restore", str(bomb))
    assert result.exit_code == 1 and "manifest says" in result.stderr
    _nothing_written(dest)


def test_a_huge_manifest_is_parsed_in_bounded_memory(tmp_path: Path) -> None:
    """3 M rows in a small archive: refused at the first row, never held in memory."""
    archive = _backup(tmp_path, {"a": b"1"})
    items = members(archive)
    body = json.loads({i.name: d for i, d in items}[MANIFEST])
    row = json.dumps(body["entries"][0] | {"member": "llamacache-backup/entries/00000007"})
    head = json.dumps({k: v for k, v in body.items() if k != "entries"})[:-1].encode()
    head += b',"entries":['
    tail = b"]}"
    n = 3_000_000
    size = Repeat.size(head, row.encode(), n, tail)
    info = tarfile.TarInfo(MANIFEST)
    big = [(i, d) for i, d in items if not i.name.startswith(MANIFEST)]
    big.append((info, (size, lambda: Repeat(head, row.encode(), n, tail))))
    hostile = tmp_path / "rows.tar.zst"
    write(hostile, big)
    assert hostile.stat().st_size < 2_000_000
    tracemalloc.start()
    with pytest.raises(_archive.ArchiveError, match="missing"):
        _archive.read_manifest(hostile)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20, peak


def test_the_row_limit_refuses_longer_manifests(tmp_path: Path) -> None:
    archive = _backup(tmp_path, {f"k{i}": b"v" for i in range(5)})
    result = cli("--cache-dir", str(tmp_path / "d"), "restore", str(archive), "--max-entries", "3")
    assert result.exit_code == 1 and "more than 3 entries" in result.stderr
    assert cli("--cache-dir", str(tmp_path / "d"), "restore", str(archive)).exit_code == 0
