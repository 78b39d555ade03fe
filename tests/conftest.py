"""Shared fixtures: every test runs with its own HOME, XDG dirs and working directory.

No test may read the developer's real config or write to their real cache, and no
LLAMACACHE_* / CACHE_* variable from the calling shell may leak into a test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_KEEP = {"LLAMACACHE_REDIS_SERVER", "LLAMACACHE_REQUIRE_REDIS", "LLAMACACHE_TEST_S3_URL"}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME/XDG tree and cwd; the returned path is the test's home."""
    home = tmp_path / "isolated-home"
    home.mkdir()
    for name in list(os.environ):
        if (name.startswith("LLAMACACHE_") and name not in _KEEP) or name.startswith("CACHE_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    work = tmp_path / "isolated-cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield home


@pytest.fixture
def cache_root(isolated_env: Path) -> Path:
    """The default cache root under the isolated home."""
    return isolated_env / ".cache" / "llamacache"


pytest_plugins = ("tests.redis_server",)
