"""The object tier on an S3-compatible server (moto's, on loopback: a stand-in for a real S3
endpoint; see conftest.py): two machines share a model, and every fault is a miss.

LLAMACACHE_OBJECT_MB sets the shared model's size (default 6 MiB; the issue's 1 GiB run:
LLAMACACHE_OBJECT_MB=1024).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import obstore
import pytest

from llamacache.engine import objectstore
from llamacache.engine.objectstore import ObjectTier
from llamacache.errors import ConfigError
from llamacache.ml.model import ModelCache
from llamacache.ml.revisions import manifest_key
from tests.object.conftest import S3
from tests.object.helpers import MB, machine, subprocess_env, write_model

MODEL_MB = int(os.environ.get("LLAMACACHE_OBJECT_MB", "6"))


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MB):
            h.update(block)
    return h.hexdigest()


def _tier(m: object, cache: str = "model") -> ObjectTier:
    tier = m.cache(cache).lower[-1]  # type: ignore[attr-defined]
    assert isinstance(tier, ObjectTier)
    return tier


def _share(tmp_path: Path, s3: S3, mb: int = MODEL_MB) -> tuple[Path, str]:
    src = write_model(tmp_path / "src", mb)
    with machine(tmp_path / "A", s3.settings) as a:
        ModelCache(a).put_model("org/m", src)
    return src, "org/m"


def test_model_shared_from_a_to_b_byte_identical(tmp_path: Path, s3: S3) -> None:
    src, name = _share(tmp_path, s3)
    with machine(tmp_path / "B", s3.settings) as b:
        models = ModelCache(b)
        folder = models.model_path(name)
        for rel in ("model.safetensors", "config.json"):
            assert _sha(folder / rel) == _sha(src / rel)
        tensors = models.get_model(name)
        assert tensors["w"].nbytes == MODEL_MB * MB
        tier = _tier(b)
        assert tier.hits >= 3 and tier.rejected == 0  # manifest, weights, config
    # B now has it on its own disk: it serves it with the store gone from its config
    with machine(tmp_path / "B", s3.settings, LLAMACACHE_MODEL_OBJECT="false") as b2:
        assert _sha(ModelCache(b2).model_path(name) / "model.safetensors") == _sha(
            src / "model.safetensors"
        )


def test_identical_bytes_uploaded_once(tmp_path: Path, s3: S3) -> None:
    src = write_model(tmp_path / "src", 3)
    weights = (src / "model.safetensors").stat().st_size
    with machine(tmp_path / "A", s3.settings) as a:
        models = ModelCache(a)
        models.put_model("one", src)
        assert _tier(a).uploaded_bytes == weights  # small files go inline in their record
        models.put_model("two", src)  # same bytes, another model
        assert _tier(a).uploaded_bytes == weights
    with machine(tmp_path / "C", s3.settings) as c:  # another machine, same bytes
        ModelCache(c).put_model("three", src)
        tier = _tier(c)
        assert tier.uploaded_bytes == 0 and tier.present_parts == 4  # 3 MiB + header: 4 parts
        stored = list(tier.stored_parts())
    assert sum(p.bytes for p in stored) == weights


def test_killed_upload_is_never_visible(tmp_path: Path, local_s3: S3) -> None:
    """A writer SIGKILLed mid-upload: no entry; B misses and writes nothing."""
    s3 = local_s3
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(6 * MB))
    script = textwrap.dedent(
        f"""
        import os, signal
        from llamacache.engine import objectstore
        from llamacache.manager import CacheManager
        read = objectstore.ObjectTier._read_parts
        def dying(self, source, entry):
            for i, part in enumerate(read(self, source, entry)):
                if i == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield part
        objectstore.ObjectTier._read_parts = dying
        m = CacheManager()
        m.cache("model").put_file("big", {str(data)!r})
        """
    )
    env = subprocess_env(tmp_path / "A", s3.settings)
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert proc.returncode == -9
    with machine(tmp_path / "B", s3.settings) as b:
        cache = b.cache("model")
        assert cache.get("big") is None
        assert "big" not in cache
        tier = _tier(b)
        assert list(tier.entries()) == []  # the parts sent before the kill are orphans:
        assert tier.referenced_parts() == set()  # `clean` sweeps them after its grace
        orphans = list(tier.stored_parts())
        assert tier.clean_parts(grace=3600) == []
        assert len(tier.clean_parts(grace=0)) == len(orphans) and not list(tier.stored_parts())


def _flip_byte(tier: ObjectTier, name: str, offset: int) -> None:
    data = bytearray(obstore.get(tier.store, name).bytes())
    data[offset] ^= 0x01
    obstore.put(tier.store, name, bytes(data))


def test_flipped_byte_is_a_miss_never_written_and_reported(tmp_path: Path, s3: S3) -> None:
    payload = os.urandom(5 * MB + 123)
    with machine(tmp_path / "A", s3.settings) as a:
        a.cache("model").put("weights", payload)
        (entry,) = _tier(a).entries()
        assert len(entry.parts) == 6
        _flip_byte(_tier(a), entry.parts[3], 7)  # inside part 3 of 6
    with machine(tmp_path / "B", s3.settings) as b:
        cache = b.cache("model")
        assert cache.get("weights") is None
        assert "weights" not in cache and cache.disk.locate("weights") is None
        tier = _tier(b)
        assert tier.rejected == 1
        (check,) = tier.verify_entries()
        assert check.problem is not None and "part 3" in check.problem
        (sampled,) = tier.verify_entries(fraction=0.1)  # one random part of six
        assert sampled.bytes <= MB
        assert sampled.problem is None or "part 3" in sampled.problem


def test_unsigned_pickle_record_refused(tmp_path: Path, s3: S3) -> None:
    """Without a signing key a record holding a pickle is refused (it would run code)."""
    big = {"x": os.urandom(2 * MB)}
    with machine(tmp_path / "A", s3.settings) as a:
        a.cache("model").put("obj", big)
        assert len(list(_tier(a).entries())) == 1
    with machine(tmp_path / "B", s3.settings) as b:
        assert b.cache("model").get("obj") is None
        assert _tier(b).rejected == 1


def test_signed_records_carry_pickles_and_refuse_other_keys(tmp_path: Path, s3: S3) -> None:
    key = {"LLAMACACHE_OBJECT_SIGNING_KEY": "k1-" + "x" * 30}
    big = {"x": os.urandom(2 * MB)}
    with machine(tmp_path / "A", s3.settings, **key) as a:
        a.cache("model").put("obj", big)
    with machine(tmp_path / "B", s3.settings, **key) as b:
        assert b.cache("model").get("obj") == big
    other = {"LLAMACACHE_OBJECT_SIGNING_KEY": "k2-" + "y" * 30}
    with machine(tmp_path / "C", s3.settings, **other) as c:
        assert c.cache("model").get("obj") is None
        assert _tier(c).rejected == 1


def test_small_values_stay_local(tmp_path: Path, s3: S3) -> None:
    with machine(tmp_path / "A", s3.settings) as a:
        a.cache("model").put("small", b"x" * 1000)
        assert _tier(a).skipped == 1 and list(_tier(a).entries()) == []


def test_endpoint_down_mid_read_falls_back_to_local(
    tmp_path: Path, local_s3: S3, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A second moto server on the same (in-process) data is stopped after the first window:
    the read is a miss, nothing is written, local entries keep serving, one warning."""
    from tests.object.conftest import RecordingMotoServer

    server = RecordingMotoServer()
    server.start()
    settings = local_s3.with_(endpoint=server.endpoint, reply_timeout=2.0)
    payload = os.urandom(4 * MB)
    with machine(tmp_path / "A", settings) as a:
        a.cache("model").put("remote", payload)
    monkeypatch.setattr(objectstore, "WINDOW_BYTES", MB)  # one part per window
    fetch = ObjectTier._fetch_parts
    calls = []

    def stop_after_first(self: ObjectTier, man: object, parts: list[int]) -> object:
        calls.append(parts)
        if len(calls) == 2:
            server.stop()
        return fetch(self, man, parts)  # type: ignore[arg-type]

    monkeypatch.setattr(ObjectTier, "_fetch_parts", stop_after_first)
    with machine(tmp_path / "B", settings) as b:
        cache = b.cache("model")
        cache.put("mine", os.urandom(100))  # local only (small)
        caplog.set_level(logging.WARNING, logger="llamacache.object")
        assert cache.get("remote") is None
        assert cache.disk.locate("remote") is None
        for _ in range(3):  # the breaker is open: no waiting, no new warning
            assert cache.get("remote") is None
        assert cache.get("mine") is not None
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
        assert "s3cr3t" not in caplog.text


def test_read_only_never_writes(tmp_path: Path, local_s3: S3) -> None:
    s3 = local_s3
    ro = s3.with_(mode="read-only")
    src, name = _share(tmp_path, s3)
    before = len(s3.requests())
    with machine(tmp_path / "B", ro) as b:
        models = ModelCache(b)
        models.model_path(name)  # reads
        b.cache("model").put("mine", os.urandom(3 * MB))
        models.put_model("mine/model", write_model(tmp_path / "other", 2, seed=5))
        b.cache("model").remove(manifest_key(name, "main"))
        b.cache("model").clear()
    during = s3.requests()[before:]
    assert during and all(m in ("GET", "HEAD") for m, _ in during), during


def test_credentials_never_in_output(tmp_path: Path, local_s3: S3) -> None:
    from typer.testing import CliRunner

    from llamacache.cli.app import app

    s3 = local_s3
    secret_url = s3.settings.endpoint.replace("http://", "http://user:hunter2pw@")  # type: ignore[union-attr]
    env = subprocess_env(tmp_path / "A", s3.with_(endpoint=secret_url))
    runner = CliRunner()
    out = []
    commands = (
        ["config", "show"],
        ["config", "show", "--json"],
        ["inspect"],
        ["inspect", "--tier", "object"],
        ["verify", "--tier", "object"],
        ["--debug", "ls", "--tier", "object"],
    )
    for args in commands:
        res = runner.invoke(app, args, env=env)
        out.append(res.output + (res.stderr if res.stderr_bytes is not None else ""))
    text = "\n".join(out)
    assert "cache.object.endpoint" in text and "user:***@" in text
    assert "hunter2pw" not in text and "s3cr3t" not in text


def test_with_redis_small_values_go_to_redis_large_to_the_store(
    tmp_path: Path, s3: S3, redis_server: Any
) -> None:
    import redis

    prefix = f"obj{os.getpid()}{tmp_path.name[-6:]}:"
    extra = {"LLAMACACHE_NETWORK_URL": redis_server.url, "LLAMACACHE_NETWORK_KEY_PREFIX": prefix}
    big, small = os.urandom(3 * MB), b"small value"
    with machine(tmp_path / "A", s3.settings, **extra) as a:
        cache = a.cache("model")
        assert [t.name for t in cache.lower] == ["network", "object"]
        cache.put("big", big)
        cache.put("small", small)
        assert [e.key for e in _tier(a).entries()] == ["big"]
    admin = redis.Redis.from_url(redis_server.url)
    keys = {k.decode() for k in admin.scan_iter(match=prefix + "*")}
    assert any(k.endswith("s:small") for k in keys)
    # not one byte of it in Redis's RAM: only the deletion mark withdrawing any older value
    assert all(admin.strlen(k) < 100 for k in keys if "big" in k)
    with machine(tmp_path / "B", s3.settings, **extra) as b:
        assert b.cache("model").get("small") == small
        assert bytes(b.cache("model").get("big")) == big


def test_throttling_is_retried_with_backoff(
    tmp_path: Path, local_s3: S3, caplog: pytest.LogCaptureFixture
) -> None:
    """503 SlowDown on reads and writes: the client retries; nothing is lost or warned."""
    from tests.object.conftest import Fault

    s3 = local_s3
    assert s3.server is not None
    payload = os.urandom(3 * MB)
    prefix = s3.settings.url.removeprefix("s3://").split("/", 1)[1]
    s3.server.faults.append(Fault(f"{prefix}/parts/", 3))
    caplog.set_level(logging.WARNING, logger="llamacache.object")
    with machine(tmp_path / "A", s3.settings) as a:
        a.cache("model").put("big", payload)
        assert _tier(a).puts == 1
    s3.server.faults.append(Fault(f"{prefix}/parts/", 3))
    with machine(tmp_path / "B", s3.settings) as b:
        assert bytes(b.cache("model").get("big")) == payload
    assert not [f for f in s3.server.faults if f.count]  # every fault was served
    assert "unreachable" not in caplog.text


def test_refused_credentials_are_one_clear_line(tmp_path: Path, local_s3: S3) -> None:
    from typer.testing import CliRunner

    from llamacache.cli.app import app
    from tests.object.conftest import Fault

    s3 = local_s3
    assert s3.server is not None
    prefix = s3.settings.url.removeprefix("s3://").split("/", 1)[1]
    s3.server.faults.append(Fault(prefix, 10, "403 Forbidden", "ExpiredToken"))
    env = subprocess_env(tmp_path / "A", s3.settings)
    got = CliRunner().invoke(app, ["verify", "--tier", "object", "-c", "model"], env=env)
    s3.server.faults.clear()
    assert got.exit_code == 1
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "credentials" in lines[0], got.stderr


def _signers(s3: S3) -> set[str]:
    assert s3.server is not None
    return {who for method, who in s3.server.requests if method == "SIGNED-BY"}


def test_credentials_from_an_aws_profile_file(
    tmp_path: Path, local_s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no keys in the environment, the profile named by AWS_PROFILE in the shared
    credentials file signs the requests (as the AWS CLI and boto3 do); region from config."""
    s3 = local_s3
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_REGION")
    creds, conf = tmp_path / "credentials", tmp_path / "config"
    creds.write_text(
        "[default]\naws_access_key_id = AKIADEFAULTPROFILE\naws_secret_access_key = d\n"
        "[team]\naws_access_key_id = AKIATEAMPROFILE\naws_secret_access_key = t-secret\n"
    )
    conf.write_text("[profile team]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(conf))
    monkeypatch.setenv("AWS_PROFILE", "team")
    s3.server.requests.clear()  # type: ignore[union-attr]
    payload = os.urandom(s3.settings.threshold + 1)
    with machine(tmp_path / "A", s3.with_(region=None)) as a:
        a.cache("model").put("weights", payload)
    assert _signers(s3) == {"AKIATEAMPROFILE"}
    with machine(tmp_path / "B", s3.settings) as b:
        assert b.cache("model").get("weights") == payload
    monkeypatch.setenv("AWS_PROFILE", "nobody-has-this")
    with pytest.raises(ConfigError, match="nobody-has-this"):
        ObjectTier(s3.settings, "default")


def test_with_redis_a_replaced_large_value_reaches_other_machines(
    tmp_path: Path, s3: S3, redis_server: Any
) -> None:
    """The object store has no invalidation of its own: a large value replaced or removed on
    A goes through Redis's, so B never serves the old one past the bound."""
    import time

    prefix = f"rep{os.getpid()}{tmp_path.name[-6:]}:"
    extra = {"LLAMACACHE_NETWORK_URL": redis_server.url, "LLAMACACHE_NETWORK_KEY_PREFIX": prefix}
    v1, v2 = os.urandom(3 * MB), os.urandom(3 * MB)
    with (
        machine(tmp_path / "A", s3.settings, **extra) as a,
        machine(tmp_path / "B", s3.settings, **extra) as b,
    ):
        a.cache("model").put("big", v1)
        assert bytes(b.cache("model").get("big")) == v1  # b keeps v1 in memory and on disk
        a.cache("model").put("big", v2)
        time.sleep(0.2)  # the bound: coherence_interval (50 ms) + 50 ms
        assert bytes(b.cache("model").get("big")) == v2
        a.cache("model").remove("big")
        time.sleep(0.2)
        assert b.cache("model").get("big") is None
