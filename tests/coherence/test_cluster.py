"""A real local 3-node Redis Cluster: refused at start with one line, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import run
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture
def cluster(redis_binary: str, tmp_path: Path) -> Iterator[list[RedisServer]]:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is needed to create a cluster")
    nodes = []
    try:
        for i in range(3):
            work = tmp_path / f"node{i}"
            work.mkdir()
            port = _cluster_port()
            node = RedisServer(redis_binary, work, port=port)
            node.start("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf")
            nodes.append(node)
        addrs = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = subprocess.run(
                [cli, "-p", str(nodes[0].port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            if "cluster_state:ok" in out:
                break
            time.sleep(0.1)
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def test_cluster_is_refused_with_one_line(
    cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", cluster[0].url)
    for args in (("put", "k", "v"), ("get", "k"), ("inspect", "--tier", "network")):
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
        err = done.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and "Redis Cluster" in err, err
        assert "Traceback" not in err
