"""The admin commands' ``--tier network`` and put/get through the shared tier, on a real server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import redis

from llamacache import CacheManager, ModelCache
from tests.cli.helpers import cli, cli_json, run
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def shared(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    prefix = f"cli{os.getpid()}{tmp_path.name[-6:]}:"
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    monkeypatch.setenv("LLAMACACHE_NETWORK_CHUNK_SIZE", "64KiB")
    return prefix


def test_put_then_get_on_another_machine(
    shared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(300_000))
    assert cli("put", "-c", "model", "w", "--file", str(src)).exit_code == 0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
    out = tmp_path / "out.bin"
    assert run("get", "-c", "model", "w", "--out", str(out)).returncode == 0
    assert out.read_bytes() == src.read_bytes()


def test_warm_fills_the_network_tier_for_another_machine(
    shared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.numpy import save_file

    model = tmp_path / "tiny"
    model.mkdir()
    save_file({"w": np.ones((256, 256), dtype=np.float16)}, str(model / "model.safetensors"))
    (model / "config.json").write_text('{"hidden": 256}')
    assert cli("warm", str(model)).exit_code == 0
    listed = cli_json("ls", "--tier", "network", "-c", "model")
    keys = {e["key"] for e in listed["entries"]}
    with CacheManager() as m:
        weights = ModelCache(m).entry_key("tiny", "main", "model.safetensors")
    assert {"tiny@main/.manifest.json", weights} <= keys and len(keys) == 3
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))  # empty local tiers
    with CacheManager() as m:  # the manifest, then the blob it names, from the network tier
        assert ModelCache(m).get_model("tiny")["w"].shape == (256, 256)
    out = tmp_path / "copy.safetensors"
    got = run("get", "-c", "model", weights, "--out", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == (model / "model.safetensors").read_bytes()


def test_inspect_ls_verify_evict_clean(shared: str, redis_server: RedisServer) -> None:
    assert cli("put", "-c", "model", "a", os.urandom(150_000).hex()).exit_code == 0
    assert cli("put", "-c", "model", "b", "small").exit_code == 0
    body = cli_json("inspect", "-c", "model", "--tier", "network")
    assert body["schema"] == "llamacache.network.inspect"
    (info,) = body["caches"]
    assert info["reachable"] and info["entries"] == 2 and info["chunks"] >= 2
    top = cli_json("inspect", "-c", "model", "--tier", "network", "--top", "1")  # one document
    assert [e["key"] for e in top["top"]] == ["a"] and top["top"][0]["memory_usage"] > 100_000
    human = cli("inspect", "-c", "model", "--tier", "network", "--top", "1")
    assert "network tier" in human.stdout and "noeviction" in human.stdout
    assert "memory usage" in human.stdout
    listing = cli_json("ls", "-c", "model", "--tier", "network")
    assert sorted(e["key"] for e in listing["entries"]) == ["a", "b"]
    keys = cli("ls", "-c", "model", "--tier", "network", "-q")
    assert sorted(keys.stdout.split()) == ["a", "b"]
    assert cli("verify", "-c", "model", "--tier", "network").exit_code == 0

    client = redis.Redis.from_url(redis_server.url)
    victim = sorted(client.scan_iter(match=f"{shared}model:{{*}}:c:*"))[1]
    client.delete(victim)
    bad = cli("verify", "-c", "model", "--tier", "network")
    assert bad.exit_code == 1
    assert "missing chunk 1" in bad.stdout and "a" in bad.stdout

    nothing = cli("evict", "-c", "model", "--tier", "network", "--key", "a")
    assert nothing.exit_code == 2 and "--yes" in nothing.stderr  # no terminal to ask
    assert client.exists(f"{shared}model:e:s:a")
    gone = cli_json("evict", "-c", "model", "--tier", "network", "--key", "a", "--yes")
    assert gone["keys"] == ["a"] and not client.exists(f"{shared}model:e:s:a")
    swept = cli_json("clean", "-c", "model", "--tier", "network")
    assert swept["chunks"] == 0  # orphans younger than the grace period stay


def test_bad_input_and_unreachable(
    shared: str, private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = cli("ls", "--tier", "nowhere")
    assert bad.exit_code == 2 and "'nowhere'" in bad.stderr
    for args in (("ls", "--sort", "size"), ("verify", "--quick"), ("inspect", "--reset-stats")):
        res = cli(*args, "--tier", "network")
        assert res.exit_code == 2 and "not available with --tier network" in res.stderr
    sel = cli("evict", "--tier", "network", "--older-than", "1d", "--yes")
    assert sel.exit_code == 2 and "--key and --match" in sel.stderr
    private_redis.start()
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", private_redis.url)
    private_redis.kill()
    down = run("inspect", "-c", "model", "--tier", "network")
    assert down.returncode == 1
    assert b"unreachable" in down.stderr and b"Traceback" not in down.stderr
    down_ls = run("ls", "--tier", "network")
    assert down_ls.returncode == 1 and down_ls.stderr.count(b"\n") == 1
    # the local tiers keep serving
    assert run("put", "-c", "model", "k", "v").returncode == 0
    got = run("get", "-c", "model", "k")
    assert got.returncode == 0 and got.stdout == b"v\n"  # a string ends with a newline


def test_no_network_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    res = cli("verify", "--tier", "network")
    assert res.exit_code == 2 and "no network tier" in res.stderr
    assert json.loads(cli("--json", "config", "show").stdout or "{}") is not None


def test_plain_inspect_fills_the_network_row(shared: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One view: no --tier network needed to see what the shared tier holds."""
    assert cli("put", "-c", "model", "a", "1").exit_code == 0
    assert cli("put", "-c", "model", "b", "2").exit_code == 0
    out = cli("inspect", "-c", "model")
    assert out.exit_code == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("network"))
    assert row.split()[1] == "2" and "unreachable" not in row
    body = json.loads(cli("--json", "inspect", "-c", "model").stdout)
    assert body["network"]["caches"][0]["entries"] == 2
    assert body["caches"][0]["name"] == "model"


def test_plain_inspect_says_when_the_server_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.redis_server import free_port

    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", f"redis://127.0.0.1:{free_port()}/0")
    out = cli("inspect", "-c", "model")
    assert out.exit_code == 0, out.stderr  # the local view is still whole
    row = next(line for line in out.stdout.splitlines() if line.startswith("network"))
    assert "unreachable" in row
