"""Quarantine: keep a damaged entry's bytes and the reason, instead of deleting them.

``<cache dir>/quarantine/<timestamp>-<hex>/`` holds the entry's bytes (a value file is
hard-linked there before its row is deleted, so no copy is made and no reader ever sees
a row whose file has vanished; an inline blob is written out) and ``reason.json``.
People examine it; ``inspect`` counts it; ``rm -r`` of the folder throws it away.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Hashable
from pathlib import Path

DIR_NAME = "quarantine"
REASON = "reason.json"


def quarantine_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / DIR_NAME


def store(
    cache_dir: Path,
    key: Hashable,
    reason: str,
    *,
    file: Path | None = None,
    inline: bytes | None = None,
    expected: bytes | None = None,
    actual: bytes | None = None,
) -> Path:
    """Put one entry's bytes and its reason in a new quarantine folder; returns the folder.

    ``file`` is linked (copied across filesystems), never moved: the caller deletes the
    row afterwards, and the row's deletion removes the original file.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    folder = quarantine_dir(cache_dir) / f"{stamp}-{os.urandom(4).hex()}"
    folder.mkdir(mode=0o700, parents=True)
    saved: str | None = None
    if file is not None and file.exists():
        saved = file.name
        try:
            os.link(file, folder / saved)
        except OSError:
            shutil.copyfile(file, folder / saved)
    elif inline is not None:
        saved = "value.bin"
        (folder / saved).write_bytes(inline)
    body = {
        "key": repr(key),
        "reason": reason,
        "digest_expected": expected.hex() if expected is not None else None,
        "digest_actual": actual.hex() if actual is not None else None,
        "file": saved,
        "when": now,
    }
    (folder / REASON).write_text(json.dumps(body, indent=2) + "\n")
    return folder


def count(cache_dir: Path) -> int:
    """Quarantined entries (folders); one directory listing."""
    try:
        return sum(1 for e in os.scandir(quarantine_dir(cache_dir)) if e.is_dir())
    except FileNotFoundError:
        return 0
