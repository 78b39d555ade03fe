"""(5) Corruption, the ccache way: damage stored entries and the index, then read them back.

Bit flips, truncations and overwrites of inline values, value files and entry headers,
and of the SQLite file itself. A read must return the exact value that was stored, a
miss, or raise CorruptEntryError (a clear LlamacacheError for a damaged index) — never
different bytes.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llamacache.errors import CorruptEntryError, LlamacacheError

from ._util import Figure, llamacache_cmd, open_cache

FAULTS = ("flip", "truncate", "extend", "overwrite", "swap")


def sample_values(rng: random.Random) -> dict[str, Any]:
    """Every kind the framing stores, inline (small) and as files (large)."""
    out: dict[str, Any] = {}
    for size, where in ((200, "inline"), (50_000, "file")):
        blob = rng.randbytes(size)
        text = "".join(rng.choice("abcdé漢") for _ in range(size // 2))
        out[f"bytes-{where}"] = blob
        out[f"str-{where}"] = text
        out[f"numpy-{where}"] = np.arange(size // 4, dtype="<f4") * rng.random()
        out[f"pickle-{where}"] = {"n": rng.random(), "blob": blob[: size // 2]}
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    return type(a) is type(b) and bool(a == b)


def damage(data: bytes, fault: str, rng: random.Random, other: bytes) -> bytes:
    if not data:
        return b"x"
    if fault == "flip":
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if fault == "truncate":
        return data[: rng.randrange(len(data))]
    if fault == "extend":
        return data + rng.randbytes(rng.randint(1, 64))
    if fault == "overwrite":
        i = rng.randrange(len(data))
        n = rng.randint(1, 16)
        return data[:i] + rng.randbytes(min(n, len(data) - i)) + data[i + n :]
    return other if other != data else data + b"!"  # "swap": another entry's bytes


def verify_json(root: Path) -> dict[str, Any]:
    """``llamacache verify --json`` as a user runs it (exit 0 clean, 1 problems found)."""
    done = subprocess.run(
        [*llamacache_cmd(), "--cache-dir", str(root), "verify", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    assert body["ok"] is (done.returncode == 0)
    return body


def verify_in_process(root: Path, unclear: list[str]) -> int:
    """1 when the verify op calls a damaged cache clean, else 0 (errors are findings too)."""
    from llamacache.config import resolve
    from llamacache.manager import CacheManager
    from llamacache.ops.verify import verify

    settings = resolve(read_files=False, env={}, overrides={"cache.disk.path": str(root)})
    try:
        with CacheManager(settings) as manager:
            return int(verify(manager, "default").ok)
    except LlamacacheError:
        return 0
    except Exception as exc:  # noqa: BLE001
        unclear.append(f"verify: {type(exc).__name__}: {exc}")
        return 0


def read_outcome(cache: Any, key: str, expected: Any) -> str:
    try:
        got = cache.get(key, None)
    except CorruptEntryError:
        return "detected"
    except LlamacacheError:
        return "error"
    if got is None:
        return "miss"
    return "intact" if same(got, expected) else "wrong"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_damaged_entries_never_read_as_wrong_values(
    tmp_path: Path, figure: Figure, compression: str
) -> None:
    rng = random.Random(f"corrupt-{compression}")
    root = tmp_path / "root"
    cache = open_cache(root, "default", file_threshold=4096, compression=compression)
    values = sample_values(rng)
    cases = [(k, part, fault) for k in values for part in ("payload", "header") for fault in FAULTS]
    keyed: dict[str, tuple[str, str, str]] = {}
    for i, (k, part, fault) in enumerate(cases):
        key = f"{k}/{part}/{fault}/{i}"
        cache.put(key, values[k])
        keyed[key] = (k, part, fault)
    cache.close()
    clean_report = verify_json(root)
    false_positives = sum(len(c["problems"]) for c in clean_report["caches"])

    db = sqlite3.connect(root / "default" / "cache.db")
    rows = {r[0]: r[1:] for r in db.execute("SELECT key, tag, filename, value FROM Cache")}
    payloads = [
        Path(root / "default" / r[1]).read_bytes() if r[1] else bytes(r[2]) for r in rows.values()
    ]
    for key, (_, part, fault) in keyed.items():
        tag, filename, value = rows[key]
        other = rng.choice(payloads)
        if part == "header":
            db.execute(
                "UPDATE Cache SET tag = ? WHERE key = ?",
                (damage(tag, fault, rng, other[: len(tag)]), key),
            )
        elif filename:
            path = root / "default" / filename
            path.write_bytes(damage(path.read_bytes(), fault, rng, other))
        else:
            db.execute(
                "UPDATE Cache SET value = ? WHERE key = ?",
                (damage(bytes(value), fault, rng, other), key),
            )
    db.commit()
    db.close()

    report = verify_json(root)
    flagged = {p["key"] for c in report["caches"] for p in c["problems"] if p["key"]}
    missed = [key for key in keyed if key not in flagged]

    cache = open_cache(root, "default", file_threshold=4096, compression=compression)
    outcomes: dict[str, int] = {}
    wrong = []
    for key, (k, _, _) in keyed.items():
        outcome = read_outcome(cache, key, values[k])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "wrong":
            wrong.append(key)
    cache.close()
    figure(f"faults_injected_{compression}", len(keyed))
    for name, n in sorted(outcomes.items()):
        figure(f"read_{name}_{compression}", n)
    figure(f"corrupt_served_{compression}", len(wrong))
    figure(f"verify_detected_pct_{compression}", 100.0 * (len(keyed) - len(missed)) / len(keyed))
    figure(f"corrupt_missed_by_verify_{compression}", len(missed))
    figure(f"anomalies_verify_false_positives_{compression}", false_positives)
    assert not wrong, wrong
    assert report["ok"] is False and not missed, missed
    assert false_positives == 0 and clean_report["ok"] is True


def damage_index(db: Path, how: int, rng: random.Random) -> None:
    """0: overwrite regions past page 1; 1: anywhere (header too); 2: truncate."""
    data = bytearray(db.read_bytes())
    page = 4096
    if how == 2:
        data = data[: rng.randrange(page, len(data))]
    else:
        for _ in range(3):
            start = rng.randrange(page if how == 0 else 0, len(data))
            data[start : start + rng.randint(8, 512)] = rng.randbytes(rng.randint(8, 512))
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(bytes(data))


def test_damaged_index_file_never_serves_wrong_values(tmp_path: Path, figure: Figure) -> None:
    """Overwrite or truncate regions of cache.db itself: misses or clear errors, never lies."""
    rng = random.Random("index")
    outcomes: dict[str, int] = {}
    unclear: list[str] = []
    verify_missed = 0
    rounds = 30
    for r in range(rounds):
        root = tmp_path / f"r{r}"
        cache = open_cache(root, "default", file_threshold=4096)
        values = {f"k{i}": rng.randbytes(rng.choice((100, 3000, 9000))) for i in range(60)}
        for k, v in values.items():
            cache.put(k, v)
        cache.close()
        damage_index(root / "default" / "cache.db", r % 3, rng)
        verdict = verify_in_process(root, unclear)
        try:
            cache = open_cache(root, "default", file_threshold=4096)
        except LlamacacheError:
            verify_missed += verdict
            outcomes["open_refused"] = outcomes.get("open_refused", 0) + 1
            continue
        except Exception as exc:  # noqa: BLE001 (anything else is what this test hunts)
            unclear.append(f"open: {type(exc).__name__}: {exc}")
            continue
        seen = set()
        for k, v in values.items():
            try:
                outcome = read_outcome(cache, k, v)
            except Exception as exc:  # noqa: BLE001
                unclear.append(f"get: {type(exc).__name__}: {exc}")
                continue
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            seen.add(outcome)
        cache.close()
        if seen - {"intact"}:  # reads saw damage: verify must have said so
            verify_missed += verdict
    figure("index_damage_rounds", rounds)
    for name, n in sorted(outcomes.items()):
        figure(f"index_{name}", n)
    figure("corrupt_served_from_damaged_index", outcomes.get("wrong", 0))
    figure("anomalies_unclear_errors", len(unclear))
    figure("corrupt_index_missed_by_verify", verify_missed)
    assert outcomes.get("wrong", 0) == 0
    assert not unclear, unclear[:5]
    assert verify_missed == 0


def test_streamed_read_of_a_damaged_file_fails_at_the_end(tmp_path: Path, figure: Figure) -> None:
    """``open()`` (what ``get --out`` streams through) raises on a damaged raw file."""
    # it now raises before returning a reader: nothing unverified is handed out
    root = tmp_path / "root"
    cache = open_cache(root, file_threshold=4096)
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(300_000))
    cache.put_file("w", src)
    path = cache.get_path("w")
    assert path is not None
    with open(path, "r+b") as f:
        f.seek(123_456)
        byte = f.read(1)
        f.seek(123_456)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(CorruptEntryError):  # before the first byte is handed out
        cache.open("w")
    figure("corrupt_streamed", 0)
    cache.close()


def _damaged_schema(db: Path, undecodable: bool) -> None:
    """Damage ``sqlite_master`` in place: SQLite then calls the schema malformed.

    With ``undecodable`` the flipped byte makes SQLite's error message quote bytes that
    are not UTF-8, which Python's sqlite3 raises as UnicodeDecodeError, not sqlite3.Error
    (what the bit-flip fuzz hit). The byte is found by trying each one of page 1.
    """
    original = db.read_bytes()
    probe = db.with_name("probe.db")
    for pos in range(100, 4096):
        data = bytearray(original)
        data[pos] ^= 0x80
        probe.write_bytes(bytes(data))
        con = sqlite3.connect(probe)
        try:
            con.execute("SELECT count(*) FROM Cache").fetchone()
        except UnicodeDecodeError:
            if undecodable:
                break
        except sqlite3.DatabaseError as exc:
            if not undecodable and "malformed database schema" in str(exc):
                break
        finally:
            con.close()
    else:
        pytest.fail("no byte of page 1 gave the wanted damage")
    probe.unlink()
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("undecodable", [False, True], ids=["malformed", "not-utf8"])
def test_a_damaged_schema_is_reported_by_every_command(tmp_path: Path, undecodable: bool) -> None:
    root = tmp_path / "c"
    cmd = [*llamacache_cmd(), "--cache-dir", str(root)]
    subprocess.run([*cmd, "put", "k", "v"], check=True, capture_output=True)
    _damaged_schema(root / "default" / "cache.db", undecodable)
    for args in (["get", "k"], ["inspect"], ["ls"], ["stats"], ["verify"], ["clean"]):
        done = subprocess.run([*cmd, *args], capture_output=True, timeout=60, check=False)
        assert b"Traceback" not in done.stderr and b"error: unexpected " not in done.stderr, (
            args,
            done,
        )
        assert done.returncode in (0, 1), (args, done)
    verify = subprocess.run([*cmd, "verify"], capture_output=True, timeout=60, check=False)
    assert verify.returncode == 1 and b"damaged" in verify.stdout + verify.stderr
    repair = subprocess.run([*cmd, "repair"], capture_output=True, timeout=60, check=False)
    assert repair.returncode == 0, repair
    assert subprocess.run([*cmd, "verify"], capture_output=True, check=False).returncode == 0
