"""TTLs and ages outside sane ranges are refused with exit 2, never stored."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llamacache import CacheManager
from llamacache.errors import UsageError
from tests.cli.helpers import cli, run


@pytest.mark.parametrize("ttl", ["1e300", "inf", "nan", "-1", "-5m", "101y", "3.2e9"])
def test_put_with_an_absurd_ttl_exits_2_with_one_line(ttl: str) -> None:
    done = run("put", "k", "v", "--ttl", ttl)
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]  # (click adds its "Try --help" hint below)
    assert b"--ttl" in first and ttl.encode() in first and b"Traceback" not in done.stderr
    assert run("get", "k").returncode == 1  # nothing stored
    assert run("ls").returncode == 0


def test_a_long_but_sane_ttl_is_accepted_and_listed() -> None:
    assert cli("put", "k", "v", "--ttl", "99y").exit_code == 0
    assert cli("ls").exit_code == 0


@pytest.mark.parametrize("ttl", [1e300, math.inf, math.nan, -1.0])
def test_library_put_refuses_an_absurd_ttl(ttl: float, tmp_path: Path) -> None:
    with CacheManager() as m:
        cache = m.cache("default")
        with pytest.raises(UsageError):
            cache.put("k", "v", ttl=ttl)
        src = tmp_path / "f"
        src.write_bytes(b"x")
        with pytest.raises(UsageError):
            cache.put_file("f", src, ttl=ttl)
        assert cache.get("k") is None and cache.get("f") is None
