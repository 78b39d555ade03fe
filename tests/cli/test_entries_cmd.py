"""put / get / rm through the real entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.helpers import cli, cli_json, run


def test_put_get_string_roundtrip() -> None:
    assert cli("put", "greeting", "hello world").exit_code == 0
    result = cli("get", "greeting")
    assert result.exit_code == 0
    assert result.stdout == "hello world\n"


def test_get_miss_exits_1_with_one_line() -> None:
    result = cli("get", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "llamacache: miss: 'nope' is not in cache 'default'"


def test_put_file_streams_and_get_out_writes_same_bytes(tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)
    body = cli_json("put", "blob", "--file", str(src), "-c", "model")
    assert body["schema"] == "llamacache.put" and body["bytes"] == len(data)
    assert body["kind"] == "file" and len(body["digest"]) == 32
    out = tmp_path / "out.bin"
    assert cli("get", "-c", "model", "blob", "--out", str(out)).exit_code == 0
    assert out.read_bytes() == data


def test_put_stdin_dash() -> None:
    assert cli("put", "k", "-", input=b"from stdin\x00\xff").exit_code == 0
    assert cli("get", "k").stdout_bytes == b"from stdin\x00\xff"


def test_put_needs_exactly_one_source(tmp_path: Path) -> None:
    result = cli("put", "k")
    assert result.exit_code == 2
    assert "exactly one of VALUE" in result.stderr
    missing = cli("put", "k", "--file", str(tmp_path / "absent"))
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr


def test_unknown_cache_is_usage_error() -> None:
    result = cli("get", "-c", "nosuch", "k")
    assert result.exit_code == 2
    assert "no cache named 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_rm_reports_missing_and_exit_codes() -> None:
    cli("put", "a", "1")
    cli("put", "b", "2")
    body = cli_json("rm", "a", "b")
    assert body["removed"] == ["a", "b"] and body["missing"] == []
    result = cli("rm", "a")
    assert result.exit_code == 1
    assert cli("rm", "a", "--missing-ok").exit_code == 0
    assert cli("get", "b").exit_code == 1


def test_get_json_for_string() -> None:
    cli("put", "k", "v")
    body = cli_json("get", "k")
    assert body == {
        "schema": "llamacache.get",
        "schema_version": 1,
        "cache": "default",
        "key": "k",
        "found": True,
        "type": "str",
        "bytes": 1,
        "path": None,
        "value": "v",
    }


def test_path_like_key_is_just_a_key(cache_root: Path, tmp_path: Path) -> None:
    assert cli("put", "../../../escape", "x").exit_code == 0
    assert cli("get", "../../../escape").stdout == "x\n"
    assert not (tmp_path / "escape").exists()
    assert not any(p.name == "escape" for p in tmp_path.rglob("*"))


def test_ttl_flag_rejects_bad_duration() -> None:
    result = cli("put", "k", "v", "--ttl", "soon")
    assert result.exit_code == 2
    assert "soon" in result.stderr and "duration" in result.stderr


def test_subprocess_put_get_rm_as_a_user_would() -> None:
    assert run("put", "-c", "system", "token", "abc").returncode == 0
    got = run("get", "-c", "system", "token")
    assert got.returncode == 0 and got.stdout == b"abc\n"
    removed = run("--json", "rm", "-c", "system", "token")
    assert json.loads(removed.stdout)["removed"] == ["token"]
    miss = run("get", "-c", "system", "token")
    assert miss.returncode == 1 and b"Traceback" not in miss.stderr
