"""push, warm --share and warm s3://... through the object store (moto's loopback server
stands in for a real S3 endpoint, see conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import obstore
from typer.testing import CliRunner

from llamacache.cli.app import app
from tests.cli.helpers import llamacache_exe
from tests.object.conftest import S3
from tests.object.helpers import MB, machine, subprocess_env, write_model

runner = CliRunner()


def _cli(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_warm_share_then_import_on_another_machine(tmp_path: Path, s3: S3) -> None:
    src = write_model(tmp_path / "tiny", 3)
    env_a = subprocess_env(tmp_path / "A", s3.settings, LLAMACACHE_MODEL_OBJECT="false")
    done = subprocess.run(  # a writer that warms locally, then shares
        [*llamacache_exe(), "warm", str(src), "--name", "org/tiny", "--json"],
        env=env_a,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    env_a.pop("LLAMACACHE_MODEL_OBJECT")
    shared = subprocess.run(
        [*llamacache_exe(), "warm", str(src), "--name", "org/tiny", "--share", "--json"],
        env=env_a,
        capture_output=True,
        timeout=120,
    )
    assert shared.returncode == 0, shared.stderr
    body = json.loads(shared.stdout)
    assert body["skipped"] == 2 and body["shared"]["pushed"] == 2  # the two files
    assert body["shared"]["present"] == 1  # the manifest went up after its files

    env_b = subprocess_env(tmp_path / "B", s3.with_(mode="read-only"))
    url = s3.settings.url + "/org/tiny"
    got = _cli(env_b, "--json", "warm", url)
    assert got.exit_code == 0, got.stderr
    imported = json.loads(got.stdout)
    assert imported["files"] == 2 and imported["models"] == ["org/tiny@main"]
    with machine(tmp_path / "B", s3.settings, LLAMACACHE_MODEL_OBJECT="false") as b:
        from llamacache.ml.model import ModelCache

        folder = ModelCache(b).model_path("org/tiny")
        for rel in ("model.safetensors", "config.json"):
            assert _sha(folder / rel) == _sha(src / rel)
    again = json.loads(_cli(env_b, "--json", "warm", url).stdout)
    assert again["files"] == 0 and again["skipped"] == 2


def test_warm_import_of_an_unknown_model_is_one_line(tmp_path: Path, s3: S3) -> None:
    env = subprocess_env(tmp_path / "B", s3.settings)
    got = _cli(env, "warm", s3.settings.url + "/org/absent")
    assert got.exit_code == 1
    assert "no model" in got.stderr and "Traceback" not in got.stderr


def test_push_uploads_only_what_the_store_lacks(tmp_path: Path, s3: S3) -> None:
    local = subprocess_env(tmp_path / "A", s3.settings, LLAMACACHE_MODEL_OBJECT="false")
    payload = os.urandom(3 * MB)
    (tmp_path / "big.bin").write_bytes(payload)
    put = _cli(local, "put", "-c", "model", "big", "--file", str(tmp_path / "big.bin"))
    assert put.exit_code == 0, put.stderr
    env = subprocess_env(tmp_path / "A", s3.settings)
    first = json.loads(_cli(env, "--json", "push", "-c", "model", "--all").stdout)
    assert first["caches"][0]["pushed"] == 1
    second = json.loads(_cli(env, "--json", "push", "-c", "model", "--all").stdout)
    assert second["caches"][0]["pushed"] == 0 and second["caches"][0]["present"] == 1
    with machine(tmp_path / "B", s3.settings) as b:
        assert bytes(b.cache("model").get("big")) == payload
    # the store lost everything (lifecycle expiry, a wiped bucket): push re-publishes
    with machine(tmp_path / "A", s3.settings) as a:
        tier = a.cache("model").lower[-1]
        names = [m["path"] for batch in obstore.list(tier.store) for m in batch]  # type: ignore[attr-defined]
        obstore.delete(tier.store, names)  # type: ignore[attr-defined]
    third = json.loads(_cli(env, "--json", "push", "-c", "model", "--all").stdout)
    assert third["caches"][0]["pushed"] == 1


def test_push_without_any_shared_tier_is_a_usage_error(tmp_path: Path) -> None:
    got = _cli({"XDG_CACHE_HOME": str(tmp_path)}, "push", "--all")
    assert got.exit_code == 2 and "cache.object.url" in got.stderr
