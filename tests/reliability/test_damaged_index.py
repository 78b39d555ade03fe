"""A damaged ``cache.db`` is named as damage by every command, never a crash line.

SQLite may notice a bad page only while rows are fetched (not when the file is opened),
so bytes are flipped at many page offsets of a real index and every reading command is
run through the real CLI: the outcome is a clean run or the one "SQLite index is
damaged" line, never "error: unexpected ..." or a traceback. LLAMACACHE_FAULT_TRIALS sets
the number of random flips (default 8, ~3 s); LLAMACACHE_FAULT_SEED picks the layout.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from llamacache import CacheManager
from llamacache.config import resolve
from tests.cli.helpers import cli

TRIALS = int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "8"))
SEED = int(os.environ.get("LLAMACACHE_FAULT_SEED", "2026"))
KEY = "key:00001:" + "k" * 40
COMMANDS = (
    ("ls",),
    ("ls", "--sort", "size"),
    ("inspect",),
    ("stats",),
    ("verify",),
    ("get", KEY),
    ("evict", "--to-size", "0", "--dry-run"),
    ("clean", "--dry-run"),
    ("repair", "--dry-run"),
)
DAMAGE = "SQLite index is damaged"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache whose index spans many pages: inline rows and file-backed ones."""
    base = tmp_path_factory.mktemp("pristine")
    root, src = base / "c", base / "f.bin"
    over = {"cache.disk.path": str(root), "cache.disk.file_threshold": "4096"}
    with CacheManager(resolve(read_files=False, overrides=over)) as m:
        cache = m.cache("default")
        for i in range(400):
            key = f"key:{i:05d}:" + "k" * 40
            if i % 10 == 0:  # a file-backed entry: a value file beside the index
                src.write_bytes(random.Random(i).randbytes(20_000))
                cache.put_file(key, src)
            else:
                cache.put(key, b"v" * (200 + i))
    assert len(list(root.rglob("*.val"))) == 40
    return root


def _damaged_copy(pristine: Path, dest: Path, offset: int, xor: int) -> Path:
    shutil.copytree(pristine, dest)
    db = dest / "default" / "cache.db"
    data = bytearray(db.read_bytes())
    data[offset % len(data)] ^= xor
    db.write_bytes(bytes(data))
    return dest


def _check_commands(root: Path, where: str) -> None:
    for args in COMMANDS:
        result = cli("--cache-dir", str(root), *args)
        err = result.stderr
        assert "error: unexpected" not in err and "Traceback" not in err, (where, args, err)
        assert result.exit_code in (0, 1), (where, args, result.exit_code, err)
        if result.exit_code == 1 and args[0] not in ("get", "verify", "repair"):
            assert DAMAGE in err or "damaged" in err, (where, args, err)


@pytest.mark.parametrize("offset", [16384, 24576])
def test_the_trials_pages_are_reported_as_damage(
    pristine: Path, tmp_path: Path, offset: int
) -> None:
    root = _damaged_copy(pristine, tmp_path / "c", offset, 0x5A)
    _check_commands(root, f"offset {offset}")
    ls = cli("--cache-dir", str(root), "ls")
    assert ls.exit_code == 1 and DAMAGE in ls.stderr


def test_flips_at_many_page_offsets_never_crash(pristine: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    pages = (pristine / "default" / "cache.db").stat().st_size // 4096
    for trial in range(TRIALS):
        offset = rng.randrange(1, pages) * 4096 + rng.choice((0, 1, 3, 5, 8, rng.randrange(4096)))
        xor = rng.randrange(1, 256)
        root = _damaged_copy(pristine, tmp_path / f"t{trial}", offset, xor)
        _check_commands(root, f"seed {SEED} offset {offset} xor {xor:#x}")
        shutil.rmtree(root)


def test_repair_that_cannot_rebuild_says_so_and_loses_nothing(
    pristine: Path, tmp_path: Path
) -> None:
    root = _damaged_copy(pristine, tmp_path / "c", 16384, 0x5A)
    db = root / "default" / "cache.db"
    damaged = db.read_bytes()
    values = sorted(root.rglob("*.val"))
    out = cli("--cache-dir", str(root), "repair")
    assert "error: unexpected" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    if out.exit_code == 1:  # nothing readable: the damaged index stays, one line says so
        (line,) = out.stderr.strip().splitlines()
        assert "left in place" in line and "quarantine" in line, line
        assert db.read_bytes() == damaged
        assert sorted(root.rglob("*.val")) == values
    else:  # rows were salvaged: the rebuilt index lists them
        assert out.exit_code == 0, out.stderr
        listed = cli("--cache-dir", str(root), "--json", "ls")
        assert listed.exit_code == 0 and '"key"' in listed.stdout, listed.stderr
