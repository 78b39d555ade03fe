"""`llamacache schedule`: the cron line and systemd units, and install/uninstall round trips."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from llamacache.ops import schedule
from tests.cli.helpers import cli, run


def test_cron_line_runs_clean_quietly_with_absolute_exe_lock_wait_and_log() -> None:
    result = cli("schedule", "cron", "--every", "15m", "--cache", "model")
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip()
    fields = line.split()
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    exe = fields[5]
    assert Path(exe).is_absolute() and Path(exe).exists()
    argv = shlex.split(line.split(" >> ")[0])[5:]
    assert argv[1:] == ["clean", "--quiet", "--wait", "10m", "--cache", "model"]
    assert line.endswith(">> " + str(schedule.default_log()) + " 2>&1 # llamacache-schedule:model")


def test_lock_wait_is_shorter_than_a_short_interval() -> None:
    assert schedule.lock_wait(3600) == "10m"
    assert schedule.lock_wait(300) == "150s"
    line = cli("schedule", "cron", "--every", "1m").stdout
    assert "clean --quiet --wait 30s >>" in line


def test_cron_fields_table() -> None:
    assert schedule.cron_fields(60) == "* * * * *"
    assert schedule.cron_fields(300) == "*/5 * * * *"
    assert schedule.cron_fields(3600) == "0 * * * *"
    assert schedule.cron_fields(6 * 3600) == "0 */6 * * *"
    assert schedule.cron_fields(86400) == "0 0 * * *"
    assert schedule.cron_fields(7 * 86400) == "0 0 * * 0"


def test_cron_refuses_intervals_it_cannot_express() -> None:
    for every in ("45m", "90s", "5h", "3d", "10s"):
        result = cli("schedule", "cron", "--every", every)
        assert result.exit_code == 2, every
        assert "--every" in result.stderr and "cron" in result.stderr
        assert result.stderr.count("\n") == 1


def test_config_file_is_pinned_by_absolute_path(tmp_path: Path) -> None:
    cfg = tmp_path / "llamacache.toml"
    cfg.write_text('[cache]\ndisk_size = "1GB"\n')
    line = cli("--config", str(cfg), "schedule", "cron").stdout
    assert f"--config {cfg} clean" in line
    line = cli("--cache-dir", "rel/caches", "schedule", "cron").stdout
    assert f"--cache-dir {Path('rel/caches').absolute()} clean" in line


def test_percent_is_escaped_for_cron(tmp_path: Path) -> None:
    log = tmp_path / "100%.log"
    line = cli("schedule", "cron", "--log", str(log)).stdout.strip()
    assert "100\\%.log" in line


def test_cron_install_uninstall_round_trip(tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=me\n0 3 * * * /usr/bin/backup-home\n")
    before = crontab.read_text()
    args = ("schedule", "cron", "--crontab-file", str(crontab), "--every", "30m")
    assert cli(*args, "--install").exit_code == 0
    assert cli(*args, "--install").exit_code == 0  # idempotent
    assert cli(*args, "--install", "--cache", "model").exit_code == 0
    lines = crontab.read_text().splitlines()
    assert lines[:2] == ["MAILTO=me", "0 3 * * * /usr/bin/backup-home"]
    ours = [ln for ln in lines if schedule.MARKER in ln]
    assert len(ours) == 2 and ours[0].startswith("*/30 ")
    assert schedule.default_log().parent.is_dir()
    # a changed interval replaces the line, it does not add one
    cli("schedule", "cron", "--crontab-file", str(crontab), "--every", "1h", "--install")
    ours = [ln for ln in crontab.read_text().splitlines() if ln.endswith(":all")]
    assert len(ours) == 1 and ours[0].startswith("0 * * * * ")
    assert cli(*args, "--uninstall").exit_code == 0
    assert cli(*args, "--uninstall", "--cache", "model").exit_code == 0
    assert crontab.read_text() == before
    result = cli(*args, "--uninstall")  # idempotent
    assert result.exit_code == 0 and "nothing to do" in result.stderr
    assert crontab.read_text() == before


def test_systemd_units_and_round_trip(tmp_path: Path) -> None:
    units = tmp_path / "units"
    printed = cli("schedule", "systemd", "--every", "6h", "-c", "model").stdout
    assert "# llamacache-clean-model.service" in printed
    assert "OnUnitActiveSec=21600s" in printed
    args = ("schedule", "systemd", "--every", "6h", "-c", "model", "--units-dir", str(units))
    result = cli(*args, "--install")
    assert result.exit_code == 0, result.stderr
    talk = " ".join(result.stderr.split())
    assert "systemctl --user enable --now llamacache-clean-model.timer" in talk
    service = (units / "llamacache-clean-model.service").read_text()
    timer = (units / "llamacache-clean-model.timer").read_text()
    assert "Type=oneshot" in service
    exec_start = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.split("=", 1)[1].split()[1:] == [
        "clean",
        "--quiet",
        "--wait",
        "10m",
        "--cache",
        "model",
    ]
    assert "Unit=llamacache-clean-model.service" in timer and "WantedBy=timers.target" in timer
    (units / "other.service").write_text("[Service]\n")
    assert cli(*args, "--install").exit_code == 0
    assert sorted(p.name for p in units.iterdir()) == [
        "llamacache-clean-model.service",
        "llamacache-clean-model.timer",
        "other.service",
    ]
    assert cli(*args, "--uninstall").exit_code == 0
    assert cli(*args, "--uninstall").exit_code == 0
    assert [p.name for p in units.iterdir()] == ["other.service"]


def test_systemd_default_dir_honours_xdg_config_home(isolated_env: Path) -> None:
    assert cli("schedule", "systemd", "--install").exit_code == 0
    assert (isolated_env / ".config" / "systemd" / "user" / "llamacache-clean.timer").exists()


def test_unknown_cache_and_conflicting_flags_exit_2(tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    result = cli("schedule", "cron", "-c", "nope", "--install", "--crontab-file", str(crontab))
    assert result.exit_code == 2 and "nope" in result.stderr
    assert not crontab.exists()
    result = cli("schedule", "cron", "--install", "--uninstall")
    assert result.exit_code == 2 and "--install" in result.stderr


def test_schedule_subprocess_json(tmp_path: Path) -> None:
    crontab = tmp_path / "ct"
    done = run("--json", "schedule", "cron", "--install", "--crontab-file", str(crontab))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["schema"] == "llamacache.schedule" and body["changed"] is True
    assert body["files"]["crontab"] in crontab.read_text()


def test_install_goes_through_crontab_l_and_crontab_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's crontab is edited with `crontab -l` / `crontab -` (here a stand-in binary
    keeping the table in a file, so the test never touches the machine's real crontab)."""
    table = tmp_path / "table"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "crontab"
    fake.write_text(
        "#!/bin/sh\n"
        f'T="{table}"\n'
        'if [ "$1" = "-l" ]; then [ -f "$T" ] || { echo "no crontab for me" >&2; exit 1; };'
        ' cat "$T"; exit 0; fi\n'
        'if [ "$1" = "-" ]; then cat > "$T"; exit 0; fi\n'
        "exit 2\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert cli("schedule", "cron", "--install").exit_code == 0  # "no crontab" is an empty one
    assert table.read_text().count(schedule.MARKER) == 1
    table.write_text("0 1 * * * other-job\n" + table.read_text())
    assert cli("schedule", "cron", "--install").exit_code == 0
    assert table.read_text().count(schedule.MARKER) == 1
    assert cli("schedule", "cron", "--uninstall").exit_code == 0
    assert table.read_text() == "0 1 * * * other-job\n"


def _assignments(line: str) -> list[str]:
    """The ``VAR=value`` words before the executable in a crontab line's command."""
    words = shlex.split(line.split(" >> ")[0].replace("\\%", "%"))[5:]
    return words[: next(i for i, w in enumerate(words) if "=" not in w)]


def test_cron_carries_the_environment_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: LLAMACACHE_MODEL_SIZE=50GB in the shell, cron's clean used 1024 MB."""
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "50GB")
    monkeypatch.setenv("CACHE_POLICY", "fifo")
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", "team's 100%:")  # quoting survives sh
    result = cli("schedule", "cron")
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip()
    assigns = _assignments(line)
    assert assigns == [
        "CACHE_POLICY=fifo",
        "LLAMACACHE_MODEL_SIZE=50GB",
        "LLAMACACHE_NETWORK_KEY_PREFIX=team's 100%:",
    ]
    # what cron does: sh runs the command in a bare environment; the values arrive intact
    command = line.split(" >> ")[0].split(" ", 5)[5].replace("\\%", "%")  # as cron runs it
    probe = command.split(" clean --quiet")[0] + " --json config show"
    bare = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}
    import subprocess

    shown = subprocess.run(["sh", "-c", probe], env=bare, capture_output=True, text=True)
    rows = {r["key"]: r for r in json.loads(shown.stdout)["settings"]}
    assert rows["caches.model.size"]["source"] == "env:LLAMACACHE_MODEL_SIZE"
    assert rows["caches.model.size"]["value"] == "50GB"
    assert rows["cache.network.key_prefix"]["value"] == "team's 100%:"


def test_systemd_service_carries_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "50GB")
    out = cli("schedule", "systemd").stdout
    assert "Environment=LLAMACACHE_MODEL_SIZE=50GB\n" in out
    body = cli_json_schedule("systemd")
    assert body["environment"] == {"LLAMACACHE_MODEL_SIZE": "50GB"}


def cli_json_schedule(kind: str) -> dict[str, object]:
    result = cli("--json", "schedule", kind)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("kind", ["cron", "systemd"])
def test_schedule_refuses_to_drop_or_write_a_secret(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_SIGNING_KEY", "hunter2-very-secret")
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", "redis://app:pw@127.0.0.1:6379/0")
    crontab = tmp_path / "crontab"
    extra = ("--crontab-file", str(crontab)) if kind == "cron" else ()
    result = cli("schedule", kind, "--install", *extra, "--units-dir", str(tmp_path))
    if kind == "cron":
        result = cli("schedule", kind, "--install", *extra)
    assert result.exit_code == 2
    assert "LLAMACACHE_SIGNING_KEY" in result.stderr and "LLAMACACHE_NETWORK_URL" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert not crontab.exists() and not list(tmp_path.glob("*.service"))


def test_the_commands_default_interval_is_the_ops() -> None:
    """schedule_cmd keeps its own copy so start-up does not import the op; same value."""
    from llamacache.cli import schedule_cmd
    from llamacache.ops import schedule as schedule_ops

    assert schedule_cmd.DEFAULT_EVERY == schedule_ops.DEFAULT_EVERY


@pytest.mark.parametrize("kind", ["cron", "systemd"])
def test_relative_paths_in_carried_variables_are_made_absolute(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cron runs from $HOME: a relative LLAMACACHE_DISK_PATH would clean another folder.
    Pinned to the folder it names now, as --cache-dir ./rel is."""
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LLAMACACHE_DISK_PATH", "rel/cache")
    monkeypatch.setenv("LLAMACACHE_MODEL_TEMP_DIR", "./scratch")
    monkeypatch.setenv("LLAMACACHE_MODEL_SIZE", "50GB")  # not a path: unchanged
    body = cli_json_schedule(kind)
    env = body["environment"]
    assert isinstance(env, dict)
    assert env["LLAMACACHE_DISK_PATH"] == str(work / "rel" / "cache")
    assert env["LLAMACACHE_MODEL_TEMP_DIR"] == str(work / "scratch")
    assert env["LLAMACACHE_MODEL_SIZE"] == "50GB"
    flag = cli_json_schedule_args(kind, "--cache-dir", "./rel/cache")
    assert str(work / "rel" / "cache") in flag["command"]  # type: ignore[operator]
    if kind == "cron":  # run it as cron would: from $HOME, in a bare environment
        line = cli("schedule", "cron").stdout.strip()
        command = line.split(" >> ")[0].split(" ", 5)[5].replace("\\%", "%")
        probe = command.split(" clean --quiet")[0] + " --json config show"
        bare = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}
        import subprocess

        shown = subprocess.run(
            ["sh", "-c", probe], env=bare, capture_output=True, text=True, cwd=os.environ["HOME"]
        )
        rows = {r["key"]: r for r in json.loads(shown.stdout)["settings"]}
        assert rows["cache.disk.path"]["value"] == str(work / "rel" / "cache")


def cli_json_schedule_args(kind: str, *args: str) -> dict[str, object]:
    result = cli("--json", *args, "schedule", kind)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body
