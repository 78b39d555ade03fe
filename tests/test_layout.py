"""The package's layout: the engine alone owns the storage format (no SQLite, SQL text or
entry framing outside engine/), and the top level holds at most ten parts (issue 18).

Issue 12: a second copy of the format in ``ops/`` read, rebuilt and deleted what the
engine wrote, and drifted from it. This greps the package so a new copy cannot creep in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import llamacache

PACKAGE = Path(llamacache.__file__).parent

# Not moved yet, each named with why; the list only ever shrinks (a test below fails
# when an entry no longer needs to be here, so it is removed when its file is fixed).
ALLOWED: set[str] = set()  # empty: the engine is the only owner of the format

FORBIDDEN = (
    ("sqlite3", re.compile(r"\bsqlite3\b")),
    ("SQL text", re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA)\b")),
    ("framing", re.compile(r"^\s*(from|import)\s+.*\b(framing|netformat)\b", re.MULTILINE)),
)


def offences() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("engine/"):
            continue
        text = path.read_text(encoding="utf-8")
        hits = [name for name, pattern in FORBIDDEN if pattern.search(text)]
        if hits:
            found[rel] = hits
    return found


def test_no_storage_format_outside_the_engine() -> None:
    bad = {rel: hits for rel, hits in offences().items() if rel not in ALLOWED}
    assert bad == {}, f"storage format used outside llamacache/engine/: {bad}"


def test_every_allowed_file_still_needs_to_be_allowed() -> None:
    stale = ALLOWED - set(offences())
    assert stale == set(), f"no longer using the storage format, remove from ALLOWED: {stale}"


def test_the_grep_catches_a_copy_of_the_format(tmp_path: Path) -> None:
    sample = 'import sqlite3\ncon.execute("SELECT tag FROM Cache")\nfrom x import framing\n'
    assert all(pattern.search(sample) for _, pattern in FORBIDDEN)


# The package's top level is the architecture's map (cli -> ops -> manager -> engine, with
# config, ml, formats, monitoring and errors beside them), not a drawer: each entry is a
# part of that map, and a new module goes inside one of them.
TOP_LEVEL = {
    "cli": "parses, calls one op, renders (the only user of typer and rich)",
    "ops": "one function per command, each returning a report",
    "manager": "CacheManager: named caches from the configuration, scheduled cleanup",
    "engine": "the tiers and the only owner of the storage formats; metrics, locks, resources",
    "config": "settings table, config files, resolution, units, redaction",
    "ml": "model and dataset caches above the engine",
    "formats": "file-format validators (safetensors)",
    "monitoring": "the seed's MonitoredCacheManager and CacheMetricsCollector",
    "errors": "every exception and the exit codes",
}
MAX_TOP_LEVEL = 10


def top_level(package: Path) -> set[str]:
    """Modules and packages directly in ``package``, besides __init__ and __main__."""
    names = set()
    for entry in package.iterdir():
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.stem not in ("__init__", "__main__"):
            names.add(entry.stem)
    return names


def test_the_top_level_holds_at_most_ten_modules_and_packages() -> None:
    found = top_level(PACKAGE)
    assert len(found) <= MAX_TOP_LEVEL, f"{len(found)} at the top level: {sorted(found)}"
    assert found == set(TOP_LEVEL), (
        f"new at the top level: {sorted(found - set(TOP_LEVEL))}, "
        f"gone: {sorted(set(TOP_LEVEL) - found)}; place a module inside a part"
    )


def test_the_count_sees_modules_and_packages(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "__main__.py").write_text("")
    for i in range(MAX_TOP_LEVEL):
        (tmp_path / f"m{i}.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "data").mkdir()  # not a package
    assert len(top_level(tmp_path)) == MAX_TOP_LEVEL + 1


def test_public_names_and_documented_import_paths_resolve() -> None:
    """Every name ``llamacache`` exports, and the paths the docs and the seed tell users
    to import from, load after the move (no shim at the top level is needed for them)."""
    import importlib

    for name in llamacache.__all__:
        assert getattr(llamacache, name) is not None, name
    from llamacache.config import CacheConfig, resolve
    from llamacache.monitoring import CacheMetricsCollector, MonitoredCacheManager

    assert callable(resolve) and CacheConfig and CacheMetricsCollector and MonitoredCacheManager
    for old in ("settings", "units", "metrics", "metrics_store", "locking", "resources"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"llamacache.{old}")
