"""A full disk during backup or restore: one line that names the path, nothing half-done."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from llamacache.cli.app import State
from tests.cli.helpers import cli


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    with State(cache_dir=src).manager() as m:
        c = m.cache("default")
        for i in range(8):
            c.put(f"k{i}", os.urandom(200_000))
    return src


def test_backup_to_a_full_disk_names_the_archive(
    tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    small = tmpfs("1m")
    target = small / "caches.tar.zst"
    result = cli("--cache-dir", str(_source(tmp_path)), "backup", "--to", str(target))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and str(target) in result.stderr
    assert "no space" in result.stderr
    assert list(small.iterdir()) == []  # the temporary file is gone too


def test_restore_onto_a_full_disk_names_the_staging_file(
    tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    archive = tmp_path / "caches.tar.zst"
    assert cli("--cache-dir", str(_source(tmp_path)), "backup", "--to", str(archive)).exit_code == 0
    root = tmpfs("1m") / "root"
    result = cli("--cache-dir", str(root), "restore", str(archive))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and str(root) in result.stderr
    assert "no space" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["CACHEDIR.TAG"]
