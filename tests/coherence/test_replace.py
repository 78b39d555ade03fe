"""restore --replace under a running process: it notices, reopens, and loses no acknowledged put."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.helpers import run


def test_running_process_follows_restore_replace(tmp_path: Path, cache_root: Path) -> None:
    from llamacache.manager import CacheManager

    archive = tmp_path / "snap.tar"
    with CacheManager() as m:
        c = m.cache("default")
        c.put("k", "archived")
        c.flush()
        assert run("backup", "-c", "default", "--to", str(archive)).returncode == 0
        c.put("k", "newer")
        c.put("only-old", "x")
        assert c.get("k") == "newer"
        folder_before = c.settings.path.stat().st_ino

        done = run("restore", "--replace", "-c", "default", str(archive))
        assert done.returncode == 0, done.stderr
        assert c.settings.path.stat().st_ino != folder_before

        # a put right after the swap lands in the new folder, never in the deleted one
        c.put("after", "kept")
        time.sleep(c.settings.coherence_interval + 0.01)
        assert c.get("k") == "archived"
        assert c.get("only-old") is None
        assert c.reopened == 1
    with CacheManager() as fresh:
        assert fresh.cache("default").get("after") == "kept"
