"""(4) A really full disk: a small tmpfs, filled by value files and by the SQLite index.

Both ways the failure surfaces (``OSError(ENOSPC)`` from a file write, SQLite's
"database or disk is full") must become one readable line and exit code 1; everything
stored before reads back; once room is freed, puts work again.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from llamacache.errors import DiskFullError

from ._util import Figure, check_value, llamacache_cmd, make_value, open_cache


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*llamacache_cmd(), "--cache-dir", str(root), *args],
        capture_output=True,
        timeout=120,
        check=False,
    )


def assert_one_disk_full_line(done: subprocess.CompletedProcess[bytes]) -> None:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "disk full" in err and "'default'" in err, err


def test_full_disk_by_value_files(
    tmpfs: Callable[[str], Path], tmp_path: Path, figure: Figure
) -> None:
    root = tmpfs("8m") / "root"
    cache = open_cache(root, "default", file_threshold=4096)
    stored = []
    with pytest.raises(DiskFullError) as info:  # OSError(ENOSPC) from the value-file write
        for i in range(1000):
            key = f"k{i}"
            cache.put(key, make_value(key, i, 300_000))
            stored.append(key)
    assert "disk full" in str(info.value)
    assert not list((root / "default" / "tmp").glob("*")), "a failed put left a temp file"
    cache.close()

    big = tmp_path / "big.bin"  # on the real disk: a file that no longer fits in the cache
    big.write_bytes(os.urandom(2 * 2**20))
    done = cli(root, "put", "huge", "--file", str(big))  # the CLI, as a user runs it
    assert_one_disk_full_line(done)

    cache = open_cache(root, "default", file_threshold=4096)
    lost = sum(1 for k in stored if check_value(k, cache.get(k)) is not None)
    figure("stored_before_full", len(stored))
    figure("lost_after_full_disk", lost)
    assert lost == 0
    # free room the way a user would, then puts work again
    removed = cli(root, "rm", *stored[:5])
    assert removed.returncode == 0, removed.stderr
    cache.put("after", make_value("after", 0, 300_000))
    assert check_value("after", cache.get("after")) is None
    cache.close()


def test_full_disk_by_the_index(tmpfs: Callable[[str], Path], figure: Figure) -> None:
    """Inline values only: the SQLite index itself fills the disk ("database or disk is full")."""
    root = tmpfs("6m") / "root"
    cache = open_cache(root, "default")
    stored = []
    with pytest.raises(DiskFullError) as info:
        for i in range(10_000):
            key = f"k{i}"
            cache.put(key, make_value(key, i, 20_000))
            stored.append(key)
    assert "database or disk is full" in str(info.value)
    cache.close()

    done = cli(root, "put", "one-more", "x" * 30_000)
    assert_one_disk_full_line(done)
    cache = open_cache(root, "default")
    lost = sum(1 for k in stored if check_value(k, cache.get(k)) is not None)
    figure("stored_before_index_full", len(stored))
    figure("lost_after_index_full", lost)
    assert lost == 0
    # even with the index's own file filling the disk, removing entries must work
    removed = cli(root, "rm", *stored[:20])
    assert removed.returncode == 0, removed.stderr
    cache.put("after", make_value("after", 0, 20_000))
    assert check_value("after", cache.get("after")) is None
    cache.close()
