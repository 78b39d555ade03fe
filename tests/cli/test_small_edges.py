"""Small first-hour edges: a string value ends with a newline on stdout (bytes stay
exact), an empty key is a usage error for get as for put, a misspelt LLAMACACHE_*
setting is warned about with the nearest name, and --help ends with the exit codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from llamacache.cli._manual import EXIT_STATUS
from tests.cli.helpers import cli, llamacache_exe, run


def test_string_gets_a_newline_bytes_stay_exact(tmp_path: Path) -> None:
    assert run("put", "greeting", "hello").returncode == 0
    assert run("get", "greeting").stdout == b"hello\n"
    assert run("put", "line", "hello\n").returncode == 0
    assert run("get", "line").stdout == b"hello\n"  # never doubled
    out = tmp_path / "g.txt"
    assert run("get", "greeting", "--out", str(out)).returncode == 0
    assert out.read_bytes() == b"hello"  # a file gets the value exactly
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"abc")  # bytes without a final newline
    assert run("put", "raw", "--file", str(raw)).returncode == 0
    assert run("get", "raw").stdout == b"abc"
    probe = (
        "from llamacache import CacheManager\n"
        "with CacheManager() as m: m.cache('default').put('b', b'xyz')\n"
    )
    subprocess.run([os.sys.executable, "-c", probe], check=True)  # type: ignore[attr-defined]
    assert run("get", "b").stdout == b"xyz"


def test_get_of_an_empty_key_is_a_usage_error_like_put() -> None:
    put = cli("put", "", "x")
    get = cli("get", "")
    assert put.exit_code == get.exit_code == 2
    assert 'KEY: "" is empty' in get.stderr and len(get.stderr.strip().splitlines()) == 1


def _with_env(*args: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **extra}
    return subprocess.run([*llamacache_exe(), *args], capture_output=True, env=env, check=False)


def test_a_misspelt_setting_is_warned_about_with_the_nearest_name() -> None:
    result = _with_env("inspect", LLAMACACHE_MODLE_SIZE="4GB")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "LLAMACACHE_MODLE_SIZE" in lines[0] and "LLAMACACHE_MODEL_SIZE" in lines[0]
    other = _with_env("inspect", LLAMACACHE_EMBED_SIZE="4GB")  # no cache named "embed"
    assert b"LLAMACACHE_EMBED_SIZE" in other.stderr
    quiet = _with_env("--quiet", "inspect", LLAMACACHE_MODLE_SIZE="4GB")
    assert quiet.stderr == b""
    validate = _with_env("config", "validate", LLAMACACHE_MODLE_SIZE="4GB")
    assert validate.stderr.decode().count("LLAMACACHE_MODLE_SIZE") == 1  # said once


def test_variables_that_are_not_settings_are_left_alone() -> None:
    result = _with_env("inspect", LLAMACACHE_FAULT_TRIALS="3", LLAMACACHE_BENCH_ML_GB="1")
    assert result.returncode == 0 and result.stderr == b"", result.stderr


def test_help_ends_with_the_exit_codes() -> None:
    out = run("--help").stdout.decode()
    tail = out[out.index("Commands") :]
    for code, _ in EXIT_STATUS:
        assert f" {code} " in tail or f" {code}:" in tail or f"{code}  " in tail, code
    assert "exit" in tail.lower()
