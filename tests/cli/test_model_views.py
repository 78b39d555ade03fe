"""``ModelCache.model_path`` views (``<cache>/snapshots/``) through verify, repair and clean."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from llamacache import ModelCache
from tests.cli.helpers import cli, cli_json, run


def _age(path: Path, seconds: float = 7200.0) -> None:
    """Make a link look old, so clean's age gates would not hide a wrong verdict."""
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_views_are_known_and_only_dangling_links_are_pruned() -> None:
    with ModelCache() as models:
        models.put_model("kept", {"w": np.zeros(8, np.float32)})
        models.put_model("gone", {"w": np.ones(8, np.float32)})
        kept = models.model_path("kept") / "model.safetensors"
        gone = models.model_path("gone") / "model.safetensors"
    for link in (kept, gone):
        assert link.is_symlink()
        _age(link)
    done = cli("verify", "-c", "model")
    assert done.exit_code == 0, done.stdout + done.stderr
    repair = cli_json("repair", "-c", "model", "--dry-run")
    assert [a for c in repair["caches"] for a in c["actions"]] == []
    clean = cli_json("clean", "-c", "model", "--dry-run")
    assert clean["caches"][0]["orphans"] == 0 and clean["removed"] == 0

    with ModelCache() as models:  # evicted: its link now dangles
        models.remove_model("gone")
    assert gone.is_symlink() and not gone.exists()
    assert cli("verify", "-c", "model").exit_code == 0
    clean = cli_json("clean", "-c", "model", "--dry-run")
    assert clean["caches"][0]["orphans"] == 1
    assert gone.is_symlink()  # a dry run removes nothing
    assert run("clean", "-c", "model").returncode == 0
    assert not os.path.lexists(gone)
    assert kept.is_symlink() and kept.exists()  # a live view stays
    with ModelCache() as models:
        assert models.get_model("kept")["w"].shape == (8,)


def test_a_planted_snapshots_link_is_still_a_stray(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    with ModelCache() as models:
        models.put_model("m", {"w": np.zeros(2, np.float32)})
        root = Path(models.cache.settings.path)
    (root / "snapshots").symlink_to(outside, target_is_directory=True)
    done = cli("verify", "-c", "model")
    assert done.exit_code == 1 and "snapshots" in done.stdout
    assert cli("repair", "-c", "model").exit_code == 0
    assert not os.path.lexists(root / "snapshots")
    assert (outside / "precious").read_bytes() == b"keep me"


def test_inspect_page_cache_reports_residency_of_file_entries(tmp_path: Path) -> None:
    """One view: how much of the cached files is in the page cache, measured (mincore), not read."""
    import json
    import os

    from tests.cli.helpers import cli

    src = tmp_path / "shards"
    src.mkdir()
    for i in range(3):
        (src / f"s{i}.bin").write_bytes(os.urandom(200_000))
    assert cli("warm", str(src), "--page-cache").exit_code == 0  # reads them in
    body = json.loads(cli("--json", "inspect", "-c", "model", "--page-cache").stdout)
    pc = body["page_cache"]
    (model,) = pc["caches"]
    assert model["files"] == 3 and model["file_bytes"] == 600_000 and not model["sampled"]
    if pc["available"]:
        assert model["resident_bytes"] == 600_000
    else:
        assert pc["reason"]
    human = cli("inspect", "-c", "model", "--page-cache").stdout
    assert "page cache, model:" in human and "in 3 files" in human
