"""Temp files under the system cache's temp_dir (which `clean` ages out by max_age)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llamacache import CacheManager
from llamacache.ml.system import SystemCache, temp_file


def test_temp_files_live_in_the_private_temp_dir(cache_root: Path) -> None:
    with CacheManager() as manager:
        sc = SystemCache(manager)
        assert sc.temp_dir == cache_root / "system" / ".cache" / "temp"
        assert stat.S_IMODE(sc.temp_dir.stat().st_mode) == 0o700
        assert sc.max_age == 86400.0
        with sc.named_temporary_file(delete=True) as f:
            f.write(b"scratch")
            f.flush()
            assert Path(f.name).parent == sc.temp_dir
            assert Path(f.name) in sc.files()
        assert sc.files() == []
        fd, path = sc.mkstemp(suffix=".bin")
        os.close(fd)
        d = sc.mkdtemp()
        assert {path, d} <= set(sc.files())
        with temp_file(manager, delete=False) as kept:
            pass
        assert Path(kept.name).exists()
