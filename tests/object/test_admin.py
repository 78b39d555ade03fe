"""inspect, ls, verify, evict and clean with --tier object, through the real CLI (moto's
loopback server stands in for a real S3 endpoint, see conftest.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import obstore
from typer.testing import CliRunner

from llamacache.cli.app import app
from llamacache.engine.objectstore import ObjectTier
from tests.object.conftest import S3
from tests.object.helpers import MB, machine, subprocess_env

runner = CliRunner()


def _cli(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _tier(m: Any) -> ObjectTier:
    tier = m.cache("model").lower[-1]
    assert isinstance(tier, ObjectTier)
    return tier


def _fill(tmp_path: Path, s3: S3) -> dict[str, bytes]:
    values = {"a/one": os.urandom(2 * MB), "a/two": os.urandom(3 * MB), "b/three": os.urandom(MB)}
    with machine(tmp_path / "A", s3.settings) as a:
        for key, value in values.items():
            a.cache("model").put(key, value)
    return values


def test_inspect_ls_verify(tmp_path: Path, s3: S3) -> None:
    values = _fill(tmp_path, s3)
    env = subprocess_env(tmp_path / "A", s3.settings)
    got = _cli(env, "--json", "inspect", "--tier", "object", "-c", "model")
    assert got.exit_code == 0, got.stderr
    (info,) = json.loads(got.stdout)["caches"]
    assert info["reachable"] and info["entries"] == 3 and info["parts"] == 6  # 2 + 3 + 1 MiB
    assert info["bytes"] == info["part_bytes"] == sum(len(v) for v in values.values())
    assert "stay local" in info["not_shared"]
    listed = json.loads(_cli(env, "--json", "ls", "--tier", "object", "-c", "model").stdout)
    assert sorted(e["key"] for e in listed["entries"]) == sorted(values)
    only = _cli(env, "ls", "--tier", "object", "-c", "model", "--filter", "key~a/*", "-q")
    assert sorted(only.stdout.split()) == ["a/one", "a/two"]
    ok = _cli(env, "--json", "verify", "--tier", "object", "-c", "model")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["bytes_checked"] == info["bytes"]


def test_verify_reports_a_flipped_byte_exit_1(tmp_path: Path, s3: S3) -> None:
    _fill(tmp_path, s3)
    with machine(tmp_path / "A", s3.settings) as a:
        tier = _tier(a)
        entry = next(e for e in tier.entries() if e.key == "a/two")
        data = bytearray(obstore.get(tier.store, entry.parts[2]).bytes())
        data[-1] ^= 0x80
        obstore.put(tier.store, entry.parts[2], bytes(data))
    env = subprocess_env(tmp_path / "A", s3.settings)
    got = _cli(env, "--json", "verify", "--tier", "object", "-c", "model")
    assert got.exit_code == 1
    (problem,) = json.loads(got.stdout)["problems"]
    assert problem["key"] == "a/two" and "part 2" in problem["problem"]
    human = _cli(env, "verify", "--tier", "object", "-c", "model", "--sample", "100%")
    assert human.exit_code == 1 and "a/two" in human.stdout
    sampled = _cli(env, "--json", "verify", "--tier", "object", "-c", "model", "--sample", "1%")
    body = json.loads(sampled.stdout)
    assert body["checked"] == 3 and body["bytes_checked"] <= 3 * MB  # one part of each


def test_evict_then_clean_removes_only_unreferenced_parts_past_the_grace(
    tmp_path: Path, s3: S3
) -> None:
    values = _fill(tmp_path, s3)
    env = subprocess_env(tmp_path / "A", s3.settings)
    gone = _cli(env, "--json", "evict", "--tier", "object", "-c", "model", "--key", "a/one", "-y")
    assert gone.exit_code == 0, gone.stderr
    assert json.loads(gone.stdout)["keys"] == ["a/one"]
    # another cache shares the "b/three" bytes: its part stays referenced
    with machine(tmp_path / "A", s3.settings) as a:
        a.cache("default").put("copy", values["b/three"])
    young = json.loads(_cli(env, "--json", "clean", "--tier", "object", "-c", "model").stdout)
    assert young["parts"] == 0  # the unreferenced parts are younger than the grace (1d)
    dry = _cli(env, "--json", "clean", "--tier", "object", "--grace", "0", "--dry-run")
    assert json.loads(dry.stdout)["parts"] == 2  # a/one's two parts
    time.sleep(1.1)  # S3 times have one-second resolution
    done = json.loads(_cli(env, "--json", "clean", "--tier", "object", "--grace", "1s").stdout)
    assert done["parts"] == 2 and done["bytes"] == len(values["a/one"])
    with machine(tmp_path / "B", s3.settings) as b:
        assert bytes(b.cache("model").get("a/two")) == values["a/two"]
        assert bytes(b.cache("model").get("b/three")) == values["b/three"]
        assert bytes(b.cache("default").get("copy")) == values["b/three"]
        assert b.cache("model").get("a/one") is None


def test_unreachable_store_is_one_line(tmp_path: Path, s3: S3) -> None:
    dead = s3.with_(endpoint="http://127.0.0.1:9", connect_timeout=0.5, reply_timeout=1.0)
    env = subprocess_env(tmp_path / "A", dead)
    got = _cli(env, "verify", "--tier", "object", "-c", "model")
    assert got.exit_code == 1
    assert "unreachable" in got.stderr and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    shown = _cli(env, "--json", "inspect", "--tier", "object", "-c", "model")
    assert shown.exit_code == 1 and json.loads(shown.stdout)["caches"][0]["reachable"] is False


def test_options_the_object_tier_does_not_take(tmp_path: Path, s3: S3) -> None:
    env = subprocess_env(tmp_path / "A", s3.settings)
    got = _cli(env, "verify", "--tier", "object", "--quick")
    assert got.exit_code == 2 and "--quick" in got.stderr
    none = _cli({"XDG_CACHE_HOME": str(tmp_path)}, "ls", "--tier", "object")
    assert none.exit_code == 2 and "cache.object" in none.stderr


def test_bench_tier_object(tmp_path: Path, local_s3: S3) -> None:
    """``bench --tier object`` drives the store itself (every value size, not only those over
    the threshold): every read after the fill is a hit, and the requests reach the server."""
    s3 = local_s3
    env = subprocess_env(tmp_path / "A", s3.settings)
    got = _cli(env, "--json", "bench", "--tier", "object", "--keys", "20", "--ops", "200")
    assert got.exit_code == 0, got.stdout + got.stderr
    (result,) = json.loads(got.stdout)["results"]
    assert result["kind"] == "object" and result["ops"] == 200
    assert result["hit_ratio"] == 1.0
    assert any(method == "GET" for method, _ in s3.requests())
    assert list(ObjectTier(s3.settings, "bench").entries()) == []  # its records are gone
    none = _cli({**env, "LLAMACACHE_OBJECT_URL": ""}, "bench", "--tier", "object", "--ops", "1")
    assert none.exit_code == 2 and "[cache.object] url" in none.stderr
