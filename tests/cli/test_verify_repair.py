"""verify finds every injected fault, writing nothing; repair quarantines; verify then passes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from llamacache.engine import quarantine
from llamacache.formats import VALIDATORS
from tests.cli.admin_helpers import fill, manager, set_inline, snapshot, value_path
from tests.cli.helpers import cli, run

BLOB = bytes(range(256)) * 400  # 100 KiB: a file-backed entry


def _faulty_cache(root: Path) -> Path:
    inline = {f"in-{n}": os.urandom(300) for n in ("ok", "flip", "over")}
    files = {f"f-{n}": BLOB for n in ("ok", "flip", "zero", "half", "over20", "gone")}
    d = fill(root, inline, files)
    # inline: one flipped bit, 3 bytes overwritten at offset 20
    v = bytearray(inline["in-flip"])
    v[5] ^= 0x01
    set_inline(d, "in-flip", bytes(v))
    v = bytearray(inline["in-over"])
    v[20:23] = b"XYZ"
    set_inline(d, "in-over", bytes(v))
    # files: flipped bit, truncated to 0 and to half, 3 bytes at offset 20, deleted
    p = value_path(d, "f-flip")
    data = bytearray(p.read_bytes())
    data[1000] ^= 0x80
    p.write_bytes(data)
    value_path(d, "f-zero").write_bytes(b"")
    p = value_path(d, "f-half")
    p.write_bytes(p.read_bytes()[: len(BLOB) // 2])
    with open(value_path(d, "f-over20"), "r+b") as f:
        f.seek(20)
        f.write(b"\xff\xfe\xfd")
    value_path(d, "f-gone").unlink()
    (d / "ab" / "cd").mkdir(parents=True, exist_ok=True)
    (d / "ab" / "cd" / ("e" * 28 + ".val")).write_bytes(b"an orphan value file")
    (d / "notes.txt").write_bytes(b"not a name llamacache makes: never an orphan")
    (d / "tmp").mkdir(exist_ok=True)
    (d / "tmp" / "abc.tmp").write_bytes(b"half written")
    old = time.time() - 3600  # older than temp_grace (15 min): no live put's
    for stray in (d / "ab" / "cd" / ("e" * 28 + ".val"), d / "tmp" / "abc.tmp"):
        os.utime(stray, (old, old))
    return d


BAD_KEYS = ("in-flip", "in-over", "f-flip", "f-zero", "f-half", "f-over20", "f-gone")


def test_verify_names_every_fault_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = _faulty_cache(root)
    before = snapshot(root)
    result = cli("--cache-dir", str(root), "verify")
    assert result.exit_code == 1, result.stdout
    for key in BAD_KEYS:
        assert repr(key) in result.stdout, key
    assert "e" * 28 + ".val" in result.stdout and "abc.tmp" in result.stdout
    assert "notes.txt" not in result.stdout
    assert "'in-ok'" not in result.stdout and "'f-ok'" not in result.stdout
    assert snapshot(root) == before  # nothing created, changed or removed
    body = json.loads(cli("--cache-dir", str(root), "verify", "--json").stdout)
    assert body["schema"] == "llamacache.verify" and body["schema_version"] == 2
    (c,) = body["caches"]
    assert (c["corrupt"], c["missing"], c["orphaned"], c["stale_tmp"]) == (6, 1, 1, 1)
    assert c["verified"] == 2 and body["ok"] is False
    assert snapshot(root) == before
    # --quick sees sizes and presence, not bit flips
    quick = json.loads(cli("--cache-dir", str(root), "--json", "verify", "--quick").stdout)
    assert quick["caches"][0]["corrupt"] == 2 and quick["caches"][0]["missing"] == 1
    assert d.exists()


def test_repair_quarantines_then_verify_is_clean(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = _faulty_cache(root)
    dry = cli("--cache-dir", str(root), "repair", "--dry-run")
    assert dry.exit_code == 0 and "would quarantine" in dry.stdout
    assert cli("--cache-dir", str(root), "verify").exit_code == 1  # dry run changed nothing
    body = json.loads(cli("--cache-dir", str(root), "--json", "repair").stdout)
    assert body["schema"] == "llamacache.repair"
    (c,) = body["caches"]
    assert c["quarantined"] == 6 and c["rows_dropped"] == 1 and c["files_removed"] == 2
    assert quarantine.count(d) == 7
    reasons = [json.loads(p.read_text()) for p in (d / "quarantine").glob("*/reason.json")]
    assert {r["key"] for r in reasons} == {repr(k) for k in BAD_KEYS}
    flipped = next(
        p.parent for p in (d / "quarantine").glob("*/reason.json") if "'f-flip'" in p.read_text()
    )
    assert any(f.stat().st_size == len(BLOB) for f in flipped.iterdir() if f.suffix == ".val")
    ok = run("--cache-dir", str(root), "verify")
    assert ok.returncode == 0, ok.stdout
    m = manager(root)
    assert m.cache("default").get("f-ok") == BLOB
    m.close()


def test_corrupt_sqlite_page_is_reported_and_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {f"k{i:04d}": os.urandom(200) for i in range(400)})
    con = sqlite3.connect(d / "cache.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (page,) = con.execute("PRAGMA page_size").fetchone()
    (pages,) = con.execute("PRAGMA page_count").fetchone()
    con.close()
    with open(d / "cache.db", "r+b") as f:  # garbage over a page in the middle of the table
        f.seek(page * (pages // 2))
        f.write(b"\xa5" * 64)
    result = run("--cache-dir", str(root), "verify")
    assert result.returncode == 1
    assert b"index" in result.stdout
    fixed = cli("--cache-dir", str(root), "--json", "repair")
    assert fixed.exit_code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["caches"][0]["index_rebuilt"] is True
    assert cli("--cache-dir", str(root), "verify").exit_code == 0
    assert 0 < len(list(manager(root).cache("default").keys())) < 400


def test_verify_sample_max_time_and_validators(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {}, {f"f{i}": BLOB for i in range(20)}, cache="model")  # format: safetensors
    args = ("--cache-dir", str(root), "--json", "verify", "-c", "model")
    body = json.loads(cli(*args, "--sample", "50%").stdout)
    assert 0 < body["caches"][0]["checked"] < 20 and body["sample_percent"] == 50.0
    stopped = cli(*args, "--max-time", "0")
    assert stopped.exit_code == 1  # checked nothing: not a pass
    body = json.loads(stopped.stdout)
    assert body["complete"] is False and body["caches"][0]["checked"] == 0
    # A structurally broken safetensors file stored as is (its checksum matches) is corrupt;
    # a model's config.json in the same cache is not judged as safetensors.
    model = manager(root).cache("model")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((64).to_bytes(8, "little") + b"{not json" + b" " * 55)
    model.put_file("m@main/model.safetensors", broken)
    config = tmp_path / "config.json"
    config.write_text('{"hidden_size": 8}')
    model.put_file("m@main/config.json", config)
    model.close()
    result = cli("--cache-dir", str(root), "verify", "-c", "model")
    assert result.exit_code == 1
    assert "m@main/model.safetensors" in result.stdout
    assert "not a valid safetensors file" in result.stdout
    assert "config.json" not in result.stdout
    assert "safetensors" in VALIDATORS


def test_verify_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (("--sample", "0"), ("--sample", "abc"), ("--max-time", "soon")):
        result = cli("--cache-dir", str(tmp_path), "verify", *args)
        assert result.exit_code == 2, args
        assert args[1] in result.stderr
    result = cli("--cache-dir", str(tmp_path), "verify", "-c", "nope")
    assert result.exit_code == 2 and "no cache named 'nope'" in result.stderr


def test_read_path_quarantines_with_on_corrupt_miss(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = fill(root, {}, {"w": BLOB})
    p = value_path(d, "w")
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(data)
    m = manager(root, **{"cache.on_corrupt": "miss"})
    assert m.cache("default").get("w", "missed") == "missed"
    m.close()
    (reason,) = (d / "quarantine").glob("*/reason.json")
    body = json.loads(reason.read_text())
    assert body["key"] == "'w'" and "checksum" in body["reason"]
    assert (reason.parent / p.name).read_bytes() == bytes(data)
    assert cli("--cache-dir", str(root), "verify").exit_code == 0


def test_verify_judges_the_file_it_hashes_when_swapped_after_its_check(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Files are hashed on threads a little after their size was checked. A value file
    swapped in between (the index row unchanged: real damage, not a writer) is still
    reported: a same-size swap as a checksum mismatch, another size by its size."""
    from llamacache.engine import checksums

    root = tmp_path / "root"
    d = fill(root, {}, {f"f{i}": BLOB for i in range(4)})
    real_submit = checksums.DigestPool.submit
    swaps = {value_path(d, "f1"): b"y" * len(BLOB), value_path(d, "f2"): b"short"}

    def swap_then_submit(self: Any, algo: str, path: Any, size: Any = None) -> Any:
        if Path(path) in swaps:
            tmp = Path(path).with_suffix(".swap")
            tmp.write_bytes(swaps.pop(Path(path)))
            os.replace(tmp, path)
        return real_submit(self, algo, path, size)

    monkeypatch.setattr(checksums.DigestPool, "submit", swap_then_submit)
    body = json.loads(cli("--cache-dir", str(root), "--json", "verify").stdout)
    assert not swaps  # both swaps happened after the check, before the hashing
    problems = {p["key"]: p["detail"] for p in body["caches"][0]["problems"]}
    assert problems == {
        "f1": "checksum mismatch",
        "f2": f"value file is 5 bytes, index records {len(BLOB)}",
    }
    assert body["caches"][0]["verified"] == 2 and body["caches"][0]["skipped"] == 0
