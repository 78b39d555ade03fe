"""`llamacache stats` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cli.helpers import cli, cli_json, run


def _traffic() -> None:
    assert cli("put", "a", "1").exit_code == 0
    assert cli("get", "a").exit_code == 0
    assert cli("get", "nope").exit_code == 1


def test_stats_json_has_each_caches_hit_rate() -> None:
    _traffic()
    body = cli_json("stats")
    assert body["schema"] == "llamacache.stats" and body["schema_version"] == 1
    (default,) = [c for c in body["caches"] if c["cache"] == "default"]
    assert default["hit_rate"] == 0.5 and default["gets"] == 2 and default["entries"] == 1


def test_stats_reset_zeroes_the_counters() -> None:
    _traffic()
    body = cli_json("stats", "--reset")
    assert body["reset"] is True and body["caches"][0]["gets"] == 2  # what they were
    again = cli_json("stats", "-c", "default")
    assert again["caches"][0]["gets"] == 0 and again["caches"][0]["hit_rate"] is None


def test_stats_prometheus_to_stdout_and_file(tmp_path: Path) -> None:
    _traffic()
    out = cli("stats", "--prometheus", "-")
    assert out.exit_code == 0
    names = {f.name for f in text_string_to_metric_families(out.stdout)}
    assert {"llamacache_hits", "llamacache_hit_ratio", "llamacache_put_latency_seconds"} <= names
    (tmp_path / "prom").mkdir()
    target = tmp_path / "prom" / "llamacache.prom"
    res = cli("stats", "--prometheus", str(target))
    assert res.exit_code == 0 and "wrote" in res.stderr
    assert list(text_string_to_metric_families(target.read_text()))
    assert [p.name for p in target.parent.iterdir()] == ["llamacache.prom"]  # no temp file left


def test_stats_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = cli("stats", "-c", "nosuch")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "nosuch" in res.stderr
    res = cli("stats", "--prometheus", str(tmp_path / "missing-dir" / "x.prom"))
    assert res.exit_code != 0 and "missing-dir" in res.stderr and "Traceback" not in res.stderr


def test_stats_subprocess() -> None:
    _traffic()
    proc = run("--json", "stats")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["caches"][0]["hit_rate"] == 0.5
