"""inspect, ls, evict and clean through the real CLI on real caches."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamacache.engine import metrics_store
from tests.cli.admin_helpers import fill, manager, snapshot
from tests.cli.helpers import cli, llamacache_exe, run


def _set_times(d: Path, key: str, *, stored: float, accessed: float | None = None) -> None:
    import sqlite3

    con = sqlite3.connect(d / "cache.db")
    con.execute(
        "UPDATE Cache SET store_time = ?, access_time = ? WHERE key = ?",
        (stored, accessed if accessed is not None else stored, key),
    )
    con.commit()
    con.close()


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_json_counters_top_and_reset(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"small": b"x" * 10}, {"big": b"y" * 100_000, "mid": b"z" * 50_000})
    metrics_store.add(d, {("disk", "hits"): 3, ("disk", "misses"): 1, ("memory", "hits"): 5})
    body = json.loads(cli("--cache-dir", str(root), "--json", "inspect", "--top", "2").stdout)
    assert body["schema"] == "llamacache.inspect" and body["schema_version"] == 2
    (c,) = body["caches"]
    tiers = {t["tier"]: t for t in c["tiers"]}
    disk = tiers["disk"]
    assert disk["entries"] == 3 and disk["bytes"] >= 150_010 and disk["limit"] > 0
    assert disk["counters"]["hits"] == 3 and disk["hit_rate"] == 0.75
    assert tiers["memory"]["counters"]["hits"] == 5
    assert [e["key"] for e in c["top"]] == ["big", "mid"]
    assert c["quarantined"] == 0 and c["fs_free"] > 0
    result = cli("--cache-dir", str(root), "inspect", "--reset-stats")
    assert result.exit_code == 0 and "75.0%" in result.stdout
    assert metrics_store.read(d).get("disk", {}).get("hits", 0) == 0


def test_inspect_reads_a_read_only_cache_without_writing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"a": b"1", "b": b"2"})
    before = snapshot(root)
    os.chmod(d, stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = run("--cache-dir", str(root), "--json", "inspect")
        verified = run("--cache-dir", str(root), "verify")
    finally:
        os.chmod(d, stat.S_IRWXU)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["caches"][0]["tiers"][1]["entries"] == 2
    assert verified.returncode == 0, verified.stdout
    assert snapshot(root) == before


def test_inspect_unknown_cache_exits_2(tmp_path: Path) -> None:
    result = cli("--cache-dir", str(tmp_path), "inspect", "-c", "nope")
    assert result.exit_code == 2 and "no cache named 'nope'" in result.stderr


# -- ls -----------------------------------------------------------------------------------------


def test_ls_sort_filter_limit_and_keys_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"tok-a": b"a" * 10, "tok-b": b"b" * 2000, "other": b"o" * 500})
    _set_times(d, "tok-a", stored=time.time() - 40 * 86400)
    body = json.loads(cli("--cache-dir", str(root), "--json", "ls", "--sort", "size").stdout)
    assert body["schema"] == "llamacache.ls"
    assert [e["key"] for e in body["entries"]] == ["tok-b", "other", "tok-a"]
    assert body["entries"][0]["checksum"] == "xxh3" and body["entries"][0]["header_ok"]
    keys = cli("--cache-dir", str(root), "ls", "-q", "--filter", "key~tok*", "--sort", "key:asc")
    assert keys.stdout.splitlines() == ["tok-a", "tok-b"]
    old = cli("--cache-dir", str(root), "ls", "-q", "--filter", "accessed>30d")
    assert old.stdout.splitlines() == ["tok-a"]
    big = cli("--cache-dir", str(root), "ls", "-q", "--filter", "size>100B", "--limit", "1")
    assert big.stdout.splitlines() == ["other"]  # newest stored first by default
    piped = run("--cache-dir", str(root), "ls", "-q", "--sort", "key")
    assert piped.returncode == 0 and piped.stdout.decode().splitlines() == [
        "other",
        "tok-a",
        "tok-b",
    ]


@pytest.mark.parametrize(
    "args", [("--filter", "size>>1"), ("--filter", "color=red"), ("--sort", "speed")]
)
def test_ls_bad_input_exits_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    fill(tmp_path / "root", {"a": b"1"})
    result = cli("--cache-dir", str(tmp_path / "root"), "ls", *args)
    assert result.exit_code == 2 and result.stderr.startswith("llamacache: error:")


# -- evict --------------------------------------------------------------------------------------


def _keys(root: Path) -> set[str]:
    m = manager(root)
    out = {str(k) for k in m.cache("default").disk.iter_keys()}
    m.close()
    return out


def test_evict_selectors_dry_run_and_yes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(
        root,
        {"tok-1": b"1" * 100, "tok-2": b"2" * 100, "keep": b"k" * 100},
        {"huge": b"h" * 200_000},
    )
    _set_times(d, "tok-1", stored=time.time() - 10 * 86400)
    before = snapshot(root)
    dry = cli("--cache-dir", str(root), "--json", "evict", "--match", "tok*", "--dry-run")
    assert {e["key"] for e in json.loads(dry.stdout)["entries"]} == {"tok-1", "tok-2"}
    assert snapshot(root) == before
    no_tty = cli("--cache-dir", str(root), "evict", "--match", "tok*")
    assert no_tty.exit_code == 2 and "pass --yes" in no_tty.stderr
    assert _keys(root) == {"tok-1", "tok-2", "keep", "huge"}
    both = cli("--cache-dir", str(root), "evict", "--match", "tok*", "--older-than", "7d", "-y")
    assert both.exit_code == 0 and "freed 100 bytes in 1 entries" in both.stdout
    large = cli("--cache-dir", str(root), "--json", "evict", "--larger-than", "100KB", "-y")
    assert json.loads(large.stdout)["removed"] == 1
    huge_gone = not any((d / p).exists() for p in ("huge",))
    assert huge_gone and _keys(root) == {"tok-2", "keep"}
    by_key = cli("--cache-dir", str(root), "evict", "--key", "keep", "--yes")
    assert by_key.exit_code == 0 and _keys(root) == {"tok-2"}


def test_evict_to_size_follows_policy_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = {f"f{i}": bytes([i]) * 100_000 for i in range(6)}
    d = fill(root, {}, files, **{"cache.policy": "fifo"})
    now = time.time()
    for i in range(6):  # f0 oldest ... f5 newest
        _set_times(d, f"f{i}", stored=now - 1000 + i, accessed=now - i)
    cfg = tmp_path / "fifo.toml"
    cfg.write_text('[cache]\npolicy = "fifo"\n')
    base = ("--config", str(cfg), "--cache-dir", str(root))
    result = cli(*base, "--json", "evict", "--to-size", "350KB", "--dry-run")
    planned = [e["key"] for e in json.loads(result.stdout)["entries"]]
    assert planned == ["f0", "f1", "f2"]  # store order, not access order
    lru = cli("--cache-dir", str(root), "--json", "evict", "--to-size", "350KB", "--dry-run")
    assert [e["key"] for e in json.loads(lru.stdout)["entries"]][:2] == ["f5", "f4"]
    cli(*base, "evict", "--to-size", "350KB", "-y")
    m = manager(root, **{"cache.policy": "fifo"})
    assert m.cache("default").disk.used_bytes() <= 350_000
    m.close()
    bad = cli("--cache-dir", str(root), "evict", "--to-size", "lots", "-y")
    assert bad.exit_code == 2 and "lots" in bad.stderr


def test_evict_keep_last_revisions(tmp_path: Path) -> None:
    root = tmp_path / "root"
    keys = [f"{m}@{r}/model.safetensors" for m in ("llama", "bert") for r in ("r1", "r2", "r3")]
    d = fill(root, {}, dict.fromkeys(keys, b"w" * 40_000), cache="model")
    now = time.time()
    for k in keys:
        rev = int(k.split("@r")[1][0])
        _set_times(d, k, stored=now - 100 * (4 - rev))
    result = cli(
        "--cache-dir", str(root), "--json", "evict", "-c", "model", "--keep-last", "1", "-y"
    )
    assert result.exit_code == 0
    m = manager(root)
    left = sorted(str(k) for k in m.cache("model").disk.iter_keys())
    m.close()
    assert left == ["bert@r3/model.safetensors", "llama@r3/model.safetensors"]


def test_saved_plan_applies_and_skips_changed_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {"a": b"1" * 50, "b": b"2" * 50, "c": b"3" * 50})
    plan = tmp_path / "plan.json"
    out = cli("--cache-dir", str(root), "evict", "--match", "*", "--plan-out", str(plan))
    assert out.exit_code == 0 and json.loads(plan.read_text())["schema"] == "llamacache.evict-plan"
    assert _keys(root) == {"a", "b", "c"}
    m = manager(root)
    m.cache("default").put("b", b"changed since the plan")
    m.close()
    done = run("--cache-dir", str(root), "--json", "evict", "--apply", str(plan), "--yes")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["schema"] == "llamacache.evict" and body["removed"] == 2
    assert body["skipped"] == ["b"] and _keys(root) == {"b"}
    bad = cli("--cache-dir", str(root), "evict", "--apply", str(tmp_path / "nope.json"), "-y")
    assert bad.exit_code == 2 and "nope.json" in bad.stderr


def test_evict_needs_a_selector_and_a_known_tier(tmp_path: Path) -> None:
    fill(tmp_path / "root", {"a": b"1"})
    for args in ((), ("--match", "*", "--tier", "gpu")):
        result = cli("--cache-dir", str(tmp_path / "root"), "evict", *args, "-y")
        assert result.exit_code == 2 and result.stderr.startswith("llamacache: error:")


# -- clean --------------------------------------------------------------------------------------


def test_clean_expires_sweeps_old_strays_and_keeps_young_ones(tmp_path: Path) -> None:
    root = tmp_path / "root"
    m = manager(root)
    c = m.cache("default")
    c.put("short", b"s" * 10, ttl=0.01)
    c.put("long", b"l" * 10)
    d = c.disk.directory
    m.close()
    time.sleep(0.05)
    old = time.time() - 7200
    (d / "tmp").mkdir(exist_ok=True)
    for name, age in (("old.tmp", old), ("young.tmp", time.time())):
        (d / "tmp" / name).write_bytes(b"t")
        os.utime(d / "tmp" / name, (age, age))
    (d / "ab").mkdir()
    for name, age in (("old.val", old), ("young.val", time.time())):
        (d / "ab" / name).write_bytes(b"o")
        os.utime(d / "ab" / name, (age, age))
    before = snapshot(root)
    dry = json.loads(cli("--cache-dir", str(root), "--json", "clean", "--dry-run").stdout)
    assert dry["dry_run"] and dry["caches"][0]["expired"] == 1
    assert dry["caches"][0]["stale_tmp"] == 1 and dry["caches"][0]["orphans"] == 1
    assert snapshot(root) == before
    body = json.loads(cli("--cache-dir", str(root), "--json", "clean").stdout)
    assert body["schema"] == "llamacache.clean"
    (cc,) = body["caches"]
    assert (cc["expired"], cc["stale_tmp"], cc["orphans"]) == (1, 1, 1)
    assert not (d / "tmp" / "old.tmp").exists() and (d / "tmp" / "young.tmp").exists()
    assert not (d / "ab" / "old.val").exists() and (d / "ab" / "young.val").exists()
    assert _keys(root) == {"long"}
    quiet = cli("--cache-dir", str(root), "clean", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert (
        (root / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )


def test_clean_brings_cache_under_threshold_and_ages_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = {f"f{i}": bytes([i]) * 100_000 for i in range(8)}
    over = {"cache.disk.size": "500KB", "cache.policy": "fifo", "cache.eviction_threshold": 1.0}
    m = manager(root, **{"cache.compression": "none", **over, "cache.disk.size": "100GB"})
    c = m.cache("default")
    for key, data in files.items():
        src = tmp_path / "src"
        src.write_bytes(data)
        c.put_file(key, src)
    m.close()
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[cache]\ndisk_size = "500KB"\npolicy = "fifo"\neviction_threshold = 1.0\n')
    body = json.loads(cli("--config", str(cfg), "--cache-dir", str(root), "--json", "clean").stdout)
    (cc,) = body["caches"]
    assert cc["evicted"] >= 3 and cc["over_limit"] is False
    left = {str(k) for k in manager(root).cache("default").disk.iter_keys()}
    assert "f7" in left and "f0" not in left  # fifo: oldest went first


def _hold_lock(cache_dir: Path, seconds: float) -> subprocess.Popen[bytes]:
    code = (
        "import sys, time; from pathlib import Path\n"
        "from llamacache.engine.locking import admin_lock\n"
        f"with admin_lock(Path({str(cache_dir)!r}), cache='default'):\n"
        "    print('held', flush=True); time.sleep(float(sys.argv[1]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    return proc


def test_two_concurrent_cleans_one_winner_one_busy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {"a": b"1"})
    holder = _hold_lock(d, 120)  # the first clean run, still working until we end it
    try:
        loser = run("--cache-dir", str(root), "clean")
        waiter = subprocess.Popen(
            [*llamacache_exe(), "--cache-dir", str(root), "clean", "--wait", "60s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        evicted = run("--cache-dir", str(root), "evict", "--match", "*", "-y")
        repaired = run("--cache-dir", str(root), "repair")
    finally:
        holder.terminate()  # the kernel drops a dead holder's flock
        holder.wait(timeout=60)
    out, err = waiter.communicate(timeout=120)
    assert loser.returncode == 3, loser.stderr
    assert b"locked by another clean/evict/repair" in loser.stderr
    assert b"Traceback" not in loser.stderr
    assert waiter.returncode == 0, err
    assert evicted.returncode == 3 and repaired.returncode == 3
    assert _keys(root) == {"a"}


def test_memory_tier_plan_covers_this_process_only(tmp_path: Path) -> None:
    from llamacache.ops.evict import Selectors, apply_evict, plan_evict

    root = tmp_path / "root"
    m = manager(root)
    c = m.cache("default")
    c.put("tok-1", b"1")
    c.put("other", b"2")
    plan = plan_evict(m, "default", Selectors(match="tok*"), tier="memory")
    assert [(e.tier, e.key) for e in plan.entries] == [("memory", "tok-1")]
    report = apply_evict(m, plan)
    assert report.removed == 1 and "tok-1" not in c.memory and "tok-1" in c  # disk keeps it
    both = apply_evict(m, plan_evict(m, "default", Selectors(match="tok*"), tier="all"))
    assert both.removed == 1 and "tok-1" not in c
    m.close()
    fresh = manager(root)  # a new process holds no memory front: nothing planned, and a note
    empty = plan_evict(fresh, "default", Selectors(match="*"), tier="memory")
    assert empty.entries == () and "memory front" in empty.notes[0]


def test_clean_ages_out_the_system_temp_dir_and_verify_ignores_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {"s": b"1"}, cache="system")
    system = manager(root).settings.caches["system"]
    assert system.temp_dir is not None and system.max_age is not None
    system.temp_dir.mkdir(parents=True, exist_ok=True)
    old, young = system.temp_dir / "llamacache-old", system.temp_dir / "llamacache-young"
    foreign = system.temp_dir / "notes.txt"  # not a name llamacache makes: never swept
    for p in (old, young, foreign):
        p.write_bytes(b"t" * 10)
    stale = time.time() - system.max_age - 60
    os.utime(old, (stale, stale))
    os.utime(foreign, (stale, stale))
    assert cli("--cache-dir", str(root), "verify", "-c", "system").exit_code == 0
    body = json.loads(cli("--cache-dir", str(root), "--json", "clean").stdout)
    assert body["temp_files"] == 1 and body["temp_bytes"] == 10
    assert not old.exists() and young.exists() and foreign.exists()


def test_to_size_percentage_is_of_the_cache_disk_size(tmp_path: Path) -> None:
    from llamacache.errors import UsageError
    from llamacache.ops.evict import parse_target

    s = manager(tmp_path / "root", **{"cache.disk.size": "1MB"}).settings.caches["default"]
    assert parse_target("35%", s) == 350_000 and parse_target("2KB", s) == 2000
    for bad in ("150%", "x%", "lots"):
        with pytest.raises(UsageError, match="to_size"):
            parse_target(bad, s)


def test_clean_that_cannot_get_under_the_limit_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over budget after a clean (policy "none" never evicts): say which setting to raise."""
    from tests.cli.helpers import cli

    monkeypatch.setenv("LLAMACACHE_DEFAULT_SIZE", "1MB")
    monkeypatch.setenv("LLAMACACHE_DEFAULT_POLICY", "none")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(400_000))  # incompressible
    for i in range(3):
        assert cli("put", f"k{i}", "--file", str(blob)).exit_code == 0
    result = cli("clean")
    assert result.exit_code == 0
    assert "over its limit" in result.stderr
    assert "caches.default.size" in result.stderr and "LLAMACACHE_DEFAULT_SIZE" in result.stderr
