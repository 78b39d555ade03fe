"""push: after the server lost everything, upload what it lacks; manifests only when complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis

from tests.cli.helpers import run
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_push_all_after_flush_and_too_large_holds_the_manifest(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llamacache.manager import CacheManager
    from llamacache.ml.model import write_manifest
    from llamacache.ml.revisions import store_blob

    prefix = f"push{os.getpid()}:"
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    monkeypatch.setenv("LLAMACACHE_NETWORK_MAX_VALUE_SIZE", "200KB")
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(os.urandom(50_000))
    big.write_bytes(os.urandom(300_000))
    with CacheManager() as m:
        c = m.cache("model")
        c.put("plain", "text")
        with small.open("rb") as f:  # stored as the revision's manifest row names it
            metas = {"small.bin": store_blob(c, "small.bin", f)[0]}
        write_manifest(c, "m", "r1", metas)  # complete and shareable
        with big.open("rb") as f:
            metas2 = {"big.bin": store_blob(c, "big.bin", f)[0]}
        write_manifest(c, "m", "r2", metas2)  # its file is too large to share
        c.remove("gone")
    admin = redis.Redis.from_url(redis_server.url)
    for key in admin.scan_iter(match=prefix + "*"):
        admin.delete(key)  # the server lost everything (FLUSHDB of our keys)

    done = run("push", "-c", "model", "--all", "--json")
    assert done.returncode == 1, done.stderr  # something could not be shared
    body = json.loads(done.stdout)
    (one,) = body["caches"]
    assert one["pushed"] == 3  # plain, small.bin, r1's manifest
    (too_large,) = one["too_large"]
    assert too_large.startswith("blobs/") and too_large.endswith(".bin")
    assert one["held"] == ["m@r2/.manifest.json"]
    assert b"max_value_size" in done.stderr

    again = run("push", "-c", "model", "--all", "--json")
    assert json.loads(again.stdout)["caches"][0]["pushed"] == 0  # nothing lacking now
    assert json.loads(again.stdout)["caches"][0]["present"] == 3

    names = {k.decode() for k in admin.scan_iter(match=prefix + "model:e:*")}
    assert any("r1/.manifest.json" in n for n in names)
    assert not any("r2/.manifest.json" in n for n in names)


def test_push_needs_keys_or_all() -> None:
    done = run("push")
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_inspect_counts_unshared_writes(
    private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llamacache.manager import CacheManager

    private_redis.start()
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", private_redis.url)
    private_redis.stop()  # down: the puts stay local and are remembered
    with CacheManager() as m:
        m.cache("default").put("a", "1")
        m.cache("default").put("b", "2")
    done = run("inspect", "-c", "default", "--json")
    assert done.returncode in (0, 1), done.stderr
    (info,) = json.loads(done.stdout)["caches"]
    assert info["unshared"] == 2
    human = run("inspect", "-c", "default")
    assert b"unshared: 2" in human.stdout
    private_redis.start()
    pushed = run("push", "-c", "default", "--all", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert (
        json.loads(run("inspect", "-c", "default", "--json").stdout)["caches"][0]["unshared"] == 0
    )


def test_put_model_publishes_a_manifest_only_when_every_file_is_shared(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A manifest whose file is over max_value_size stays local: another machine gets a plain
    miss for the model, never a manifest that points at bytes nobody shared."""
    import numpy as np
    from safetensors.numpy import save_file

    from llamacache.manager import CacheManager
    from llamacache.ml.model import ModelCache, NotCachedError

    prefix = f"putm{os.getpid()}:"
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    monkeypatch.setenv("LLAMACACHE_NETWORK_MAX_VALUE_SIZE", "200KB")
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    save_file({"w": np.ones(1000, dtype=np.float32)}, str(small / "model.safetensors"))
    save_file({"w": np.ones(100_000, dtype=np.float32)}, str(big / "model.safetensors"))
    monkeypatch.setenv("LLAMACACHE_DISK_PATH", str(tmp_path / "a"))
    with CacheManager() as m, ModelCache(m) as mc:
        mc.put_model("small", small, revision="r")
        mc.put_model("big", big, revision="r")
        assert mc.model_path("big", "r").is_dir()  # complete on this machine
    admin = redis.Redis.from_url(redis_server.url)
    names = {k.decode() for k in admin.scan_iter(match=prefix + "model:e:*")}
    assert any("small@r/.manifest.json" in n for n in names)
    assert not any("big@r/.manifest.json" in n for n in names)
    monkeypatch.setenv("LLAMACACHE_DISK_PATH", str(tmp_path / "b"))  # another machine
    with CacheManager() as m, ModelCache(m) as mc:
        assert mc.get_model("small", "r")["w"].shape == (1000,)
        with pytest.raises(NotCachedError):
            mc.model_path("big", "r")
