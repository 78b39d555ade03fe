"""Pipes select exactly the keys they carry; bad bytes and URLs are one line and exit 2."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli.helpers import cli, llamacache_exe, run

KEYS = ["a", "b", "a\u2028b", "c\x1cd", "e\x85f", "g\rh"]


def _fill(root: str) -> None:
    for k in KEYS:
        assert cli("--cache-dir", root, "put", k, "v").exit_code == 0


def _left(root: str) -> set[str]:
    out = run("--cache-dir", root, "ls", "-0")
    assert out.returncode == 0
    return {k.decode() for k in out.stdout.split(b"\0") if k}


def test_rm_dash_splits_on_newline_only(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    _fill(root)
    picked = "a\u2028b\nc\x1cd\ne\x85f\n".encode()
    out = run("--cache-dir", root, "rm", "-", input=picked)
    assert out.returncode == 0, out.stderr
    assert _left(root) == {"a", "b", "g\rh"}  # only the selected keys went


def test_ls_0_piped_into_rm_0_removes_every_key(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    _fill(root)
    assert cli("--cache-dir", root, "put", "multi\nline", "v").exit_code == 0
    ls = subprocess.run(
        [*llamacache_exe(), "--cache-dir", root, "ls", "-0"], capture_output=True, check=True
    )
    assert b"multi\nline\0" in ls.stdout
    out = run("--cache-dir", root, "rm", "-0", "-", input=ls.stdout)
    assert out.returncode == 0, out.stderr
    assert _left(root) == set()


def test_rm_0_needs_stdin_and_stdin_must_be_utf8(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    assert cli("--cache-dir", root, "rm", "-0", "k").exit_code == 2
    out = run("--cache-dir", root, "rm", "-", input=b"ok\n\xff\n")
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1 and b"UTF-8" in out.stderr


@pytest.mark.parametrize("command", [("put", "KEY", "v"), ("get", "KEY"), ("rm", "KEY")])
def test_non_utf8_key_is_one_line_exit_2(
    tmp_path: os.PathLike[str], command: tuple[str, ...]
) -> None:
    bad = os.fsdecode(b"caf\xe9")  # what Python makes of a latin-1 byte in argv
    args = [bad if a == "KEY" else a for a in command]
    out = run("--cache-dir", str(tmp_path), *args)
    assert out.returncode == 2
    assert out.stderr.count(b"\n") == 1 and b"not valid UTF-8" in out.stderr
    assert b"Traceback" not in out.stderr


def test_malformed_redis_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", "redis://[::1")
    out = run("get", "k")
    assert out.returncode == 2
    assert out.stderr.count(b"\n") == 1 and b"redis://[::1" in out.stderr
