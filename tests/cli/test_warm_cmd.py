"""`llamacache warm` through the real CLI on real folders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as stn

from llamacache import CacheManager, ModelCache
from tests.cli.helpers import cli, cli_json, run


def _model_dir(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    stn.save_file(
        {"w": rng.standard_normal((64, 64)).astype(np.float16)}, str(root / "model.safetensors")
    )
    (root / "config.json").write_text(json.dumps({"seed": seed}))
    (root / "tok").mkdir()
    (root / "tok" / "vocab.txt").write_text("a\nb\n")
    return root


def _hub(root: Path) -> Path:
    """~/.cache/huggingface/hub layout: snapshots/REV/* are symlinks into blobs/."""
    repo = root / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    files = {"config.json": b'{"a": 1}', "model.safetensors": b""}
    src = _model_dir(root / "build")
    files["model.safetensors"] = (src / "model.safetensors").read_bytes()
    for rev in ("1111aaaa", "2222bbbb"):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        for name, data in files.items():
            blob = repo / "blobs" / f"{rev}-{name}.blob"
            blob.write_bytes(data + rev.encode() * (name == "config.json"))
            os.symlink(os.path.relpath(blob, snap), snap / name)
    (repo / "refs" / "main").write_text("2222bbbb")
    return repo


def _keys(cache: str = "model") -> set[str]:
    with CacheManager() as m:
        return {str(k) for k in m.cache(cache).disk.iter_keys()}


def test_folder_then_second_run_skips(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "llama")
    first = cli_json("warm", str(src))
    assert first["schema"] == "llamacache.warm" and first["files"] == 3 and first["skipped"] == 0
    assert first["models"] == ["llama@main"]
    with CacheManager() as m:
        mc = ModelCache(m)
        stored = {mc.entry_key("llama", "main", p) for p in ("model.safetensors", "tok/vocab.txt")}
    assert _keys() >= {"llama@main/.manifest.json", *stored}
    second = cli_json("warm", str(src))
    assert second["files"] == 0 and second["skipped"] == 3
    with CacheManager() as m:
        view = ModelCache(m).model_path("llama")
        assert (view / "config.json").read_bytes() == (src / "config.json").read_bytes()
    (src / "config.json").write_text("{}")  # same key, new bytes: stored again
    third = cli_json("warm", str(src))
    assert third["files"] == 1 and third["skipped"] == 2


def test_files_and_globs_into_a_plain_cache(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        (d / f"part{i}.bin").write_bytes(bytes([i]) * 1000)
    body = cli_json("warm", "-c", "default", str(d / "part0.bin"), str(d / "part[12].bin"))
    assert body["files"] == 3
    assert _keys("default") == {"part0.bin", "part1.bin", "part2.bin"}


def test_manifest_text_and_json(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    (tmp_path / "list.txt").write_text("# weights\nm/model.safetensors\n\nm/config.json\n")
    body = cli_json("warm", "--manifest", str(tmp_path / "list.txt"))
    assert {i["key"] for i in body["items"]} == {"m@main/model.safetensors", "m@main/config.json"}
    (tmp_path / "list.json").write_text(json.dumps({"files": ["m/tok"]}))
    body = cli_json("warm", "-m", str(tmp_path / "list.json"), "--revision", "v2")
    assert [i["key"] for i in body["items"]] == [
        "tok@v2/vocab.txt"
    ]  # a folder is a model named after it
    assert src.exists()


def test_manifest_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    sub = tmp_path / "jobs"
    sub.mkdir()
    (sub / "list.txt").write_text("../secret\n")
    result = cli("warm", "-m", str(sub / "list.txt"))
    assert result.exit_code == 2
    assert "must be a path inside" in result.stderr and "Traceback" not in result.stderr
    (sub / "list.txt").write_text(str(tmp_path / "secret") + "\n")
    assert cli("warm", "-m", str(sub / "list.txt")).exit_code == 2
    assert _keys() == set()


def test_symlink_out_of_a_warmed_folder_is_refused(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    (tmp_path / "outside.txt").write_text("private")
    os.symlink(tmp_path / "outside.txt", src / "leak.txt")
    result = cli("warm", str(src))
    assert result.exit_code == 2 and "outside" in result.stderr
    assert _keys() == set()


def test_hub_layout_imports_revisions_with_the_same_bytes(tmp_path: Path) -> None:
    repo = _hub(tmp_path / "hub")
    body = cli_json("warm", str(tmp_path / "hub"), "--jobs", "2")
    assert sorted(body["models"]) == ["org/tiny@1111aaaa", "org/tiny@2222bbbb"]
    with CacheManager() as m:
        mc = ModelCache(m)
        for rev in ("1111aaaa", "2222bbbb"):
            view = mc.model_path("org/tiny", rev)
            for name in ("config.json", "model.safetensors"):
                assert (view / name).read_bytes() == (repo / "snapshots" / rev / name).read_bytes()
        assert set(mc.get_model("org/tiny", "2222bbbb")) == {"w"}
    only_main = cli_json("warm", str(repo), "--revision", "main")
    assert only_main["models"] == ["org/tiny@2222bbbb"] and only_main["skipped"] == 2


def test_budget_stops_and_leaves_no_complete_revision(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    for i in range(4):
        (src / f"shard{i}.bin").write_bytes(os.urandom(300_000))
    result = cli("--json", "warm", str(src), "--budget", "700KB")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["stopped_at_budget"] and body["files"] < 4 and body["over_budget"] >= 1
    assert body["models"] == []
    assert "big@main/.manifest.json" not in _keys()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    body = cli_json("warm", str(src), "--dry-run")
    assert body["dry_run"] and body["files"] == 3
    assert {i["action"] for i in body["items"]} == {"planned"}
    assert _keys() == set()


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in (("warm", str(tmp_path / "nope")), ("warm",), ("warm", str(tmp_path / "*.zz"))):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert cli("warm", str(tmp_path), "--jobs", "0").exit_code == 2


def test_page_cache_reports_residency(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    body = cli_json("warm", str(src), "--page-cache")
    pc: dict[str, Any] = body["page_cache"]
    assert pc["total_bytes"] == sum(i["bytes"] for i in body["items"])
    if pc["available"]:
        assert pc["resident_after"] == pc["total_bytes"]
    else:
        assert pc["reason"]


def test_warm_as_a_subprocess(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    proc = run("warm", str(src))
    assert proc.returncode == 0, proc.stderr
    assert b"stored 3 files" in proc.stdout
    proc = run("--json", "warm", str(src))
    assert json.loads(proc.stdout)["skipped"] == 3


def test_rewarm_stopped_by_budget_keeps_the_complete_revision(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    assert cli_json("warm", str(src))["models"] == ["m@main"]
    (src / "zz-extra.bin").write_bytes(os.urandom(200_000))
    result = cli("--json", "warm", str(src), "--budget", "100KB")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["files"] == 0 and body["over_budget"] >= 1
    assert body["skipped"] + body["over_budget"] == 4
    with CacheManager() as m:  # the old, complete revision is still served
        assert ModelCache(m).revisions("m") == ["main"]
        assert set(ModelCache(m).get_model("m")) == {"w"}


def _cache_dir(name: str) -> Path:
    with CacheManager() as m:  # settings only: opens no cache
        return Path(m.settings.cache(name).path)


def test_dry_run_creates_no_cache_directory(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "m")
    for cache in ("training", "model"):
        body = cli_json("warm", "-c", cache, str(src), "--dry-run")
        assert body["files"] == 3 and body["skipped"] == 0
        assert not _cache_dir(cache).exists(), cache


def test_dry_run_predicts_the_skips_a_real_run_makes(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "llama")
    cli_json("warm", str(src))
    (src / "config.json").write_text('{"seed": 9}')  # same size, new bytes: stored again
    (src / "new.txt").write_text("new")
    dry = cli_json("warm", str(src), "--dry-run")
    real = cli_json("warm", str(src))
    planned = {i["key"]: i["action"] for i in dry["items"]}
    done = {i["key"]: i["action"].replace("stored", "planned") for i in real["items"]}
    assert planned == done
    assert planned["llama@main/config.json"] == "planned"
    assert planned["llama@main/model.safetensors"] == "skipped"
    assert (dry["files"], dry["skipped"]) == (real["files"], real["skipped"]) == (2, 2)


def test_a_skip_is_not_a_hit_and_keeps_recency(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "llama")
    cli_json("warm", str(src))
    before = {e["key"]: (e["hits"], e["accessed"]) for e in cli_json("ls")["entries"]}
    assert cli_json("warm", str(src))["skipped"] == 3
    assert cli_json("warm", str(src), "--jobs", "2")["skipped"] == 3
    after = {e["key"]: (e["hits"], e["accessed"]) for e in cli_json("ls")["entries"]}
    files = [k for k in before if not k.endswith(".manifest.json")]
    assert files and all(after[k] == before[k] for k in files)


def test_invalid_safetensors_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "llama")
    (src / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}....")
    for args in ((str(src),), (str(src), "--dry-run"), (str(src / "broken.safetensors"),)):
        result = cli("warm", *args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "broken.safetensors: not a valid safetensors file" in result.stderr
    proc = run("warm", str(src))
    assert proc.returncode == 2 and b"broken.safetensors" in proc.stderr
    assert _keys() == set()
    # a cache without a declared format stores any bytes (a raw copy)
    assert cli_json("warm", "-c", "default", str(src))["files"] == 4


def test_a_file_given_by_itself_is_a_model_named_after_it(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "llama")
    one = cli_json("warm", str(src / "model.safetensors"))
    assert one["models"] == ["model@main"]
    assert [i["key"] for i in one["items"]] == ["model@main/model.safetensors"]
    named = cli_json("warm", str(src / "config.json"), "--name", "llama")
    assert [i["key"] for i in named["items"]] == ["llama@main/config.json"]
    globbed = cli_json("warm", str(src / "*.json"))  # a glob's matches: their folder's model
    assert [i["key"] for i in globbed["items"]] == ["llama@main/config.json"]


def _blob(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(n))
    return path


def test_budget_above_the_cache_size_never_wipes_the_cache(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The reported case: a 1 MB model cache, one model warmed, then `warm --budget 1GB`
    of a file that fits the budget but not the cache: it used to evict everything and exit 0."""
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "1MB")
    first = _blob(tmp_path / "small.bin", 400_000)
    assert cli_json("warm", str(first))["models"] == ["small@main"]
    mid = _blob(tmp_path / "mid.bin", 800_000)
    result = cli("--json", "warm", "--budget", "1GB", str(mid))
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["files"] == 0 and body["budget"] <= 1_000_000 and body["models"] == []
    assert "caches.model.size" in result.stderr and "LLAMACACHE_MODEL_SIZE" in result.stderr
    with CacheManager() as m:  # the model warmed before is still served
        mc = ModelCache(m)
        assert mc.revisions("small") == ["main"]
        small = mc.entry_key("small", "main", "small.bin")
    keys = _keys()
    assert keys == {"small@main/.manifest.json", small}  # nothing of "mid"


def test_a_warm_that_does_not_fit_stores_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    """Two models in one run that together exceed the cache: neither evicts the other; the
    run stops before storing and says which setting to raise."""
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "1MB")
    a = _blob(tmp_path / "a.bin", 500_000)
    b = _blob(tmp_path / "b.bin", 500_000)
    result = cli("warm", str(a), str(b))
    assert result.exit_code == 1
    assert "caches.model.size" in result.stderr and "LLAMACACHE_MODEL_SIZE" in result.stderr
    assert _keys() == set()


def test_one_file_larger_than_the_cache_names_the_setting(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "1MB")
    big = _blob(tmp_path / "big.bin", 2_000_000)
    result = cli("warm", str(big))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "caches.model.size" in result.stderr and "LLAMACACHE_MODEL_SIZE" in result.stderr
    dry = cli("warm", "--dry-run", str(big))
    assert dry.exit_code == 1 and "LLAMACACHE_MODEL_SIZE" in dry.stderr
