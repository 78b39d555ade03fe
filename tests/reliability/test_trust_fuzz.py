"""Random bytes from elsewhere: archives into ``restore``, records into the network tier.

Every input is hostile in one of three ways: random bytes, a valid container with random
fields, or a valid container carrying a pickle that would create a marker file if it ever
ran. Counted: tracebacks (any exception that is not our one-line error), code executed
(marker files), and files written outside the target folder. All must be 0.

``LLAMACACHE_FUZZ_EXAMPLES`` sets how many inputs of each kind (default 300 records
through the read gate, 50 through a real server, 50 archives: the suite stays fast).
"""

from __future__ import annotations

import base64
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamacache.cli.app import State
from llamacache.config.settings import CacheSettings
from llamacache.engine import checksums, framing
from llamacache.engine import netformat as nf
from llamacache.errors import CorruptEntryError, LlamacacheError
from llamacache.ops import restore as restore_ops
from tests.cli.helpers import cli
from tests.network.helpers import net_settings, tiered
from tests.redis_server import RedisServer
from tests.security.archive_tools import members, with_manifest, write
from tests.security.attacks import evil_pickle

N = int(os.environ.get("LLAMACACHE_FUZZ_EXAMPLES", "0")) or None


def _fuzz(default: int) -> settings:
    return settings(
        max_examples=N or default,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- network records ---------------------------------------------------------------------------


_SETTINGS = CacheSettings(name="default", path=Path("/nonexistent"), disk_size=1, memory_size=1)
_VALUES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100),
    st.builds(lambda b: b * 50, st.binary(min_size=1, max_size=8)),  # compressible
)


def _record(draw: Any, marker: Path, rkey: str) -> bytes:
    """A record: random bytes, a valid one (maybe signed), one with random header fields,
    or one carrying a code-running pickle; then maybe one flipped byte."""
    shape = draw(st.sampled_from(["random", "valid", "valid", "fields", "evil", "evil-elsewhere"]))
    if shape == "random":
        return bytes(draw(st.binary(max_size=300)))
    key = b"not our key" if shape == "evil-elsewhere" else None
    rtype = nf.T_INLINE
    if shape == "valid":
        meta, payload = framing.encode(draw(_VALUES), _SETTINGS, "k")
        payload = bytes(payload)
        key = draw(st.sampled_from([None, b"team key"]))
    else:
        if shape.startswith("evil"):
            payload, kind = evil_pickle(marker), framing.K_PICKLE
        else:
            payload, kind = draw(st.binary(max_size=200)), draw(st.integers(0, 7))
        codec = draw(st.sampled_from([0, 0, 1, 2, 3, 9]))
        algo = checksums.BY_NAME[draw(st.sampled_from(["xxh3", "blake3", "sha256"]))]
        raw_len = draw(st.sampled_from([len(payload), 0, 2**40, draw(st.integers(0, 500))]))
        extras = b""
        if kind == framing.K_NUMPY:
            dtype = draw(st.sampled_from([b"<f4", b"|O", b"|u1", b"<U3", b"xx"]))
            n = (raw_len // 4).to_bytes(8, "little")
            extras = bytes((len(dtype),)) + dtype + b"\x01" + n
        digest = algo.digest(payload)
        meta = framing.make_meta(kind, codec, algo.id, digest, raw_len, len(payload), "k", extras)
        rtype = draw(st.sampled_from([nf.T_INLINE, nf.T_INLINE, nf.T_MANIFEST]))
    data = b"".join(nf.pack_record(rkey.encode(), rtype, meta, payload, key))
    if draw(st.integers(0, 2)) == 0:  # flip one byte somewhere
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    return data


def test_random_network_records_never_run_code(
    tmp_path: Path, figure: Callable[[str, object], None]
) -> None:
    """The read gate (``admit``) then ``decode``, as a read does, on every record."""
    marker = tmp_path / "executed"
    counts = {"tracebacks": 0, "admitted": 0, "refused": 0}
    before = _files(tmp_path)

    @_fuzz(300)
    @given(st.data(), st.sampled_from([(), (b"team key",)]))
    def check(data: Any, keys: tuple[bytes, ...]) -> None:
        rkey = "llamacache:default:e:s:k"
        record = _record(data.draw, marker, rkey)
        try:
            rec, meta = nf.admit(rkey.encode(), record, keys, 1 << 20)
            counts["admitted"] += 1
            if rec.rtype == nf.T_INLINE:
                framing.decode(rec.meta, bytes(rec.body), "default", "k")
        except (nf.BadRecord, CorruptEntryError):
            counts["refused"] += 1
        except Exception:  # noqa: BLE001 (counted: any other exception is a traceback)
            counts["tracebacks"] += 1

    check()
    executed = int(marker.exists())
    escapes = len(_files(tmp_path) - before)
    figure("network_records_admitted", counts["admitted"])
    figure("network_records_refused", counts["refused"])
    figure("anomalies_network_record_tracebacks", counts["tracebacks"])
    figure("executed_network_record_pickles", executed)
    figure("escapes_network_record_files", escapes)
    assert counts["tracebacks"] == 0 and executed == 0 and escapes == 0


@pytest.mark.redis
def test_random_records_on_a_real_server_are_misses(
    redis_server: RedisServer, tmp_path: Path, figure: Callable[[str, object], None]
) -> None:
    """Through the whole read path (TieredCache.get over a real redis-server)."""
    marker = tmp_path / "executed"
    net = net_settings(redis_server.url)
    cache = tiered(tmp_path / "cache", net, on_corrupt="miss", listen=False)
    client = redis.Redis.from_url(redis_server.url)
    tracebacks = 0
    n = 0

    @_fuzz(50)
    @given(st.data())
    def check(data: Any) -> None:
        nonlocal tracebacks, n
        n += 1
        key = f"k{n}"
        rkey = net.key_prefix + f"default:e:s:{key}"
        client.set(rkey, _record(data.draw, marker, rkey))
        try:
            cache.get(key)
        except LlamacacheError:
            pass  # a one-line error is fine (none is expected: a bad record is a miss)
        except Exception:  # noqa: BLE001
            tracebacks += 1

    check()
    cache.close()
    # A poisoned record never stays on the local disk as something that would run later.
    stored_pickles = 0
    again = tiered(tmp_path / "cache", net_settings(redis_server.url, "other:"), listen=False)
    for key in list(again.keys()):
        meta = again.disk.get(key)
        if meta is not None and framing.parse_meta(meta[0]).kind == "pickle":
            stored_pickles += 1
    again.close()
    figure("anomalies_network_get_tracebacks", tracebacks)
    figure("executed_network_get_pickles", int(marker.exists()))
    figure("escapes_network_pickles_kept_on_disk", stored_pickles)
    assert tracebacks == 0 and not marker.exists() and stored_pickles == 0


# -- archives ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz-src")
    with State(cache_dir=base / "src").manager() as m:
        c = m.cache("default")
        c.put("a", b"x" * 100)
        c.put(("t", 1), "text")
        c.put(b"raw", "bytes key")
        c.put("big", b"y" * 50_000)
    out = base / "good.tar.zst"
    assert cli("--cache-dir", str(base / "src"), "backup", "--to", str(out)).exit_code == 0
    return out


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_FIELDS = [
    "member",
    "cache",
    "key_type",
    "key",
    "meta",
    "size",
    "store_time",
    "expire_time",
    "kind",
]


def _hostile_archive(draw: Any, good: Path, out: Path, marker: Path) -> None:
    shape = draw(
        st.sampled_from(["good", "random", "flip", "field", "pickled-key", "extra-member"])
    )
    if shape == "random":
        out.write_bytes(draw(st.binary(max_size=2000)))
        return
    if shape == "flip":
        data = bytearray(good.read_bytes())
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        out.write_bytes(bytes(data))
        return
    items: list[Any] = members(good)
    if shape == "good":
        pass
    elif shape == "field":
        row_i = draw(st.integers(0, 3))
        field = draw(st.sampled_from(_FIELDS))
        value = draw(_JSONISH)

        def change(body: dict[str, Any]) -> None:
            body["entries"][row_i][field] = value

        items = with_manifest(items, change)
    elif shape == "pickled-key":
        evil = base64.b64encode(evil_pickle(marker)).decode()

        def change(body: dict[str, Any]) -> None:
            body["entries"][0]["key_type"], body["entries"][0]["key"] = "pickle", evil

        items = with_manifest(items, change)
    else:
        name = draw(st.sampled_from(["../escape", "/abs", "llamacache-backup/entries/00000009"]))
        info = tarfile.TarInfo(name)
        items = [(info, b"planted"), *items]
    write(out, items)


def test_random_archives_never_run_code_or_write_outside(
    tmp_path: Path, good_archive: Path, figure: Callable[[str, object], None]
) -> None:
    marker = tmp_path / "executed"
    work = tmp_path / "work"
    work.mkdir()
    counts = {"tracebacks": 0, "refused": 0, "restored": 0, "escapes": 0}
    n = 0

    @_fuzz(50)
    @given(st.data())
    def check(data: Any) -> None:
        nonlocal n
        n += 1
        archive = work / f"a{n}.tar.zst"
        _hostile_archive(data.draw, good_archive, archive, marker)
        dest = work / f"dest{n}"
        before = _files(tmp_path)
        try:
            with State(cache_dir=dest).manager() as m:
                restore_ops.restore(m, archive)
            counts["restored"] += 1
        except LlamacacheError:
            counts["refused"] += 1
        except Exception:  # noqa: BLE001
            counts["tracebacks"] += 1
        new = _files(tmp_path) - before
        counts["escapes"] += sum(
            1 for p in new if not (p.startswith(f"work/dest{n}") or p == f"work/a{n}.tar.zst")
        )

    check()
    figure("archives_restored", counts["restored"])
    figure("archives_refused", counts["refused"])
    figure("anomalies_archive_tracebacks", counts["tracebacks"])
    figure("executed_archive_pickles", int(marker.exists()))
    figure("escapes_archive_files_outside_target", counts["escapes"])
    assert counts["tracebacks"] == 0 and not marker.exists() and counts["escapes"] == 0
