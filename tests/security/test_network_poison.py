"""A shared Redis is writable by the whole team: a planted record must never run code,
must never destroy a good local copy, and must never make us delete the shared record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from llamacache.engine import framing
from tests.cli.helpers import run
from tests.network.helpers import net_settings, network_of, tiered
from tests.redis_server import RedisServer
from tests.security.attacks import framed_pickle, record

pytestmark = pytest.mark.redis


def test_planted_pickle_record_does_not_run_on_get(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack from the issue, as a user would meet it: `llamacache get KEY` (subprocess)."""
    prefix = f"poison{os.getpid()}:"
    marker = tmp_path / "pwned"
    rkey = f"{prefix}default:e:s:KEY"
    redis.Redis.from_url(redis_server.url).set(rkey, record(rkey, *framed_pickle(marker, "KEY")))
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    out = run("get", "KEY")
    assert not marker.exists(), "planted pickle ran"
    assert out.returncode == 1  # a miss
    assert b"Traceback" not in out.stderr
    # Nothing executable stayed on the local disk: configuring a key later changes nothing.
    monkeypatch.setenv("LLAMACACHE_SIGNING_KEY", "team secret")
    out = run("get", "KEY")
    assert not marker.exists()
    assert out.returncode == 1


def test_unsigned_pickles_stay_local_and_json_safe_values_are_not_shared(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    net = net_settings(redis_server.url)
    a = tiered(tmp_path / "a", net)
    b = tiered(tmp_path / "b", net)
    a.put("obj", {"lr": 0.1})
    a.put("raw", b"bytes")
    assert a.get("obj") == {"lr": 0.1}  # still cached locally
    assert network_of(a).unsigned_skipped == 1
    assert b.get("obj", "miss") == "miss"  # never reached the server
    assert b.get("raw") == b"bytes"
    a.close()
    b.close()


def test_signed_pickles_are_shared_and_keys_rotate(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"rot{os.getpid()}:"
    old = tiered(tmp_path / "old", net_settings(redis_server.url, prefix, signing_key="k1"))
    old.put("obj", {"a": 1})
    # The new key signs; the old one still verifies what was written before the switch.
    new = net_settings(redis_server.url, prefix, signing_key="k2", signing_keys=("k1",))
    reader = tiered(tmp_path / "r", new)
    assert reader.get("obj") == {"a": 1}
    reader.put("obj2", [1, 2])
    # A machine that only knows the old key rejects the new record: a miss, not an error.
    assert old.get("obj2", "miss") == "miss"
    assert network_of(old).rejected == 1
    only_new = tiered(tmp_path / "n", net_settings(redis_server.url, prefix, signing_key="k2"))
    assert only_new.get("obj2") == [1, 2]
    for c in (old, reader, only_new):
        c.close()


def test_planted_record_never_destroys_a_verified_local_copy(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A bogus record for a key we hold: we keep serving our copy; the record is not deleted."""
    prefix = f"keep{os.getpid()}:"
    net = net_settings(redis_server.url, prefix, signing_key="team")
    mine = tiered(tmp_path / "mine", net, on_corrupt="miss", listen=True)
    mine.put("weights", b"good bytes")
    client = redis.Redis.from_url(redis_server.url)
    rkey = f"{prefix}default:e:s:weights"
    meta, payload = framing.encode(b"evil bytes", mine.settings, "weights")
    # The invalidation marks our copy stale, so the next get asks the network first.
    mine._invalidated("weights")
    client.set(rkey, record(rkey, meta, bytes(payload), b"not the team key"))
    assert mine.get("weights") == b"good bytes"
    assert client.exists(rkey)  # another team's record stays
    assert mine.disk.get("weights") is not None
    assert network_of(mine).rejected == 1
    mine.close()


def test_two_machines_with_different_keys_do_not_delete_each_others_entries(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"two{os.getpid()}:"
    a = tiered(
        tmp_path / "a", net_settings(redis_server.url, prefix, signing_key="A"), "default", "miss"
    )
    b = tiered(
        tmp_path / "b", net_settings(redis_server.url, prefix, signing_key="B"), "default", "miss"
    )
    a.put("x", b"from a")
    b.put("y", b"from b")
    assert b.get("x", "miss") == "miss"
    assert a.get("y", "miss") == "miss"
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists(f"{prefix}default:e:s:x") and client.exists(f"{prefix}default:e:s:y")
    a.close()
    b.close()


def test_rejected_records_are_listed_by_verify_and_unsigned_tiers_are_named(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.helpers import cli

    prefix = f"list{os.getpid()}:"
    rkey = f"{prefix}default:e:s:planted"
    redis.Redis.from_url(redis_server.url).set(
        rkey, record(rkey, *framed_pickle(tmp_path / "pwned", "planted"))
    )
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    out = cli("verify", "--tier", "network", "--cache", "default")
    assert out.exit_code == 1
    assert "planted" in out.stdout and "unsigned pickle value refused" in out.stdout
    validate = cli("config", "validate")
    assert validate.exit_code == 0
    assert "unsigned" in validate.stderr
    run_get = cli("put", "k", "v")  # creates the default cache so inspect lists it
    assert run_get.exit_code == 0
    assert "unsigned" in cli("inspect", "--cache", "default").stderr
    assert not (tmp_path / "pwned").exists()


def test_planted_deletion_marks_cost_availability_never_a_wrong_value(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """docs/security.md: anyone who can write to the shared Redis can plant a deletion mark
    (a bare flag, not signed). With the record there, the record wins; with it gone, the
    entry becomes a miss everywhere. Never another value, signing key or not."""
    from llamacache.engine import netformat as nf

    net = net_settings(redis_server.url, signing_key="team secret")
    a = tiered(tmp_path / "a", net)
    a.put("kept", "v1")
    a.put("gone", "v2")
    a.close()
    b = tiered(tmp_path / "b", net)
    assert (b.get("kept"), b.get("gone")) == ("v1", "v2")  # b's disk holds copies now
    b.close()
    tier = network_of(b)
    admin = redis.Redis.from_url(redis_server.url)
    for key in ("kept", "gone"):  # the attacker's writes
        admin.set(tier.deleted_prefix + nf.encode_key(key), b"1")
    admin.unlink(tier.rkey("gone"))
    b = tiered(tmp_path / "b", net)  # a new process on b: its disk copies are revalidated
    try:
        assert b.get("kept") == "v1"  # the signed record outranks a mark
        assert b.get("gone", "miss") == "miss"  # availability: a miss, then recomputed
        assert b.get("gone", "miss") == "miss"
    finally:
        b.close()
