"""A model's file bytes leave the cache with the last revision that lists them, whichever
way the revision goes (``evict`` by key, glob, age, size or ``--keep-last``), and ``clean``
collects blobs no manifest lists once they are older than ``temp_grace``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as stn

from llamacache import CacheManager, ModelCache
from tests.cli.helpers import run


def _model(root: Path, seed: int, rows: int = 256) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, 256)).astype(np.float32)
    stn.save_file({"w": w}, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps({"seed": seed}))
    return root


def _blobs() -> set[str]:
    with CacheManager() as m:
        return {str(k) for k in m.cache("model").disk.iter_keys() if str(k).startswith("blobs/")}


def _blob_files(cache_root: Path) -> list[Path]:
    return list((cache_root / "model").rglob("*.val"))


@pytest.mark.parametrize(
    "selector",
    [
        ("--match", "bigm*"),
        ("--key", "bigm@main/.manifest.json"),
        ("--older-than", "0s"),
        ("--to-size", "0B"),
    ],
    ids=lambda s: s[0],
)
def test_evicting_last_revision_removes_its_blobs(
    tmp_path: Path, cache_root: Path, selector: tuple[str, str]
) -> None:
    src = _model(tmp_path / "bigm", 1)
    weights = (src / "model.safetensors").stat().st_size
    assert run("warm", str(src)).returncode == 0
    assert len(_blobs()) == 2
    time.sleep(0.05)
    plan = run("--json", "evict", "-c", "model", *selector, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    body = json.loads(plan.stdout)
    assert body["bytes"] >= weights, body  # the plan counts the weights, not just the manifest
    done = run("--json", "evict", "-c", "model", *selector, "--yes")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["freed_bytes"] >= weights
    assert report["freed_bytes"] == body["bytes"]
    assert _blobs() == set()
    assert _blob_files(cache_root) == []


def test_evict_keeps_blobs_another_revision_lists(tmp_path: Path) -> None:
    a = _model(tmp_path / "a", 1)
    assert run("warm", str(a), "--name", "bigm").returncode == 0
    with CacheManager() as m:  # a second model with the very same weights: shares the blob
        ModelCache(m).put_model("other", a / "model.safetensors")
    weights = _blobs()
    assert len(weights) == 2
    done = run("--json", "evict", "-c", "model", "--match", "bigm*", "--yes")
    assert done.returncode == 0, done.stderr
    left = _blobs()
    assert len(left) == 1 and next(iter(left)).endswith(".safetensors")
    with CacheManager() as m:
        assert "w" in ModelCache(m).get_model("other")


def test_keep_last_zero_removes_blobs(tmp_path: Path) -> None:
    src = _model(tmp_path / "bigm", 1)
    assert run("warm", str(src)).returncode == 0
    done = run("--json", "evict", "-c", "model", "--keep-last", "0", "--yes")
    assert done.returncode == 0, done.stderr
    assert _blobs() == set()


def test_apply_rechecks_listing_under_the_lock(tmp_path: Path) -> None:
    """A plan saved before another revision listed the same bytes keeps them at apply."""
    src = _model(tmp_path / "bigm", 1)
    assert run("warm", str(src)).returncode == 0
    plan = tmp_path / "plan.json"
    saved = run("evict", "-c", "model", "--match", "bigm*", "--plan-out", str(plan))
    assert saved.returncode == 0, saved.stderr
    assert any(e["key"].startswith("blobs/") for e in json.loads(plan.read_text())["entries"])
    with CacheManager() as m:  # meanwhile, another model publishes a manifest with these bytes
        ModelCache(m).put_model("other", src / "model.safetensors")
    done = run("--json", "evict", "-c", "model", "--apply", str(plan), "--yes")
    assert done.returncode == 0, done.stderr
    with CacheManager() as m:
        assert "w" in ModelCache(m).get_model("other")


def test_clean_collects_unlisted_blobs_after_grace(tmp_path: Path, cache_root: Path) -> None:
    src = _model(tmp_path / "bigm", 1)
    assert run("warm", str(src)).returncode == 0
    with CacheManager() as m:  # a manifest gone without its blobs (as main did before)
        m.cache("model").disk.remove("bigm@main/.manifest.json")
    young = run("--json", "clean", "-c", "model")
    assert young.returncode == 0, young.stderr
    assert len(_blobs()) == 2  # younger than temp_grace: a put_model may be publishing
    env = {**os.environ, "LLAMACACHE_MODEL_TEMP_GRACE": "0"}
    import subprocess

    from tests.cli.helpers import llamacache_exe

    dry = subprocess.run(
        [*llamacache_exe(), "--json", "clean", "-c", "model", "--dry-run"],
        capture_output=True, env=env, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert len(_blobs()) == 2
    real = subprocess.run(
        [*llamacache_exe(), "--json", "clean", "-c", "model"],
        capture_output=True, env=env, check=False,
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout)
    weights = (src / "model.safetensors").stat().st_size
    assert done["freed_bytes"] >= weights
    assert planned["freed_bytes"] == done["freed_bytes"]
    assert _blobs() == set()


TRIALS = int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "3"))

_PUBLISHER = """
import sys
from llamacache import CacheManager, ModelCache
with CacheManager() as m:
    mc = ModelCache(m)
    for i in range(int(sys.argv[2])):
        mc.put_model(f"other{i}", sys.argv[1])
"""


def test_evict_beside_put_model_never_leaves_a_manifest_without_its_blob(tmp_path: Path) -> None:
    """Another process publishes revisions listing the same bytes while evict removes the
    last revision that listed them: whatever the interleaving, every manifest left lists
    only blobs the cache still holds (the re-check runs under put_model's lock)."""
    import subprocess
    import sys

    src = _model(tmp_path / "bigm", 1)
    weights = str(src / "model.safetensors")
    for trial in range(TRIALS):
        assert run("warm", str(src)).returncode == 0
        writer = subprocess.Popen([sys.executable, "-c", _PUBLISHER, weights, "4"])
        done = run("--json", "evict", "-c", "model", "--match", "bigm*", "--yes")
        assert writer.wait(timeout=120) == 0
        assert done.returncode == 0, done.stderr
        with CacheManager() as m:
            mc = ModelCache(m)
            for i in range(4):
                assert "w" in mc.get_model(f"other{i}"), (trial, i)
                mc.remove_model(f"other{i}")
        assert _blobs() == set(), trial  # the last revision gone: its bytes too
