"""Start-up imports only what the command needs, and --version/--help read no configuration.

Timings are printed by tests/benchmarks/bench_startup.py; here we assert what decides them:
which modules a command loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llamacache.cli.app import COMMANDS, app
from llamacache.cli.main import first_word
from tests.cli.helpers import cli, run

HEAVY = ("rich", "rich.table", "psutil", "numpy", "redis", "asyncio", "pydantic", "yaml")


def _loaded_after(code: str) -> list[str]:
    probe = (
        "import sys\n"
        f"{code}\n"
        f"print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _run_main(*args: str) -> str:
    return (
        f"sys.argv = ['llamacache', *{list(args)!r}]\n"
        "from llamacache.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )


def test_importing_the_entry_point_and_the_package_loads_nothing_heavy() -> None:
    assert _loaded_after("import llamacache.cli.main") == []
    assert _loaded_after("import llamacache") == []
    assert "typer" not in _loaded_after("import llamacache.cli.main")


def test_version_imports_no_typer() -> None:
    probe = _run_main("--version") + "\nassert 'typer' not in sys.modules, 'typer loaded'"
    assert _loaded_after(probe) == []


@pytest.mark.parametrize("args", [("inspect",), ("ls",), ("stats",), ("verify",)])
def test_admin_commands_load_no_rich_numpy_redis_or_asyncio(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    assert cli("put", "k", "v").exit_code == 0
    loaded = _loaded_after(_run_main(*args))
    assert loaded == [], loaded


def test_help_loads_no_command_s_heavy_modules() -> None:
    """``--help`` builds every command's parser: no command module may import its op early
    (rich is typer's own help renderer, so only the ops' modules are checked)."""
    loaded = [m for m in _loaded_after(_run_main("--help")) if not m.startswith("rich")]
    assert loaded == [], loaded


def test_version_and_help_read_no_configuration(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[cache\nthis is not toml")
    for args in (("--version",), ("--help",), ("inspect", "--help")):
        proc = run("--config", str(broken), *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert run("--config", str(broken), "inspect").returncode == 2  # but a command does


def test_the_command_table_names_every_command() -> None:
    from typer.main import get_command

    assert set(get_command(app).commands) == set(COMMANDS)  # type: ignore[attr-defined]


def test_first_word_skips_root_options_and_their_values() -> None:
    assert first_word(["--config", "x.toml", "--json", "inspect", "-c", "m"]) == "inspect"
    assert first_word(["--cache-dir=/tmp", "--version"]) == "--version"
    assert first_word(["--json"]) is None


def _modules_after_main(*args: str) -> set[str]:
    probe = "import sys, json\n" + _run_main(*args) + "\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_inspect_and_verify_load_only_what_reading_an_index_needs(
    command: str, tmp_path: Path
) -> None:
    """No other command's op (command modules are imported plainly and name their ops
    lazily), no cache stack (diskcache, the tiered engine), no dataset
    code, no compressor and no cryptographic hash for a default (xxh3) cache: each costs
    start-up time that bench_startup.py and bench_verify.py measure."""
    root = tmp_path / "root"
    assert cli("--cache-dir", str(root), "put", "k", "v" * 5000).exit_code == 0
    loaded = _modules_after_main("--cache-dir", str(root), "--quiet", command)
    assert f"llamacache.ops.{command}" in loaded  # it did run
    unneeded = {
        "diskcache",
        "llamacache.engine.tiered",
        "llamacache.engine.disk",
        "llamacache.ml.dataset",
        "zstandard",
        "lz4",
        "blake3",
        "tempfile",
        *(f"llamacache.ops.{op}" for op in ("warm", "evict", "clean", "backup", "push")),
    }
    assert sorted(loaded & unneeded) == []
