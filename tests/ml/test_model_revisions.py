"""Hub revisions without copies, and revision names that resolve like the hub's (issue 16).

The hub folder is built as huggingface_hub lays it out: ``blobs/<sha256>`` holds each file
body once and ``snapshots/<commit>/<name>`` are relative symlinks into ``blobs/``; two
revisions share one real safetensors file and differ in ``config.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as stn

from llamacache import CacheManager, ModelCache
from llamacache.errors import CorruptEntryError, UsageError
from llamacache.ml import NotCachedError
from llamacache.ml.model import manifest_key
from tests.cli.helpers import cli, cli_json

OLD = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
NEW = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c"


def hub_repo(root: Path, n: int = 250_000) -> tuple[Path, int]:
    """A hub repo ``models--org--name`` with two revisions sharing ``model.safetensors``;
    returns it and the size of that shared blob."""
    repo = root / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    weights = root / "weights.safetensors"
    rng = np.random.default_rng(16)
    stn.save_file({"w": rng.standard_normal(n).astype(np.float32)}, str(weights))
    for rev, config in ((OLD, {"v": 1}), (NEW, {"v": 2})):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        for name, data in (
            ("model.safetensors", weights.read_bytes()),
            ("config.json", json.dumps(config).encode()),
        ):
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            os.symlink(os.path.relpath(blob, snap), snap / name)
    (repo / "refs" / "main").write_text(NEW)
    return repo, weights.stat().st_size


def _used(cache: str = "model") -> int:
    """The disk tier's bytes as ``inspect`` reports them."""
    body = cli_json("inspect", "-c", cache)
    (disk,) = [t for t in body["caches"][0]["tiers"] if t["tier"] == "disk"]
    return int(disk["bytes"])


def test_two_revisions_sharing_a_blob_store_its_bytes_once(tmp_path: Path) -> None:
    repo, blob = hub_repo(tmp_path / "hub")
    hub_bytes = sum(p.stat().st_size for p in (repo / "blobs").iterdir())
    dry = cli_json("warm", str(repo), "--dry-run")  # decided as the real run decides
    assert dry["files"] == 3 and dry["skipped"] == 1
    body = cli_json("warm", str(repo), "--jobs", "2")
    assert sorted(body["models"]) == [f"org/name@{OLD}", f"org/name@{NEW}"]
    assert body["files"] == 3 and body["skipped"] == 1  # the second copy is not stored
    used = _used()  # the index file included
    print(f"hub folder blobs {hub_bytes} B, llamacache disk tier {used} B")
    assert used < 1.1 * hub_bytes + 65_536, (used, hub_bytes)  # ~1x the hub folder, not 2x
    assert used < 1.5 * blob
    with CacheManager() as m:
        mc = ModelCache(m)
        a = mc.entry_key("org/name", OLD, "model.safetensors")
        assert a == mc.entry_key("org/name", NEW, "model.safetensors")
        for rev in (OLD, NEW):
            view = mc.model_path("org/name", rev)
            for name in ("model.safetensors", "config.json"):
                assert (view / name).read_bytes() == (repo / "snapshots" / rev / name).read_bytes()
            got = mc.get_model("org/name", rev)["w"]
            assert np.array_equal(
                got,
                stn.load_file(
                    str(
                        repo
                        / "blobs"
                        / Path(os.readlink(repo / "snapshots" / rev / "model.safetensors")).name
                    )
                )["w"],
            )
        # removal frees the bytes only with the last revision that uses them
        mc.remove_model("org/name", OLD)
        assert a in mc.cache and mc.get_model("org/name", NEW)["w"].shape == (250_000,)
        mc.remove_model("org/name", NEW)
        assert a not in mc.cache
    assert _used() < used - blob
    assert cli("verify", "-c", "model").exit_code == 0


def test_put_model_stores_identical_files_once(tmp_path: Path) -> None:
    weights = {"w": np.arange(300_000, dtype=np.float32)}
    with CacheManager() as m:
        mc = ModelCache(m)
        mc.put_model("a", weights, revision="r1")
        one = m.cache("model").disk.used_bytes()
        mc.put_model("a", weights, revision="r2")
        mc.put_model("b", weights)  # another model, same bytes: the same blob
        assert m.cache("model").disk.used_bytes() < one + 4096
        assert np.array_equal(mc.get_model("b")["w"], weights["w"])
        # a replaced revision's old bytes go when nothing else lists them
        mc.put_model("b", {"w": np.ones(300_000, np.float32)})
        mc.put_model("a", {"w": np.ones(300_000, np.float32)}, revision="r1")
        mc.put_model("a", {"w": np.ones(300_000, np.float32)}, revision="r2")
        assert m.cache("model").disk.used_bytes() < one + 4096


def test_model_path_resolves_refs_and_hashes_like_the_hub(tmp_path: Path) -> None:
    repo, _ = hub_repo(tmp_path / "hub")
    assert cli("warm", str(tmp_path / "hub")).exit_code == 0
    with CacheManager() as m:
        mc = ModelCache(m)
        main = mc.model_path("org/name")
        assert main == mc.model_path("org/name", "main") == mc.model_path("org/name", NEW)
        assert main.name == NEW  # the view is the commit's, as the hub's snapshots/ are
        assert json.loads((main / "config.json").read_text()) == {"v": 2}
        assert mc.model_path("org/name", OLD[:7]).name == OLD  # a unique short hash
        assert mc.info("org/name", NEW[:12]).revision == NEW
        assert mc.refs("org/name") == {"main": NEW}
        with pytest.raises(NotCachedError, match="does-not-exist"):
            mc.model_path("org/name", "does-not-exist")
        with pytest.raises(NotCachedError):
            mc.model_path("org/name", "beef")  # hex, but no revision starts with it
        mc.put_model("org/name", {"w": np.zeros(4, np.float32)}, revision="1a2b9999")
        with pytest.raises(UsageError, match="ambiguous"):
            mc.info("org/name", "1a2b")
        # put_model under a ref's name makes that name this revision
        mc.put_model("org/name", {"w": np.zeros(4, np.float32)}, revision="main")
        assert mc.info("org/name").revision == "main" and "main" not in mc.refs("org/name")


def test_warm_moves_main_when_the_hub_ref_moves(tmp_path: Path) -> None:
    repo, _ = hub_repo(tmp_path / "hub")
    assert cli("warm", str(repo), "--revision", "main").exit_code == 0
    (repo / "refs" / "main").write_text(OLD)
    body = cli_json("warm", str(repo), "--revision", "main")
    assert body["models"] == [f"org/name@{OLD}"] and body["skipped"] == 1
    with CacheManager() as m:
        assert ModelCache(m).info("org/name").revision == OLD


def test_warm_an_unknown_revision_is_exit_2_with_one_line(tmp_path: Path) -> None:
    repo, _ = hub_repo(tmp_path / "hub")
    for source in (repo, tmp_path / "hub"):
        out = cli("warm", str(source), "--revision", "does-not-exist")
        assert out.exit_code == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "does-not-exist" in lines[0] and "main" in lines[0], lines
    assert cli("warm", str(repo), "--revision", OLD[:6]).exit_code == 0  # a short hash
    with CacheManager() as m:
        assert ModelCache(m).revisions("org/name") == [OLD]


@pytest.mark.parametrize(
    "row",
    [
        {"checksum": "md5"},  # no such algorithm: names no blob
        {"checksum": "xxh3", "digest": "ab" * 4},  # wrong length for xxh3
        {"digest": "AB" * 16},  # upper case would name another key
    ],
)
def test_manifest_blob_rows_are_validated(tmp_path: Path, row: dict[str, str]) -> None:
    with CacheManager() as m:
        mc = ModelCache(m)
        mc.put_model("m", {"w": np.zeros(4, np.float32)})
        key = manifest_key("m", "main")
        body = json.loads(m.cache("model").get(key))
        body["files"][0].update(row)
        m.cache("model").put(key, json.dumps(body))
        with pytest.raises(CorruptEntryError, match="bad manifest"):
            mc.get_model("m")


def test_evict_keep_last_frees_the_blobs_only_old_revisions_use(tmp_path: Path) -> None:
    shared = {"emb": np.full(50_000, 7, np.float32)}
    with CacheManager() as m:
        mc = ModelCache(m)
        for i, rev in enumerate(("r1", "r2", "r3")):
            mc.put_model("m", {**shared, "w": np.full(60_000, i, np.float32)}, revision=rev)
            mc.put_model("m", _cfg(tmp_path), revision=rev)  # the same file in each
        mc.put_model("other", {**shared, "w": np.full(60_000, 0, np.float32)})  # r1's bytes
        keys = {rev: mc.entry_key("m", rev, "model.safetensors") for rev in ("r1", "r2", "r3")}
        cfg = mc.entry_key("m", "r3", "cfg.json")
    out = cli("--json", "evict", "-c", "model", "--keep-last", "1", "-y")
    assert out.exit_code == 0, out.stderr
    with CacheManager() as m:
        mc = ModelCache(m)
        assert mc.revisions("m") == ["r3"] and mc.revisions("other") == ["main"]
        assert keys["r3"] in mc.cache and cfg in mc.cache
        assert keys["r1"] in mc.cache  # "other" lists the same bytes
        assert keys["r2"] not in mc.cache  # only r2 listed it: freed
        assert mc.get_model("m", "r3")["w"][0] == 2 and mc.get_model("other")["w"][0] == 0
    assert cli("verify", "-c", "model").exit_code == 0


def test_evict_keep_last_drops_the_refs_of_evicted_revisions(tmp_path: Path) -> None:
    """As ``hf cache`` deletes ``refs/<name>`` files with the revisions they point at: after
    ``evict --keep-last``, no ref resolves to a revision whose manifest is gone."""
    with CacheManager() as m:
        mc = ModelCache(m)
        for i, rev in enumerate(("r1", "r2", "r3")):
            mc.put_model("m", {"w": np.full(1000, i, np.float32)}, revision=rev)
        mc.put_model("other", {"w": np.zeros(10, np.float32)}, revision="r1")
        mc.set_ref("m", "stable", "r1")
        mc.set_ref("m", "beta", "r2")
        mc.set_ref("m", "latest", "r3")
        mc.set_ref("other", "stable", "r1")  # another model's revision of the same name
    plan = cli_json("evict", "-c", "model", "--keep-last", "1", "--dry-run")
    planned = {e["key"] for e in plan["entries"]}
    assert {"m@stable/.ref", "m@beta/.ref"} <= planned  # shown before anything is removed
    assert not planned & {"m@latest/.ref", "other@stable/.ref"}
    assert cli("evict", "-c", "model", "--keep-last", "1", "-y").exit_code == 0
    with CacheManager() as m:
        mc = ModelCache(m)
        assert mc.revisions("m") == ["r3"]
        assert mc.refs("m") == {"latest": "r3"} and mc.refs("other") == {"stable": "r1"}
        assert mc.get_model("m", "latest")["w"][0] == 2
        assert mc.get_model("other", "stable")["w"][0] == 0
        for ref in ("stable", "beta"):
            with pytest.raises(NotCachedError):
                mc.info("m", ref)
    assert cli("verify", "-c", "model").exit_code == 0


def _cfg(tmp_path: Path) -> Path:
    (tmp_path / "cfg.json").write_text('{"same": true}')
    return tmp_path / "cfg.json"


def _age(cache_dir: Path, key: str, seconds: float) -> None:
    """Make ``key`` look stored ``seconds`` ago (the index row's store time)."""
    import sqlite3
    import time

    con = sqlite3.connect(cache_dir / "cache.db")
    con.execute("UPDATE Cache SET store_time = ? WHERE key = ?", (time.time() - seconds, key))
    con.commit()
    con.close()


def test_verify_and_repair_understand_revisions_and_blobs(tmp_path: Path) -> None:
    shared = {"emb": np.full(40_000, 1, np.float32)}
    with CacheManager() as m:
        mc = ModelCache(m)
        mc.put_model("m", {**shared, "w": np.zeros(10, np.float32)}, revision="r1")
        mc.put_model("m", _cfg(tmp_path), revision="r1")
        mc.put_model("m", _cfg(tmp_path), revision="r2")
        weights = mc.entry_key("m", "r1", "model.safetensors")
        mc.put_model("n", {"w": np.ones(30_000, np.float32)})
        loose = mc.entry_key("n", "main", "model.safetensors")
        mc.cache.remove(manifest_key("n", "main"))  # as if a put died before its manifest
        directory = mc.cache.settings.path
    assert cli("verify", "-c", "model").exit_code == 0  # a young loose blob: a put may be busy
    _age(directory, loose, 7200)
    with CacheManager() as m:
        m.cache("model").remove(weights)  # as if evicted: r1 can no longer load
    out = cli("--json", "verify", "-c", "model")
    assert out.exit_code == 1, out.stderr
    body = json.loads(out.stdout)
    kinds = {(p["kind"], p["key"]) for p in body["caches"][0]["problems"]}
    assert kinds == {("incomplete", manifest_key("m", "r1")), ("unreferenced", loose)}
    assert cli("repair", "-c", "model").exit_code == 0
    assert cli("verify", "-c", "model").exit_code == 0
    with CacheManager() as m:
        mc = ModelCache(m)
        assert mc.revisions("m") == ["r2"] and loose not in mc.cache
        assert json.loads((mc.model_path("m", "r2") / "cfg.json").read_text()) == {"same": True}


def test_a_revision_stored_before_blobs_still_loads_and_is_removed(tmp_path: Path) -> None:
    """Manifest rows without a checksum name the old per-revision entry."""
    src = tmp_path / "old.safetensors"
    stn.save_file({"w": np.arange(8, dtype=np.float32)}, str(src))
    with CacheManager() as m:
        cache = m.cache("model")
        meta = cache.put_file("old@main/model.safetensors", src)
        row = {"path": "model.safetensors", "size": meta.raw_len, "digest": meta.digest.hex()}
        body = {"model": "old", "revision": "main", "created": 1.0, "files": [row]}
        cache.put(manifest_key("old", "main"), json.dumps(body))
        mc = ModelCache(m)
        assert mc.entry_key("old", None, "model.safetensors") == "old@main/model.safetensors"
        assert mc.get_model("old")["w"].tolist() == list(range(8))
        assert mc.remove_model("old") == 2 and len(cache) == 0


def test_putting_the_same_folder_again_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    stn.save_file({"w": np.ones(100_000, np.float32)}, str(src / "model.safetensors"))
    (src / "config.json").write_text("{}")
    with CacheManager() as m:
        mc = ModelCache(m)
        mc.put_model("m", src)
        disk = m.cache("model").disk
        puts = disk.puts
        mc.put_model("m", src)
        assert disk.puts - puts == 1  # the manifest only: both files were found as blobs
        assert mc.get_model("m")["w"].shape == (100_000,)
