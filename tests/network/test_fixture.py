"""The redis fixture skips when no server is found, and fails under LLAMACACHE_REQUIRE_REDIS=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("require", "outcome"), [("0", b"1 skipped"), ("1", b"1 error")])
def test_missing_server_skips_or_fails(tmp_path: Path, require: str, outcome: bytes) -> None:
    (tmp_path / "test_needs_redis.py").write_text(
        "def test_it(redis_server):\n    assert redis_server.url\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LLAMACACHE_REDIS_SERVER": str(tmp_path / "no-such-redis-server"),
        "LLAMACACHE_REQUIRE_REDIS": require,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.redis_server", "-p", "no:cacheprovider",
         str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert outcome in done.stdout, done.stdout.decode()
    if require == "1":
        assert b"LLAMACACHE_REQUIRE_REDIS=1" in done.stdout
