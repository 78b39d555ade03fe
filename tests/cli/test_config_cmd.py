"""config show / validate / init / path, and the error boundary for config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import cli, cli_json, run


def test_help_works() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("config", "put", "get", "rm"):
        assert command in result.stdout


def test_python_dash_m_help() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "llamacache", "--help"], capture_output=True, check=False
    )
    assert proc.returncode == 0 and b"Usage" in proc.stdout


def test_show_lists_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[cache]\npolicy = "fifo"\n')
    monkeypatch.setenv("LLAMACACHE_MEMORY_SIZE", "2GB")
    body = cli_json("--config", str(cfg), "config", "show")
    rows = {row["key"]: row for row in body["settings"]}
    assert rows["cache.policy"]["source"] == f"file:{cfg}"
    assert rows["cache.memory.size"]["source"] == "env:LLAMACACHE_MEMORY_SIZE"
    assert rows["cache.eviction_threshold"]["source"] == "default"
    assert rows["cache.memory.size"]["env_var"] == "LLAMACACHE_MEMORY_SIZE"


def test_cache_dir_flag_is_a_source(tmp_path: Path) -> None:
    body = cli_json("--cache-dir", str(tmp_path / "root"), "config", "show")
    rows = {row["key"]: row for row in body["settings"]}
    assert rows["cache.disk.path"]["source"] == "flag:--cache-dir"
    assert body["root"] == str(tmp_path / "root")


def test_bad_config_value_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[cache]\ndisk_size = "-1GB"\n')
    result = cli("--config", str(cfg), "config", "validate")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "-1GB" in lines[0] and "is not a size" in lines[0]


def test_bad_env_value_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_POLICY", "lrux")
    result = cli("config", "validate")
    assert result.exit_code == 2
    assert "lrux" in result.stderr


def test_missing_config_file_exit_2(tmp_path: Path) -> None:
    result = cli("--config", str(tmp_path / "nope.toml"), "config", "show")
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr


def test_init_writes_loadable_file_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "llamacache.toml"
    assert cli("config", "init", str(target)).exit_code == 0
    assert target.exists()
    assert cli("--config", str(target), "config", "validate").exit_code == 0
    again = cli("config", "init", str(target))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli("config", "init", str(target), "--force").exit_code == 0


def test_path_reports_discovered_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    body = cli_json("config", "path")
    assert body["config_file"] is None
    local = Path.cwd() / "llamacache.toml"
    local.write_text("[cache]\n")
    body = cli_json("config", "path")
    assert body["config_file"] == str(local)


def test_validate_warns_unknown_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACACHE_MEMORY_SIZZE", "1GB")
    body = cli_json("config", "validate")
    assert any("LLAMACACHE_MEMORY_SIZZE" in w["detail"] for w in body["warnings"])
    assert {w["kind"] for w in body["warnings"]} == {"unknown-variable"}


def test_subprocess_config_show_json() -> None:
    proc = run("--json", "config", "show")
    assert proc.returncode == 0
    body = json.loads(proc.stdout)
    assert body["schema"] == "llamacache.config.show"
    assert {"key", "value", "source", "env_var"} <= set(body["settings"][0])
