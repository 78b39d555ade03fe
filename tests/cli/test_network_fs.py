"""A cache root on NFS/CIFS/Lustre/GPFS: admin commands warn, writes are refused unless allowed.

No network filesystem can be mounted here, so the mount table llamacache reads
(``engine.safety._mounts``) is made to report the cache root as an nfs4 mount.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llamacache.engine import safety
from tests.cli.helpers import cli


@pytest.fixture
def nfs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0  # made on local disk
    real = safety._mounts

    def mounts() -> list[Any]:
        return [*real(), (str(root), "nfs4")]

    monkeypatch.setattr(safety, "_mounts", mounts)
    return root


def test_admin_commands_warn_and_writes_are_refused(nfs_root: Path) -> None:
    inspected = cli("--cache-dir", str(nfs_root), "inspect")
    assert inspected.exit_code == 0
    assert "nfs4" in inspected.stderr or "network filesystem" in inspected.stderr
    for args in (("clean",), ("put", "k2", "v")):
        result = cli("--cache-dir", str(nfs_root), *args)
        assert result.exit_code == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) >= 1 and "allow_network_fs" in lines[-1]
    assert "Traceback" not in result.stderr


def test_allow_network_fs_opts_in(nfs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACACHE_DISK_ALLOW_NETWORK_FS", "true")
    assert cli("--cache-dir", str(nfs_root), "put", "k2", "v").exit_code == 0
    assert cli("--cache-dir", str(nfs_root), "get", "k2").stdout == "v\n"
