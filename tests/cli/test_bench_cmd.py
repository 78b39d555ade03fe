"""`llamacache bench` through the real CLI, with small counts (no timing asserted)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from llamacache.engine import metrics_store
from tests.cli.helpers import cli, cli_json, llamacache_exe

SMALL = ("--keys", "50", "--ops", "300", "--value-size", "1KB")


@pytest.mark.parametrize("workload", ["uniform", "zipf", "scan", "mixed"])
@pytest.mark.parametrize("tier", ["memory", "disk", "local", "tiered"])
def test_each_workload_and_tier_runs(tier: str, workload: str) -> None:
    body = cli_json("bench", "--tier", tier, "--workload", workload, *SMALL)
    assert body["schema"] == "llamacache.bench" and body["cache"] is None
    (res,) = body["results"]
    assert res["kind"] == {"tiered": "local"}.get(tier, tier) and res["ops"] == 300
    assert res["ops_per_s"] > 0 and res["p50"] <= res["p95"] <= res["p99"] <= res["max"]
    assert res["hit_ratio"] == 1.0  # every key was stored first and all fit


def test_compare_runs_the_baselines_and_reports_ratios() -> None:
    body = cli_json("bench", "--compare", "--policy", "lru", "--read-ratio", "1", *SMALL)
    kinds = [r["kind"] for r in body["results"]]
    assert kinds == ["local", "diskcache", "memory", "cachetools"]
    assert body["results"][1]["target"] == "diskcache least-recently-used"
    assert set(body["ratios"]) == {
        "llamacache tiered / diskcache least-recently-used",
        "llamacache memory front / cachetools.LRUCache",
    }


def test_hit_ratio_reflects_a_memory_front_too_small_for_the_keys() -> None:
    body = cli_json(
        "bench", "--tier", "memory", "--workload", "scan", "--memory-size", "20KB",
        "--read-ratio", "1", *SMALL,
    )  # fmt: skip
    assert body["results"][0]["hit_ratio"] < 0.5  # a scan of 50 KB through a 20 KB LRU


def test_two_processes_and_duration() -> None:
    body = cli_json("bench", "--tier", "tiered", "--processes", "2", *SMALL)
    assert body["results"][0]["ops"] == 300
    body = cli_json("bench", "--tier", "memory", "--duration", "0.2", "--keys", "20")
    assert body["spec"]["ops"] is None and body["results"][0]["ops"] > 0


def test_csv_has_a_header_and_one_row_per_target() -> None:
    res = cli("bench", "--csv", "--compare", "--tier", "memory", *SMALL)
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["kind"] for r in rows] == ["memory", "cachetools"]
    assert float(rows[0]["ops_per_s"]) > 0


def test_bench_on_a_named_cache_removes_its_keys(cache_root: Path) -> None:
    assert cli("put", "mine", "keep").exit_code == 0
    body = cli_json("bench", "--cache", "default", "--tier", "tiered", *SMALL)
    assert body["cache"] == "default"
    listed = cli("get", "mine")
    assert listed.exit_code == 0 and listed.stdout == "keep\n"
    from diskcache import Cache

    with Cache(str(cache_root / "default")) as raw:
        assert list(raw) == ["mine"]
    assert metrics_store.read(cache_root / "default")["disk"]["puts"] >= 50


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (("--tier", "network"), "[cache.network] url"),
        (("--tier", "ram"), "--tier"),
        (("--workload", "zipfian"), "--workload"),
        (("--read-ratio", "1.5"), "--read-ratio"),
        (("--value-size", "lots"), "--value-size"),
        (("--keys", "0"), "--keys"),
        (("--processes", "0"), "--processes"),
        (("--policy", "mru"), "--policy"),
        (("--json", "--csv"), "--csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], word: str) -> None:
    res = cli("bench", *args)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.count("\n") == 1 and word in res.stderr and "Traceback" not in res.stderr


def test_bench_subprocess_leaves_no_temporary_cache(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [*llamacache_exe(), "--json", "bench", "--tier", "disk", *SMALL],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["hits"] > 0
    assert list(tmp.iterdir()) == []
