"""What a new user runs into first: bad flags, empty values, missing packages, pipes, terminals."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from llamacache import __version__
from tests.cli.helpers import cli, cli_json, run

# Run the CLI with a package made unimportable (it IS installed here): the user's view without it.
_WITHOUT = (
    "import sys; sys.modules[{mod!r}] = None; sys.argv = ['llamacache', *sys.argv[1:]]; "
    "from llamacache.cli.main import main; main()"
)


def _without(
    mod: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(mod=mod), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("llamacache: error: "), stderr
    return lines[0]


# -- 1, 2: optional packages ----------------------------------------------------------------------


def test_cachetools_is_a_runtime_dependency() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("cachetools") for d in deps)


def test_bench_compare_without_cachetools_names_what_to_install() -> None:
    r = _without("cachetools", "bench", "--compare", "--ops", "50")
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr)
    assert "cachetools" in line and "install" in line and "unexpected" not in line


@pytest.mark.parametrize(
    "args",
    [("inspect",), ("ls",), ("verify",), ("clean",), ("evict", "--key", "k", "--yes")],
)
def test_tier_network_without_redis_is_the_put_get_message(args: tuple[str, ...]) -> None:
    r = _without("redis", *args, "--tier", "network", env={"LLAMACACHE_NETWORK_URL": "redis://h/0"})
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr)
    assert "cache.network.url is set but the redis package is missing" in line
    assert line.endswith("install llamacache[network]")


def test_tier_network_without_redis_or_url_says_no_url() -> None:
    r = _without("redis", "ls", "--tier", "network")
    assert r.returncode == 2
    assert "no network tier: set [cache.network] url" in _one_error_line(r.stderr)


# -- 3: values accepted by validate that crashed later --------------------------------------------


@pytest.mark.parametrize(
    "var",
    [
        "LLAMACACHE_DISK_CLEANUP_INTERVAL",
        "LLAMACACHE_MEMORY_CLEANUP_INTERVAL",
        "LLAMACACHE_TRAINING_CLEANUP_INTERVAL",
    ],
)
def test_cleanup_interval_zero_is_a_config_error(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, "0s")
    r = cli("config", "validate")
    assert r.exit_code == 2
    assert _one_error_line(r.stderr) == (
        f'llamacache: error: {var}: "0s" is not valid; expected a positive duration'
    )


def test_cleanup_interval_zero_in_a_file_stops_the_daemon_before_it_starts(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[caches.training]\ncleanup_interval = 0\n")
    r = run("--config", str(cfg), "daemon")
    assert r.returncode == 2
    line = _one_error_line(r.stderr.decode())
    assert "caches.training.cleanup_interval: 0 is not valid; expected a positive duration" in line


def test_network_chunk_size_zero_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACACHE_NETWORK_CHUNK_SIZE", "0")
    r = cli("config", "validate")
    assert r.exit_code == 2 and "expected a positive size" in _one_error_line(r.stderr)


# -- 4, 5: paths -----------------------------------------------------------------------------------


def test_get_out_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    assert cli("put", "k", "v").exit_code == 0
    out = tmp_path / "nope" / "x"
    r = cli("get", "k", "--out", str(out))
    assert r.exit_code == 2
    assert _one_error_line(r.stderr) == (
        f"llamacache: error: --out {out}: folder {out.parent} does not exist"
    )
    assert not out.parent.exists()


def test_unmapped_os_error_names_the_cache_root_not_cache_question_mark() -> None:
    r = run("--cache-dir", "/proc/nope", "put", "k", "v")
    line = _one_error_line(r.stderr.decode())
    assert r.returncode == 1
    assert "'?'" not in line and line.startswith("llamacache: error: cache root /proc/nope: ")


def test_empty_cache_dir_flag_is_a_usage_error() -> None:
    r = cli("--cache-dir", "", "put", "k", "v")
    assert r.exit_code == 2
    assert "--cache-dir" in r.stderr and "is empty" in r.stderr
    assert list(Path.cwd().iterdir()) == []  # the (isolated) cwd was not made a cache


def test_empty_disk_path_from_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACACHE_DISK_PATH", "")
    r = cli("ls")
    assert r.exit_code == 2
    assert "LLAMACACHE_DISK_PATH: is set but empty" in _one_error_line(r.stderr)


# -- 6: rm - and empty keys -----------------------------------------------------------------------


def test_rm_dash_reads_keys_from_stdin_even_odd_ones() -> None:
    odd = ["with space", "quote's", "-", "a\tb"]
    for key in [*odd, "keep"]:
        assert cli("put", "-c", "training", key, "v").exit_code == 0
    listed = run("ls", "-c", "training", "-q", "--filter", "key~*").stdout
    assert set(listed.decode().splitlines()) >= {*odd, "keep"}
    r = run("rm", "-c", "training", "-", input=("\n".join(odd) + "\n").encode())
    assert r.returncode == 0, r.stderr
    assert set(run("ls", "-c", "training", "-q").stdout.decode().splitlines()) == {"keep"}


def test_rm_dash_with_empty_stdin_is_a_no_op() -> None:
    r = cli("rm", "-", input="")
    assert r.exit_code == 0 and "removed 0 of 0" in r.stderr


def test_rm_without_keys_and_dash_among_keys_are_usage_errors() -> None:
    assert cli("rm").exit_code == 2
    r = cli("rm", "a", "-")
    assert r.exit_code == 2 and "must be the only KEY" in r.stderr


def test_put_empty_key_is_a_usage_error() -> None:
    r = cli("put", "", "v")
    assert r.exit_code == 2 and "is empty" in _one_error_line(r.stderr)
    assert cli_json("ls")["entries"] == []


# -- 7: small things ------------------------------------------------------------------------------


def test_rm_missing_ok_is_silent() -> None:
    r = cli("rm", "nope", "--missing-ok")
    assert r.exit_code == 0
    assert "nope" not in r.stderr


def test_put_file_that_is_a_directory_says_so(tmp_path: Path) -> None:
    r = cli("put", "k", "--file", str(tmp_path))
    assert r.exit_code == 2
    assert _one_error_line(r.stderr).endswith(f"--file {tmp_path}: is a directory; expected a file")


def test_config_show_prefix_that_matches_nothing() -> None:
    r = cli("config", "show", "nosuch.prefix")
    assert r.exit_code == 2 and r.stdout == ""
    assert "no setting matches 'nosuch.prefix'" in _one_error_line(r.stderr)


def test_json_with_prometheus_stdout_is_rejected() -> None:
    for args in (
        ("--json", "stats", "--prometheus", "-"),
        ("stats", "--prometheus", "-", "--json"),
    ):
        r = cli(*args)
        assert r.exit_code == 2 and r.stdout == "", args


def test_quiet_per_command_on_put_get_rm() -> None:
    assert cli("put", "k", "v", "--quiet").stderr == ""
    assert cli("get", "nope", "--quiet").stderr == ""
    r = cli("rm", "k", "nope", "--quiet")
    assert r.exit_code == 1 and r.stderr == ""


# -- 8: --version ---------------------------------------------------------------------------------


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.decode() == f"llamacache {__version__}\n"


# -- 9: get on a terminal vs a pipe ---------------------------------------------------------------


def test_get_of_a_string_ends_with_a_newline_on_a_pipe_and_a_terminal() -> None:
    """Like every other value (JSON ends with one); bytes and files stay byte-exact."""
    assert cli("put", "k", "no newline").exit_code == 0
    assert run("get", "k").stdout == b"no newline\n"
    main, follower = pty.openpty()
    try:
        from tests.cli.helpers import llamacache_exe

        proc = subprocess.run(
            [*llamacache_exe(), "get", "k"], stdout=follower, timeout=60, check=False
        )
        assert proc.returncode == 0
        assert os.read(main, 1000) == b"no newline\r\n"  # the tty shows \n as \r\n
    finally:
        os.close(main)
        os.close(follower)


# -- 11: flag errors are one line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("--bogus",), "llamacache"),
        (("ls", "--bogus"), "llamacache ls"),
        (("get",), "llamacache get"),
    ],
)
def test_flag_errors_are_one_line_plus_a_hint(args: tuple[str, ...], hint: str) -> None:
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("llamacache: error: "), lines
    assert lines[1] == f"Try '{hint} --help'."
