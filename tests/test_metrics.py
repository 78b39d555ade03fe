"""Metrics on real caches and real processes: merging, crash safety, ghosts, resources."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llamacache import MonitoredCacheManager, ResourceManager
from llamacache.config import resolve, units
from llamacache.config.settings import CacheSettings
from llamacache.engine import TieredCache, metrics, metrics_store
from llamacache.engine.resources import limit_warnings
from llamacache.ops import stats as stats_op

KB = 1024


def settings(path: Path, **kw: object) -> CacheSettings:
    base = CacheSettings(
        name="m", path=path, disk_size=10**9, memory_size=10**8, compression="none",
        durability="none",
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llamacache.engine import TieredCache
    from llamacache.config.settings import CacheSettings
    path, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    s = CacheSettings(name="m", path=path, disk_size=10**9, memory_size=0,
                      compression="none", durability="none")
    with TieredCache(s) as tc:
        for i in range(n):
            tc.put(f"{tag}{i}", b"x" * 100)
        for i in range(n):
            assert tc.get(f"{tag}{i}") == b"x" * 100
            assert tc.get(f"missing-{tag}{i}") is None
    """
)


def test_counters_from_two_processes_add_up(tmp_path: Path) -> None:
    path = tmp_path / "m"
    TieredCache(settings(path)).close()  # create the directory and index once
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(path), tag, str(n)])
        for tag, n in (("a", 300), ("b", 200))
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    c = metrics_store.read(path)
    assert c["disk"]["puts"] == 500
    assert c["disk"]["hits"] == 500
    assert c["disk"]["misses"] == 500
    assert c["memory"]["misses"] == 1000  # every get asks the (disabled) front first
    assert sum(c["latency.put"].get(n, 0) for n in metrics.BUCKET_NAMES) == 500  # every put timed
    assert metrics.hit_rate(c) == pytest.approx(0.5)


_LOOPER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llamacache.engine import TieredCache
    from llamacache.config.settings import CacheSettings
    s = CacheSettings(name="m", path=Path(sys.argv[1]), disk_size=10**9, memory_size=10**7,
                      compression="none", durability="none")
    tc = TieredCache(s)
    tc.metrics.interval = 0.0  # flush on every tick of the metrics thread
    tc.put("k", b"v")
    n = 0
    while True:
        tc.get("k")
        n += 1
        if n % 20000 == 0:
            print(tc.memory.hits, flush=True)
    """
)


def test_kill_9_loses_only_the_unflushed_interval(tmp_path: Path) -> None:
    path = tmp_path / "m"
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOOPER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        seen = int(proc.stdout.readline())  # hits this process had counted at that moment
        deadline = time.monotonic() + 60
        while metrics_store.read(path).get("memory", {}).get("hits", 0) < seen:
            assert time.monotonic() < deadline, "counters were never flushed"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    con = sqlite3.connect(path / metrics_store.DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    stored = metrics_store.read(path)
    hits = stored["memory"]["hits"]
    assert hits >= seen  # everything flushed before the kill is kept
    assert all(isinstance(v, int) and v >= 0 for t in stored.values() for v in t.values())
    # a new process adds to the survivors' counters
    with TieredCache(settings(path)) as tc:
        tc.get("k")
    assert metrics_store.read(path)["memory"]["misses"] >= 1


def test_metrics_off_writes_nothing(tmp_path: Path) -> None:
    with TieredCache(settings(tmp_path / "m"), metrics=False) as tc:
        tc.put("a", b"1")
        for _ in range(200):
            tc.get("a")
    assert metrics_store.read(tmp_path / "m") == {}


def _no_ticks(tc: TieredCache) -> metrics.CacheMetrics:
    """Keep the ticker thread away so the test opens every window itself."""
    m = tc.metrics
    assert m is not None
    m.ticking = False
    tc._sampling, m.window_left = False, 0  # a window the ticker opened in the meantime
    m.get_latency = metrics.Histogram()
    return m


def test_sampling_window_weights_timed_gets_by_the_gets_they_stand_for(tmp_path: Path) -> None:
    with TieredCache(settings(tmp_path / "m")) as tc:
        _no_ticks(tc)
        tc.put("a", b"1")
        for _ in range(160):
            tc.get("a")  # not timed: no window is open
        tc.metrics.open_window()  # what the ticker does every second
        assert tc.metrics.weight == 160 // metrics.WINDOW
        for _ in range(metrics.WINDOW + 5):
            assert tc.get("a") == b"1"
        assert not tc._sampling  # the window closed after WINDOW timed gets
    c = metrics_store.read(tmp_path / "m")
    assert c["latency.get"]["count"] == 160
    assert c["memory"]["hits"] == 160 + metrics.WINDOW + 5
    assert metrics.quantile(c["latency.get"], 0.5) is not None


def test_the_ticker_thread_flushes_without_any_call(tmp_path: Path) -> None:
    tc = TieredCache(settings(tmp_path / "m"))
    assert tc.metrics is not None
    tc.metrics.interval = 0.0
    tc.put("a", b"1")
    tc.get("a")
    deadline = time.monotonic() + 30
    while metrics_store.read(tmp_path / "m").get("memory", {}).get("hits", 0) < 1:
        assert time.monotonic() < deadline, "the ticker never flushed"
        time.sleep(0.05)
    tc.close()


def _ghost_cache(path: Path) -> CacheSettings:
    # file-backed 10 KB values (files dominate the accounting) in a cache with room for ~10
    return settings(path, memory_size=0, policy="fifo", disk_size=150 * KB, file_threshold=KB)


def test_ghost_advice_counts_misses_on_evicted_keys(tmp_path: Path) -> None:
    s = _ghost_cache(tmp_path / "g")
    keys = [f"k{i}" for i in range(30)]
    with TieredCache(s) as tc:
        for k in keys:
            tc.put(k, os.urandom(10 * KB))
        evicted = [k for k in keys if not tc.disk.contains(k)]
    assert 5 <= len(evicted) < 30
    metrics_store.reset(s.path)  # the advice covers the period since the last reset
    with TieredCache(s, metrics=True) as later:  # a later process: ghosts come from the index
        for k in evicted:
            assert later.get(k) is None
        for i in range(7):
            assert later.get(f"never-{i}") is None
        present = [k for k in keys if k not in evicted]
        for k in present:
            assert later.get(k) is not None
    text = stats_op.advice(s)
    n, m = len(evicted), len(evicted) + 7
    assert text is not None and text.startswith(f"{n} of {m} misses")
    assert "2x the disk size" in text
    assert stats_op.advice(tmp_path / "nowhere") is None


def test_expired_entries_are_not_ghosts(tmp_path: Path) -> None:
    s = settings(tmp_path / "e", memory_size=0)
    with TieredCache(s) as tc:
        tc.put("old", b"v", ttl=0.01)
        time.sleep(0.05)
        tc.cleanup()
        assert tc.get("old") is None
    c = metrics_store.read(s.path)
    assert c["disk"]["expirations"] == 1 and c["disk"].get("ghost_hits", 0) == 0


def test_percent_memory_size_resolves_against_psutil(tmp_path: Path) -> None:
    total = psutil.virtual_memory().total
    s = resolve(
        read_files=False,
        env={},
        overrides={"cache.memory.size": "30%", "cache.disk.size": "100PB"},
    )
    assert s.caches["default"].memory_size == int(total * 0.3)
    assert s.caches["default"].pressure_floor == int(total * 0.05)  # default "5%"
    assert s.values["cache.memory.pressure_floor"] == "5%"

    async def probe() -> tuple[int, int, float]:
        async with ResourceManager(tmp_path) as rm:
            return (
                await rm.get_total_memory(),
                await rm.get_available_memory(),
                await rm.get_memory_pressure(),
            )

    got_total, available, pressure = asyncio.run(probe())
    assert got_total == total and 0 < available <= total and 0 <= pressure <= 1
    assert units.parse_size("30%", field="x", kind="memory") == int(total * 0.3)


def test_memory_front_shrinks_under_pressure_and_recovers(tmp_path: Path) -> None:
    everything = psutil.virtual_memory().total  # available is always below this floor
    with TieredCache(settings(tmp_path / "p", pressure_floor=everything)) as tc:
        for i in range(100):
            tc.put(i, b"x" * 1000)
        held = tc.memory.nbytes
        assert tc.check_memory_pressure() > 0
        assert tc.memory.nbytes <= held // 2 and tc.memory.limit <= held // 2
        assert tc.get(5) == b"x" * 1000  # still served, from disk
    with TieredCache(settings(tmp_path / "q", pressure_floor=1)) as tc:  # 1 byte: no pressure
        tc.memory.resize(10)
        assert tc.check_memory_pressure() == 0 and tc.memory.limit == tc.settings.memory_size


def test_limit_warnings_name_the_cache_that_cannot_fit(tmp_path: Path) -> None:
    s = resolve(
        read_files=False,
        env={},
        overrides={"cache.disk.path": str(tmp_path), "caches.huge.size": "100PB"},
    )
    warnings = limit_warnings(s)
    assert any(w.startswith("cache 'huge': disk limit 100 PB exceeds") for w in warnings)
    assert not any("'default'" in w for w in warnings)


def test_prometheus_text_parses_with_the_reference_parser(tmp_path: Path) -> None:
    s = resolve(read_files=False, env={}, overrides={"cache.disk.path": str(tmp_path)})
    with MonitoredCacheManager(s) as cm:
        window = _no_ticks(cm.cache())
        cm.put("a", b"1")
        for _ in range(128):
            cm.get("a")
        window.open_window()  # weight 128 // 16 = 8 per timed get
        for _ in range(metrics.WINDOW):
            cm.get("a")
        cm.get("b")
        report = stats_op.stats(cm)
    families = {f.name: f for f in text_string_to_metric_families(stats_op.prometheus_text(report))}
    hits = {
        sample.labels["tier"]: sample.value
        for sample in families["llamacache_hits"].samples
        if sample.labels["cache"] == "default"
    }
    assert hits["memory"] == 128 + 16
    ratio = families["llamacache_hit_ratio"].samples[0]
    assert ratio.value == pytest.approx(144 / 145)
    hist = families["llamacache_get_latency_seconds"]
    assert hist.type == "histogram"
    inf = [x for x in hist.samples if x.labels.get("le") == "+Inf"][0]
    count = [x for x in hist.samples if x.name.endswith("_count")][0]
    assert inf.value == count.value == 128  # 16 timed gets, weight 8 each


def test_monitored_manager_reports_seed_metrics(tmp_path: Path) -> None:
    s = resolve(read_files=False, env={}, overrides={"cache.disk.path": str(tmp_path)})
    with MonitoredCacheManager(s) as cm:
        cm.put("a", b"x" * 100)
        cm.get("a")
        cm.get("zzz")
        got = asyncio.run(cm.get_metrics())
    assert got["hit_rate"] == pytest.approx(0.5)
    assert got["memory_usage"] == 100
    assert got["eviction_count"] == 0 and got["gets"] == 2
    assert got["caches"]["default"]["hits"] == 1 and got["available_memory"] > 0


def test_get_metrics_is_lifetime_unless_scope_process(tmp_path: Path) -> None:
    s = resolve(read_files=False, env={}, overrides={"cache.disk.path": str(tmp_path)})
    with MonitoredCacheManager(s) as earlier:  # another process, yesterday
        earlier.put("a", b"x")
        earlier.get("a")
        earlier.get("nope")
    with MonitoredCacheManager(s) as cm:
        cm.put("b", b"y")
        cm.get("b")
        lifetime = asyncio.run(cm.get_metrics())
        own = asyncio.run(cm.get_metrics(scope="process"))
        with pytest.raises(ValueError, match="expected"):
            cm.metrics_snapshot("forever")
    assert (lifetime["gets"], lifetime["hits"], lifetime["puts"]) == (3, 2, 2)
    assert lifetime["hit_rate"] == pytest.approx(2 / 3)
    assert (own["gets"], own["hits"], own["puts"], own["hit_rate"]) == (1, 1, 1, 1.0)
    assert set(own["caches"]) == {"default"}


def test_inspect_shows_ghost_advice_and_limit_warning(tmp_path: Path) -> None:
    from llamacache.manager import CacheManager
    from llamacache.ops.inspect import inspect

    s = resolve(
        read_files=False,
        env={},
        overrides={
            "cache.disk.path": str(tmp_path),
            "caches.small.size": "150KB",
            "caches.small.memory_size": 0,
            "caches.small.policy": "fifo",
            "caches.huge.size": "100PB",
        },
    )
    with CacheManager(s) as cm:
        small = cm.cache("small")
        for i in range(30):
            small.put(f"k{i}", os.urandom(40 * KB))  # file-backed: above file_threshold
        evicted = [f"k{i}" for i in range(30) if not small.disk.contains(f"k{i}")]
        for k in evicted:
            small.get(k)
        cm.cache("huge").put("x", b"1")
    assert evicted
    report = inspect(CacheManager(s))
    by = {c.name: c for c in report.caches}
    assert by["small"].advice is not None
    assert by["small"].advice.startswith(f"{len(evicted)} of {len(evicted)} misses")
    assert any("disk limit 100 PB exceeds" in str(w) for w in by["huge"].warnings)
    assert not any("disk limit" in str(w) for w in by["small"].warnings)


def test_a_forked_child_flushes_only_its_own_counts(tmp_path: Path) -> None:
    path = tmp_path / "m"
    with TieredCache(settings(path)) as tc:
        _no_ticks(tc)
        tc.put("a", b"1")
        for _ in range(10):
            tc.get("a")  # counted in the parent, not yet flushed
        pid = os.fork()
        if pid == 0:  # the child: 5 gets of its own, then a normal close
            code = 0
            try:
                for _ in range(5):
                    tc.get("a")
                tc.close()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert metrics_store.read(path)["memory"]["hits"] == 15  # 10 + 5, never 10 twice


def test_inspect_does_not_list_latency_histograms_as_tiers(tmp_path: Path) -> None:
    from llamacache.manager import CacheManager
    from llamacache.ops.inspect import inspect

    s = resolve(read_files=False, env={}, overrides={"cache.disk.path": str(tmp_path)})
    with CacheManager(s) as cm:
        cm.put("a", b"1")  # puts are always timed: latency.put is stored
    (info,) = inspect(CacheManager(s)).caches
    assert [t.tier for t in info.tiers] == ["memory", "disk"]
