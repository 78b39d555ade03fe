"""One verified read path: nothing unverified leaves the cache, on any way out."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llamacache import CacheManager, CorruptEntryError, ModelCache
from llamacache.engine import files
from tests.cli.helpers import cli, run


@pytest.fixture
def models() -> Iterator[ModelCache]:
    with CacheManager() as manager:
        yield ModelCache(manager)


def _flip(path: Path, offset: int) -> None:
    time.sleep(0.02)  # a new mtime tick: the change must be seen by the identity check
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x04]))


@pytest.mark.parametrize("n", [50_000, 600_000])  # hashed in blocks; hashed through a map
def test_changed_weights_are_never_mapped(models: ModelCache, n: int) -> None:
    assert (n * 4 >= files.MAP_MIN) == (n == 600_000)
    weights = {"w": np.arange(n, dtype=np.float32)}
    models.put_model("m", weights)
    assert np.array_equal(models.get_model("m")["w"], weights["w"])  # verified and remembered
    path = models.cache.get_path(models.entry_key("m", "main", "model.safetensors"))
    assert path is not None
    _flip(path, path.stat().st_size - 100)  # inside the tensor bytes
    for read in (
        lambda: models.get_model("m"),
        lambda: models.get_model("m", mmap=False),
        lambda: models.model_path("m"),
        lambda: models.cache.get_path(models.entry_key("m", "main", "model.safetensors")),
    ):
        files.forget_verified()
        with pytest.raises(CorruptEntryError):
            read()
    _flip(path, path.stat().st_size - 100)  # restored: the same bytes verify again
    files.forget_verified()
    assert np.array_equal(models.get_model("m")["w"], weights["w"])
    _flip(path, path.stat().st_size - 100)  # changed again, memory kept: identity differs
    with pytest.raises(CorruptEntryError):
        models.get_model("m")


def test_repeated_get_model_does_not_rehash(
    models: ModelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    models.put_model("m", {"w": np.ones(1000, np.float32)})
    models.get_model("m")
    calls = []
    real = files.checksums.hasher
    monkeypatch.setattr(files.checksums, "hasher", lambda a: calls.append(a) or real(a))
    for _ in range(5):
        models.get_model("m")
        models.model_path("m")
    assert calls == []


def _file_entry(cache_root: Path, size: int = 200_000) -> tuple[Path, bytes]:
    data = os.urandom(size)
    src = cache_root.parent / "src.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    assert cli("put", "blob", "--file", str(src)).exit_code == 0
    with CacheManager() as m:
        path = m.cache("default").get_path("blob")
    assert path is not None
    return path, data


def test_damaged_file_entry_writes_nothing_to_stdout(cache_root: Path, tmp_path: Path) -> None:
    path, data = _file_entry(cache_root)
    _flip(path, 150_000)
    got = run("get", "blob")
    assert got.returncode == 1 and got.stdout == b""
    assert b"corrupt" in got.stderr and got.stderr.count(b"\n") == 1
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    got = run("get", "blob", "--out", str(out))
    assert got.returncode == 1 and out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize("plant", ["symlink", "fifo", "short", "directory"])
def test_planted_value_file_is_corrupt(cache_root: Path, tmp_path: Path, plant: str) -> None:
    path, data = _file_entry(cache_root)
    path.unlink()
    if plant == "symlink":
        other = tmp_path / "passwd"
        other.write_bytes(data)  # even the very same bytes, behind a link, are refused
        path.symlink_to(other)
    elif plant == "fifo":
        os.mkfifo(path)
    elif plant == "short":
        path.write_bytes(data[:-1])
    else:
        path.mkdir()
    got = run("get", "blob", timeout=30)
    assert got.returncode == 1 and got.stdout == b"", got.stderr
    assert b"corrupt" in got.stderr and b"Traceback" not in got.stderr
    got = run("--json", "get", "blob", timeout=30)
    assert got.returncode == 1 and b'"found": true' not in got.stdout
    with CacheManager() as m:
        cache = m.cache("default")
        for read in (
            lambda: cache.get("blob"),
            lambda: cache.get_path("blob"),
            lambda: cache.open("blob"),
        ):
            with pytest.raises(CorruptEntryError):
                read()


def test_get_out_is_private_and_json_get_of_a_file_entry(cache_root: Path, tmp_path: Path) -> None:
    path, data = _file_entry(cache_root)
    out = tmp_path / "o.bin"
    assert cli("get", "blob", "--out", str(out)).exit_code == 0
    assert out.read_bytes() == data and (out.stat().st_mode & 0o777) == 0o600
    body = json.loads(run("--json", "get", "blob").stdout)
    assert body["found"] is True and body["type"] == "file" and "stream" not in body
