"""The engine owns the storage format: no SQLite, SQL text or entry framing outside engine/.

Issue 12: a second copy of the format in ``ops/`` read, rebuilt and deleted what the
engine wrote, and drifted from it. This greps the package so a new copy cannot creep in.
"""

from __future__ import annotations

import re
from pathlib import Path

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
