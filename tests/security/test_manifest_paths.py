"""Manifests are data, not paths: a planted model manifest cannot reach outside the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamacache.errors import CorruptEntryError, UsageError
from llamacache.manager import CacheManager
from llamacache.ml.model import ModelCache, check_relpath, read_manifest
from tests.cli.helpers import cli

ESCAPES = [
    "../../../../outside/important.txt",
    "/etc/passwd",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/b/",
    "nul\0byte",
    "back\\slash",
    "",
    ".",
    "..",
    "new\nline",
]


@pytest.mark.parametrize("rel", ESCAPES)
def test_check_relpath_refuses_escapes(rel: str) -> None:
    with pytest.raises(UsageError):
        check_relpath(rel)


def test_planted_manifest_cannot_touch_files_outside_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rel = "../../../../outside/important.txt"
    # where that path would land from <root>/model/snapshots/evil/main
    target = (root / "model" / "snapshots" / "evil" / "main" / rel).resolve()
    target.parent.mkdir(parents=True)
    target.write_text("precious")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"attacker bytes")
    base = ("--cache-dir", str(root))
    assert (
        cli(*base, "put", "-c", "model", f"evil@main/{rel}", "--file", str(payload)).exit_code == 0
    )
    manifest = {
        "model": "evil",
        "revision": "main",
        "created": 0.0,
        "files": [{"path": rel, "size": 14, "digest": "00" * 16}],
    }
    out = cli(*base, "put", "-c", "model", "evil@main/.manifest.json", json.dumps(manifest))
    assert out.exit_code == 0
    manager = CacheManager(env={"LLAMACACHE_DISK_PATH": str(root)})
    with ModelCache(manager) as models:
        with pytest.raises(CorruptEntryError, match="bad manifest"):
            models.model_path("evil")
        with pytest.raises(CorruptEntryError):
            read_manifest(models.cache, "evil", "main")
    manager.close()
    assert target.read_text() == "precious" and not target.is_symlink()
    assert sorted(p.name for p in target.parent.iterdir()) == ["important.txt"]
