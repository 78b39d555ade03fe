"""(6) A read-only cache directory (a real read-only bind mount).

``inspect`` and ``verify`` work and change nothing; writes fail with one readable line
naming the path and exit 1; nothing is half-written.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._util import Figure, llamacache_cmd, open_cache
from .conftest import can_mount


@pytest.fixture
def ro_root(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable source, read-only bind mount of it)."""
    reason = can_mount()
    if reason:
        pytest.skip(reason)
    src = tmp_path / "src"
    cache = open_cache(src, "default", file_threshold=4096)
    cache.put("small", b"s" * 100)
    cache.put("large", b"L" * 50_000)
    cache.close()
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o700)
    subprocess.run(["mount", "--bind", str(src), str(ro)], check=True)
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"read-only remount not permitted: {remount.stderr!r}")
        yield src, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def fingerprint(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


def test_read_only_mount(ro_root: tuple[Path, Path], figure: Figure) -> None:
    src, ro = ro_root
    before = fingerprint(src)

    def llc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(ro), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    inspect = llc("inspect", "--json")
    verify = llc("verify")
    put = llc("put", "new", "value")
    put_big = llc("put", "new-big", "x" * 60_000)
    unclear = []
    for name, done in (("put", put), ("put big", put_big)):
        err = done.stderr
        if done.returncode != 1 or err.count("\n") != 1 or str(ro) not in err or "Traceback" in err:
            unclear.append(f"{name}: {done.returncode} {err!r}")
    figure("readonly_inspect_exit", inspect.returncode)
    figure("readonly_verify_exit", verify.returncode)
    figure("anomalies_readonly_unclear_write_errors", len(unclear))
    figure("corrupt_readonly_source_changed", int(fingerprint(src) != before))
    assert inspect.returncode == 0, inspect.stderr
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not unclear, unclear
    assert fingerprint(src) == before
