"""warm --share: after warming, upload what the shared tier lacks; manifests only when complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis

from tests.cli.helpers import run
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _names(admin: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in admin.scan_iter(match=prefix + "model:e:*")}


def _setup(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tag: str) -> str:
    prefix = f"wsh{tag}{os.getpid()}:"
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    monkeypatch.setenv("LLAMACACHE_NETWORK_MAX_VALUE_SIZE", "200KB")
    return prefix


def test_warm_share_republishes_after_the_server_lost_everything(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = _setup(redis_server, monkeypatch, "a")
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "w.bin").write_bytes(os.urandom(60_000))
    done = run("warm", str(model), "--json")
    assert done.returncode == 0, done.stderr
    admin = redis.Redis.from_url(redis_server.url)
    for key in admin.scan_iter(match=prefix + "*"):
        admin.delete(key)  # the server lost everything
    assert not _names(admin, prefix)

    plain = run("warm", str(model), "--json")  # without --share: no push report
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["shared"] is None
    for key in admin.scan_iter(match=prefix + "*"):  # (it re-shared the manifest's files)
        admin.delete(key)

    done = run("warm", str(model), "--share", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["skipped"] == 2  # already cached locally
    assert body["shared"]["pushed"] == 2  # the two files the server lost
    assert body["shared"]["present"] == 1  # the manifest, written (and shared) after them
    names = _names(admin, prefix)
    assert any("tiny@main/.manifest.json" in n for n in names)
    assert sum("blobs/" in n for n in names) == 2

    again = run("warm", str(model), "--share", "--json")
    assert json.loads(again.stdout)["shared"]["pushed"] == 0
    assert json.loads(again.stdout)["shared"]["present"] == 3


def test_warm_share_too_large_is_reported_and_holds_the_manifest(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = _setup(redis_server, monkeypatch, "b")
    model = tmp_path / "big"
    model.mkdir()
    (model / "config.json").write_text('{"b": 2}')
    (model / "w.bin").write_bytes(os.urandom(300_000))  # over max_value_size
    done = run("warm", str(model), "--share", "--json")
    assert done.returncode == 1, done.stderr  # something could not be shared
    err = done.stderr.decode()
    assert "max_value_size" in err and "w.bin" in err
    assert "manifest" in err
    shared = json.loads(done.stdout)["shared"]
    assert len(shared["too_large"]) == 1
    assert shared["held"] == ["big@main/.manifest.json"]
    names = _names(admin := redis.Redis.from_url(redis_server.url), prefix)
    assert not any(".manifest.json" in n for n in names)  # never a revision missing a file
    assert any("blobs/" in n and n.endswith(".json") for n in names)  # the small file is
    assert admin is not None

    human = run("warm", str(model), "--share")
    assert human.returncode == 1
    assert b"not shared" in human.stdout


def test_warm_share_without_a_shared_tier_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    done = run("warm", str(tmp_path / "f.txt"), "--share")
    assert done.returncode == 2
    assert b"cache.network.url" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _lost_blobs(admin: redis.Redis, prefix: str) -> None:
    for key in admin.scan_iter(match=prefix + "model:e:*blobs/*"):
        admin.delete(key)  # the server lost the files (eviction, a flush), not the rest


@pytest.mark.parametrize("lost", ["everything", "blobs"])
def test_plain_warm_never_publishes_a_manifest_without_its_files(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lost: str
) -> None:
    """A plain ``warm`` of files already cached rewrites the manifest; the shared copy of it
    must not name blobs the server lost (other machines would get "not cached")."""
    prefix = _setup(redis_server, monkeypatch, "c" + lost[0])
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text('{"c": 3}')
    (model / "w.bin").write_bytes(os.urandom(60_000))
    assert run("warm", str(model), "--json").returncode == 0
    admin = redis.Redis.from_url(redis_server.url)
    if lost == "everything":
        for key in admin.scan_iter(match=prefix + "*"):
            admin.delete(key)
    else:
        _lost_blobs(admin, prefix)
    assert sum("blobs/" in n for n in _names(admin, prefix)) == 0

    plain = run("warm", str(model), "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["skipped"] == 2  # nothing stored again locally
    names = _names(admin, prefix)
    assert any("tiny@main/.manifest.json" in n for n in names)  # published ...
    assert sum("blobs/" in n for n in names) == 2  # ... with the files it lists


def test_put_model_of_cached_files_reshares_what_the_server_lost(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llamacache import CacheManager, ModelCache

    prefix = _setup(redis_server, monkeypatch, "d")
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "w.bin").write_bytes(os.urandom(60_000))
    with CacheManager() as m:
        ModelCache(m).put_model("tiny", model)
    admin = redis.Redis.from_url(redis_server.url)
    _lost_blobs(admin, prefix)
    with CacheManager() as m:
        ModelCache(m).put_model("tiny", model)  # the blob is cached here: found, not copied
    names = _names(admin, prefix)
    assert any("tiny@main/.manifest.json" in n for n in names)
    assert sum("blobs/" in n for n in names) == 1
