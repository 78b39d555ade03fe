"""`config init FILE` writes the format the file's suffix names, and what it writes
validates with `config validate` and loads to the built-in defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamacache import config
from tests.cli.helpers import cli, run


@pytest.mark.parametrize("name", ["cfg/init.yaml", "cfg/init.yml", "cfg/init.toml", "cfg/I.YAML"])
def test_init_writes_what_the_suffix_names_and_it_validates(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    made = run("config", "init", str(path))
    assert made.returncode == 0, made.stderr
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        doc = yaml.safe_load(text)
        assert "[cache]" not in text and "cache:" in text
        assert doc["cache"]["policy"] == "lru" and "model" in doc["caches"]
    else:
        import tomllib

        assert tomllib.loads(text)["cache"]["policy"] == "lru"
    checked = run("--config", str(path), "config", "validate")
    assert checked.returncode == 0, checked.stderr
    shown = run("--config", str(path), "--json", "config", "show")
    rows = {r["key"]: r for r in json.loads(shown.stdout)["settings"]}
    assert rows["cache.policy"]["source"].startswith("file")


def test_yaml_starter_loads_to_the_defaults(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    path = tmp_path / "starter.yaml"
    path.write_text(config.render_starter_config("yaml"))
    from_file = config.resolve(config_file=path, env=home, cwd=tmp_path)
    defaults = config.resolve(env=home, cwd=tmp_path)
    assert from_file.caches == defaults.caches
    assert from_file.values == defaults.values
    assert from_file.network is None


@pytest.mark.parametrize("name", ["init.json", "init", "init.cfg"])
def test_init_refuses_a_suffix_it_cannot_write(tmp_path: Path, name: str) -> None:
    result = cli("config", "init", str(tmp_path / name))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and ".toml" in lines[0] and ".yaml" in lines[0]
    assert not (tmp_path / name).exists()
