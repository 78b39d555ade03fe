"""backup -> restore round trips, and archives that must be refused before anything is written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard

from llamacache.cli.app import State
from llamacache.manager import CacheManager
from llamacache.ops import backup as backup_ops
from llamacache.ops import restore as restore_ops
from tests.cli.helpers import cli, run

ARRAY = np.arange(5000, dtype=np.float32).reshape(50, 100)
BIG = {"tokens": list(range(20_000))}  # pickled, compressed, and large enough to be a file


def _manager(root: Path) -> CacheManager:
    return State(cache_dir=root).manager()


def _fill(root: Path, model_file: Path) -> None:
    with _manager(root) as m:
        d = m.cache("default")
        d.put("bytes", b"\x00\x01raw")
        d.put("text", "héllo")
        d.put("array", ARRAY)
        d.put(("tuple", 1), {"a": [1, 2]})
        d.put(b"bytes-key", "v")
        d.put(42, 4.5)
        d.put("big", BIG)
        d.put("ttl", "soon gone", ttl=3600)
        m.cache("model").put_file("llama/model.safetensors", model_file)
        m.cache("training").put("batch:0", np.ones(10))


def _check(root: Path, model_file: Path) -> None:
    with _manager(root) as m:
        d = m.cache("default")
        assert d.get("bytes") == b"\x00\x01raw"
        assert d.get("text") == "héllo"
        np.testing.assert_array_equal(d.get("array"), ARRAY)
        assert d.get(("tuple", 1)) == {"a": [1, 2]}
        assert d.get(b"bytes-key") == "v" and d.get(42) == 4.5
        assert d.get("big") == BIG
        assert d.get("ttl") == "soon gone"
        assert d.disk.describe("ttl").expire_time is not None  # type: ignore[union-attr]
        path = m.cache("model").get_path("llama/model.safetensors")
        assert path is not None and path.read_bytes() == model_file.read_bytes()
        np.testing.assert_array_equal(m.cache("training").get("batch:0"), np.ones(10))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    weights = np.random.default_rng(0).normal(0, 0.02, (300, 250)).astype(np.float16)
    save_file({"w": weights}, str(path))  # a real safetensors file: verify checks its structure
    return path


@pytest.fixture
def archive(tmp_path: Path, model_file: Path) -> Path:
    src = tmp_path / "src"
    _fill(src, model_file)
    out = tmp_path / "caches.tar.zst"
    result = cli("--cache-dir", str(src), "backup", "--to", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            out = []
            for m in tar:
                f = tar.extractfile(m)
                out.append((m, f.read() if f else b""))
            return out


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with (
        open(path, "wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _entries(root: Path) -> dict[str, Any]:
    with _manager(root) as m:
        return {n: sorted(map(repr, m.cache(n).keys())) for n in m.existing_names()}


def test_round_trip_every_kind_into_another_root(
    tmp_path: Path, archive: Path, model_file: Path
) -> None:
    body = json.loads(_members(archive)[-2][1])
    assert body["schema"] == "llamacache.backup-manifest"
    kinds = {e["kind"] for e in body["entries"]}
    assert kinds == {"bytes", "str", "numpy", "pickle", "rawfile"}
    dest = tmp_path / "dest"
    result = cli("--cache-dir", str(dest), "--json", "restore", str(archive), "--allow-pickle")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "llamacache.restore" and report["verified"] == 10
    _check(dest, model_file)
    assert not list(dest.glob(".restore-*"))


def test_restore_into_another_cache_name_and_replace(tmp_path: Path, archive: Path) -> None:
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        m.cache("system").put("stale", "x")
    result = cli(
        "--cache-dir",
        str(dest),
        "restore",
        str(archive),
        "-c",
        "model",
        "--into",
        "system",
        "--replace",
    )
    assert result.exit_code == 0, result.stderr
    assert _entries(dest)["system"] == ["'llama/model.safetensors'"]
    result = cli(
        "--cache-dir", str(dest), "restore", str(archive), "--into", "system", "--allow-pickle"
    )
    assert result.exit_code == 2 and "--cache NAME" in result.stderr


def test_merge_keeps_other_keys(tmp_path: Path, archive: Path) -> None:
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        m.cache("default").put("mine", "kept")
        m.cache("default").put("text", "old")
    assert (
        cli(
            "--cache-dir", str(dest), "restore", str(archive), "--merge", "--allow-pickle"
        ).exit_code
        == 0
    )
    with _manager(dest) as m:
        assert m.cache("default").get("mine") == "kept"
        assert m.cache("default").get("text") == "héllo"


def _tamper(archive: Path, out: Path, *, index: int) -> None:
    members = _members(archive)
    payloads = [i for i, (m, _) in enumerate(members) if "/entries/" in m.name]
    i = payloads[index]
    info, data = members[i]
    members[i] = (info, bytes([data[0] ^ 0xFF]) + data[1:])
    _write(out, members)


@pytest.mark.parametrize("index", [0, -1])
def test_tampered_archive_is_rejected_with_nothing_written(
    tmp_path: Path, archive: Path, index: int
) -> None:
    bad = tmp_path / "bad.tar.zst"
    _tamper(archive, bad, index=index)
    dest = tmp_path / "dest"
    result = cli("--cache-dir", str(dest), "restore", str(bad), "--allow-pickle")
    assert result.exit_code == 1
    assert "failed verification, nothing was restored" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not dest.exists() or sorted(p.name for p in dest.iterdir()) == [
        "CACHEDIR.TAG"
    ]  # no cache, no staging


def test_replace_with_a_corrupt_last_member_leaves_the_old_cache_intact(
    tmp_path: Path, archive: Path
) -> None:
    bad = tmp_path / "bad.tar.zst"
    _tamper(archive, bad, index=-1)
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        m.cache("model").put("old", "weights")
    before = _entries(dest)
    assert (
        cli("--cache-dir", str(dest), "restore", str(bad), "--replace", "--allow-pickle").exit_code
        == 1
    )
    assert _entries(dest) == before


def test_replace_interrupted_while_building_leaves_the_old_cache_intact(
    tmp_path: Path, archive: Path
) -> None:
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        m.cache("default").put("old", "value")
    before = _entries(dest)

    def interrupt(done: int, total: int | None) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with _manager(dest) as m, pytest.raises(KeyboardInterrupt):
        restore_ops.restore(m, archive, mode="replace", progress=interrupt, allow_pickle=True)
    assert _entries(dest) == before
    with _manager(dest) as m:
        assert m.cache("default").get("old") == "value"
    assert not [p for p in dest.iterdir() if p.name.startswith(".restore")]


@pytest.mark.parametrize(
    ("name", "kind", "why"),
    [
        ("../x", tarfile.REGTYPE, "escape"),
        ("llamacache-backup/../../x", tarfile.REGTYPE, "escape"),
        ("/etc/x", tarfile.REGTYPE, "absolute"),
        ("llamacache-backup/entries/00000001", tarfile.SYMTYPE, "link"),
        ("llamacache-backup/entries/00000002", tarfile.CHRTYPE, "device"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, archive: Path, name: str, kind: bytes, why: str
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    bad = tmp_path / "evil.tar.zst"
    _write(bad, [(info, b"owned")] + _members(archive))
    dest = tmp_path / "work" / "dest"
    result = cli("--cache-dir", str(dest), "restore", str(bad), "--allow-pickle")
    assert result.exit_code == 1
    assert f"refusing archive member {name!r}" in result.stderr and why in result.stderr
    assert not (tmp_path / "work" / "x").exists() and not (dest / "x").exists()
    assert not dest.exists() or sorted(p.name for p in dest.iterdir()) == ["CACHEDIR.TAG"]


def test_bad_inputs(tmp_path: Path, archive: Path) -> None:
    result = cli("restore", str(tmp_path / "missing.tar.zst"))
    assert result.exit_code == 2 and "no such backup file" in result.stderr
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"not an archive")
    result = cli("restore", str(junk))
    assert result.exit_code == 1 and "not a readable .tar.zst backup" in result.stderr
    result = cli("restore", str(archive), "--into", "nope", "-c", "model")
    assert result.exit_code == 2 and "nope" in result.stderr
    result = cli("restore", str(archive), "--merge", "--replace")
    assert result.exit_code == 2
    result = cli("backup", "--to", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.stderr
    result = cli("backup", "-c", "nope", "--to", str(tmp_path / "x.tar.zst"))
    assert result.exit_code == 2 and not (tmp_path / "x.tar.zst").exists()


def test_backup_of_an_unused_cache_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = tmp_path / "empty.tar.zst"
    result = cli("--cache-dir", str(root), "--json", "backup", "-c", "model", "--to", str(out))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["entries"] == 0
    assert not (root / "model").exists()
    result = cli("--cache-dir", str(tmp_path / "dest"), "--json", "restore", str(out))
    assert result.exit_code == 0 and json.loads(result.stdout)["verified"] == 0


def test_keys_of_every_type_round_trip() -> None:
    for key in ("k", "../../etc/passwd", b"\xff", 7, 1.5, ("a", 2), frozenset({1})):
        assert backup_ops.decode_key(*backup_ops.encode_key(key)) == key


def test_backup_and_restore_subprocess(tmp_path: Path, model_file: Path) -> None:
    src = tmp_path / "src"
    _fill(src, model_file)
    out = tmp_path / "b.tar.zst"
    done = run("--cache-dir", str(src), "--json", "backup", "--to", str(out))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["schema"] == "llamacache.backup" and body["entries"] == 10
    done = run(
        "--cache-dir", str(tmp_path / "dest"), "restore", str(out), "--replace", "--allow-pickle"
    )
    assert done.returncode == 0, done.stderr
    _check(tmp_path / "dest", model_file)


def test_a_backup_restored_elsewhere_verifies_clean(tmp_path: Path, archive: Path) -> None:
    dest = tmp_path / "elsewhere"
    assert (
        cli(
            "--cache-dir", str(dest), "restore", str(archive), "--replace", "--allow-pickle"
        ).exit_code
        == 0
    )
    result = cli("--cache-dir", str(dest), "--json", "verify")
    assert result.exit_code == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["schema"] == "llamacache.verify"
    checked = {c["name"]: (c["verified"], c["corrupt"], c["orphaned"]) for c in body["caches"]}
    assert checked == {"default": (8, 0, 0), "model": (1, 0, 0), "training": (1, 0, 0)}
    done = run("--cache-dir", str(dest), "verify")
    assert done.returncode == 0, done.stderr


def test_replace_killed_mid_build_leaves_the_old_cache_and_the_next_restore_sweeps(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.cli.helpers import llamacache_exe

    src = tmp_path / "src"
    with _manager(src) as m:
        big = m.cache("default")
        for i in range(300):
            big.put(f"k{i}", os.urandom(40_000))  # file-backed: one fsync each on restore
    out = tmp_path / "big.tar.zst"
    assert cli("--cache-dir", str(src), "backup", "--to", str(out)).exit_code == 0
    dest = tmp_path / "dest"
    with _manager(dest) as m:
        m.cache("default").put("old", "value")
    before = _entries(dest)
    proc = subprocess.Popen(
        [
            *llamacache_exe(),
            "--cache-dir",
            str(dest),
            "restore",
            str(out),
            "--replace",
            "--allow-pickle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(dest.glob(".restore-build-*/cache.db")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("the restore finished before it could be interrupted")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _entries(dest) == before
    with _manager(dest) as m:
        assert m.cache("default").get("old") == "value"
    assert list(dest.glob(".restore-*"))  # the killed run's staging is left behind...
    assert (
        cli(
            "--cache-dir", str(dest), "restore", str(archive_of_one(tmp_path)), "--allow-pickle"
        ).exit_code
        == 0
    )
    assert not list(dest.glob(".restore-*"))  # ...and swept by the next restore


def archive_of_one(tmp_path: Path) -> Path:
    src = tmp_path / "one"
    with _manager(src) as m:
        m.cache("system").put("x", "y")
    out = tmp_path / "one.tar.zst"
    assert cli("--cache-dir", str(src), "backup", "--to", str(out)).exit_code == 0
    return out


def test_online_backup_while_a_writer_overwrites_and_removes(tmp_path: Path) -> None:
    """Entries rewritten and removed during the backup are archived whole or not at all."""
    import os
    import threading

    src = tmp_path / "src"
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with _manager(src) as m:
                c = m.cache("default")
                i = 0
                while not stop.is_set():
                    c.put(f"k{i % 20}", os.urandom(50_000 + i % 7))  # file-backed
                    if i % 5 == 0:
                        c.remove(f"k{(i + 3) % 20}")
                    i += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with _manager(src) as m:
        for i in range(20):
            m.cache("default").put(f"k{i}", os.urandom(50_000))
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        archives = []
        for n in range(3):
            out = tmp_path / f"online{n}.tar.zst"
            with _manager(src) as m:
                report = backup_ops.backup(m, out)
            assert report.corrupt == ()
            archives.append(out)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors
    for n, out in enumerate(archives):
        dest = tmp_path / f"dest{n}"
        with _manager(dest) as m:
            restored = restore_ops.restore(
                m, out, allow_pickle=True
            )  # verifies every payload first
            assert restored.verified == sum(c.entries for c in restored.caches) > 0
