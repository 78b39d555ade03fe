"""Sweeps never guess: a folder without an index is not a cache to clean.

``clean`` calls a value file an orphan only when an index says it is not one of its own
entries; without ``cache.db`` every file would be an "orphan", including a project's own
files that happen to have our names. And ``clean --dry-run`` says exactly what ``clean``
then does. All through the real CLI on real folders.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.cli.helpers import cli, run

OLD = time.time() - 2 * 86400  # older than any temp_grace
COUNTS = (
    "expired",
    "expired_bytes",
    "aged_out",
    "aged_out_bytes",
    "evicted",
    "evicted_bytes",
    "stale_tmp",
    "stale_tmp_bytes",
    "orphans",
    "orphan_bytes",
)


def _age(path: Path) -> None:
    os.utime(path, (OLD, OLD))


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the cache's own bookkeeping (index, signals)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _clean(root: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    out = cli("--cache-dir", str(root), "--json", "clean", *extra)
    assert "Traceback" not in out.stderr and "error: unexpected" not in out.stderr
    return out.exit_code, json.loads(out.stdout or "{}"), out.stderr


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    caches = {c["name"]: {k: c[k] for k in COUNTS} for c in report.get("caches", ())}
    return {
        "caches": caches,
        "freed": report.get("freed_bytes"),
        "removed": report.get("removed"),
        "temp_files": report.get("temp_files"),
    }


def _lost_index(tmp_path: Path) -> tuple[Path, Path]:
    """A cache whose value file is old and whose ``cache.db`` was moved away."""
    tmp_path.mkdir(exist_ok=True)
    root = tmp_path / "c"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(100_000))
    assert cli("--cache-dir", str(root), "put", "big", "--file", str(big)).exit_code == 0
    (val,) = (root / "default").rglob("*.val")
    _age(val)
    for name in os.listdir(root / "default"):
        if name.startswith("cache.db"):
            shutil.move(root / "default" / name, tmp_path / name)
    return root, val


def _project(tmp_path: Path) -> Path:
    """An ordinary project folder that happens to have default/ and model/ in it."""
    tmp_path.mkdir(exist_ok=True)
    project = tmp_path / "project"
    val = project / "default" / "ab" / "cd" / ("0" * 28 + ".val")
    tmp = project / "model" / "tmp" / "llamacache-abc.tmp"
    for p in (val, tmp):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"my data")
        _age(p)
    for d in (project, *project.rglob("*")):
        if d.is_dir():
            d.chmod(0o700)
    return project


def _healthy_with_strays(tmp_path: Path) -> Path:
    """A used cache with an old orphan value file and an old temporary."""
    root = tmp_path / "h"
    for i in range(3):
        assert cli("--cache-dir", str(root), "put", f"k{i}", "v" * 50_000).exit_code == 0
    orphan = root / "default" / "ee" / "ff" / ("1" * 28 + ".val")
    orphan.parent.mkdir(parents=True, mode=0o700)
    orphan.write_bytes(b"x" * 1234)
    stale = root / "default" / "tmp" / ("2" * 16 + ".tmp")
    stale.parent.mkdir(exist_ok=True, mode=0o700)
    stale.write_bytes(b"y" * 99)
    for p in (orphan, stale):
        _age(p)
    return root


def test_clean_never_sweeps_a_cache_whose_index_is_gone(tmp_path: Path) -> None:
    root, val = _lost_index(tmp_path)
    before = _files(root)
    for extra in (("--dry-run",), ()):
        code, report, err = _clean(root, *extra)
        assert code == 0, err
        assert report["freed_bytes"] == 0 and report["removed"] == 0
        assert "no index" in err and "default" in err
    assert val.exists()
    assert _files(root) == before
    assert not (root / "default" / "cache.db").exists()  # clean never creates a cache


def test_clean_in_a_project_folder_touches_nothing_and_creates_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path)
    before = _files(project)
    for extra in (("--dry-run",), ()):
        code, report, err = _clean(project, *extra)
        assert code == 0, err
        assert report["removed"] == 0
    assert _files(project) == before  # no CACHEDIR.TAG, no cache.db, nothing removed
    assert sorted(p.name for p in project.iterdir()) == ["default", "model"]


def test_clean_on_a_root_with_no_caches_says_so_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "nothing-here"
    out = run("--cache-dir", str(root), "clean")
    assert out.returncode == 0, out.stderr
    assert b"no caches" in out.stdout + out.stderr
    assert not root.exists()


def test_repair_leaves_a_folder_without_index_alone(tmp_path: Path) -> None:
    root, val = _lost_index(tmp_path)
    before = _files(root)
    for extra in (("--dry-run",), ()):
        out = cli("--cache-dir", str(root), "repair", *extra)
        assert out.exit_code in (0, 1), out.stderr
        assert "Traceback" not in out.stderr
        assert "no index" in out.stderr
    assert _files(root) == before and val.exists()


def test_dry_run_says_exactly_what_clean_does(tmp_path: Path) -> None:
    layouts = {
        "lost-index": _lost_index(tmp_path / "a")[0],
        "project": _project(tmp_path / "b"),
        "strays": _healthy_with_strays(tmp_path / "c"),
        "empty": tmp_path / "d" / "none",
    }
    removed = {}
    for name, root in layouts.items():
        code_dry, dry, _ = _clean(root, "--dry-run")
        before = _files(root) if root.exists() else {}
        code, real, err = _clean(root)
        assert (code_dry, _figures(dry)) == (code, _figures(real)), (name, err)
        after = _files(root) if root.exists() else {}
        gone = sum(1 for k in before if k not in after)
        assert gone == real["removed"], name
        removed[name] = gone
    assert removed == {"lost-index": 0, "project": 0, "strays": 2, "empty": 0}


def test_verify_names_a_cache_whose_index_is_gone(tmp_path: Path) -> None:
    """A CI gate on a cache that lost its index fails and says why, not only "no cache"."""
    root, val = _lost_index(tmp_path)
    before = _files(root)
    done = run("--cache-dir", str(root), "verify")
    assert done.returncode == 2
    assert (
        b"no index" in done.stderr and b"default" in done.stderr and b"Traceback" not in done.stderr
    )
    assert _files(root) == before and val.exists()
