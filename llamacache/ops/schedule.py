"""Scheduled cleanup: the crontab line or systemd user units that run ``llamacache clean``.

The scheduled command is built to survive cron's bare environment: the executable by
absolute path, the config file the user has now by absolute path (cron does not run in
their working directory), ``--wait`` so an overlapping run queues on the admin lock
instead of failing, the configuration in force from the environment (every ``LLAMACACHE_*``
and ``CACHE_*`` variable set now, so cron's ``clean`` keeps a model cache of the size the
user chose) or a refusal naming what it would have to drop, and output appended to a log
file. Installed lines carry a marker
comment so ``--uninstall`` removes exactly what ``--install`` added, and installing
twice leaves one line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llamacache.config import schema
from llamacache.errors import LlamacacheError, OptionError, UsageError
from llamacache.ops import output
from llamacache.ops._report import Report

MARKER = "# llamacache-schedule"
DEFAULT_EVERY = 3600.0
DEFAULT_WAIT = "10m"
_EVENLY = "1m, 2m, 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or 7d"


@dataclass(frozen=True)
class ScheduleReport(Report):
    """What ``schedule`` printed, installed or removed; ``files`` maps a path/name to its text."""

    schema = "schedule"
    kind: str  # "cron" | "systemd"
    every: float  # seconds
    cache: str | None
    command: tuple[str, ...]
    log: Path | None
    files: Mapping[str, str]
    action: str = "print"  # "print" | "install" | "uninstall"
    target: str | None = None  # the crontab (file) or units directory changed
    changed: bool = False  # False when install/uninstall found nothing to do
    environment: Mapping[str, str] | None = None  # variables the scheduled run is given


CARRIED_PREFIXES = (schema.ENV_PREFIX, "CACHE_")
# Not configuration: the config file is pinned by --config; the others steer test servers.
NOT_CARRIED = frozenset(schema.NON_SETTING_ENV)


def _is_secret(name: str, value: str) -> bool:
    """A value ``config show`` would mask (a signing key, a URL's password)."""
    for st in schema.SETTINGS:
        if name in st.env:
            return "***" in str(st.show(value))
    return False


def carried_environment(env: Mapping[str, str], cwd: Path | None = None) -> dict[str, str]:
    """The variables a scheduled run must be given to see the configuration in force now.

    A relative folder (``LLAMACACHE_DISK_PATH=./cache``) is made absolute against ``cwd``
    (default: the working folder), as ``--cache-dir`` is: cron runs from $HOME, where it
    would name another folder. ``~`` is left for the run to expand (same user, same HOME).
    Raises UsageError listing every variable it cannot carry: a secret (it would be written
    into a crontab or unit file, and printed) or a value with a line break (cron cannot).
    """
    carried = {
        k: v
        for k, v in sorted(env.items())
        if k.startswith(CARRIED_PREFIXES) and k not in NOT_CARRIED
    }
    dropped = [
        f"{k} (a secret)" if _is_secret(k, v) else f"{k} (its value has a line break)"
        for k, v in carried.items()
        if _is_secret(k, v) or any(c in v for c in "\n\r\0")
    ]
    if dropped:
        raise UsageError(
            "the scheduled run would not see " + ", ".join(dropped) + "; move these into the "
            "config file (readable only by you) and unset them, then run schedule again"
        )
    base = cwd if cwd is not None else Path.cwd()
    for k, v in carried.items():
        if schema.is_path_env(k) and v.strip() and not Path(v).expanduser().is_absolute():
            carried[k] = os.path.normpath(base / v)
    return carried


def cron_fields(every: float) -> str:
    """The five cron time fields for "every ``every`` seconds"; UsageError when cron cannot.

    Cron has no "every N seconds": only intervals that divide a minute-hour-day cycle
    evenly are exact, so anything else is refused rather than silently drifting.
    """
    minutes, rest = divmod(int(round(every)), 60)
    if rest or minutes <= 0:
        raise OptionError(
            "every",
            f"cron runs at most once a minute, in whole minutes; "
            f"use one of {_EVENLY} (or `llamacache daemon` for finer intervals)",
            value=f"{every:g}s",
        )
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours, rest = divmod(minutes, 60)
    if not rest and hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if not rest and hours == 24:
        return "0 0 * * *"
    if not rest and hours == 24 * 7:
        return "0 0 * * 0"
    raise OptionError(
        "every",
        f"cron cannot run that interval evenly; "
        f"use one of {_EVENLY}, or `llamacache schedule systemd` / `llamacache daemon`",
        value=_human(every),
    )


def _human(seconds: float) -> str:
    from llamacache.config.units import format_duration

    return format_duration(seconds)


def executable() -> list[str]:
    """The absolute command that runs this llamacache (console script, else ``python -m``)."""
    local = Path(sys.executable).parent / "llamacache"
    if local.exists():
        return [str(local)]
    found = shutil.which("llamacache")
    if found:
        return [str(Path(found).resolve())]
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "llamacache" and argv0.exists():
        return [str(argv0.resolve())]
    return [sys.executable, "-m", "llamacache"]


def lock_wait(every: float) -> str:
    """How long a run waits for the previous one's lock: 10 minutes, or less than the interval
    (so runs of a short schedule never pile up behind a slow one)."""
    return DEFAULT_WAIT if every > 600 else f"{max(1, int(every // 2))}s"


def clean_command(
    cache: str | None, config_file: Path | None, cache_dir: Path | None, wait: str = DEFAULT_WAIT
) -> list[str]:
    """argv of the scheduled run: global options pinned to absolute paths, then ``clean``."""
    argv = executable()
    if config_file is not None:
        argv += ["--config", str(config_file.absolute())]
    if cache_dir is not None:
        argv += ["--cache-dir", str(cache_dir.absolute())]
    argv += ["clean", "--quiet", "--wait", wait]
    if cache is not None:
        argv += ["--cache", cache]
    return argv


def default_log() -> Path:
    """``$XDG_STATE_HOME/llamacache/clean.log`` (``~/.local/state/...``): logs are state."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llamacache" / "clean.log"


def marker(cache: str | None) -> str:
    return f"{MARKER}:{cache or 'all'}"


def cron_line(
    every: float,
    command: Sequence[str],
    log: Path,
    cache: str | None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """One crontab line, the environment as ``VAR=value`` before the command (cron runs it
    with ``sh``); ``%`` is escaped because cron turns it into a newline."""
    assigns = [f"{k}={shlex.quote(v)}" for k, v in (environment or {}).items()]
    cmd = " ".join([*assigns, *(shlex.quote(a) for a in command)]).replace("%", "\\%")
    target = shlex.quote(str(log)).replace("%", "\\%")
    return f"{cron_fields(every)} {cmd} >> {target} 2>&1 {marker(cache)}"


def unit_name(cache: str | None) -> str:
    return "llamacache-clean" if cache is None else f"llamacache-clean-{cache}"


def systemd_units(
    every: float,
    command: Sequence[str],
    log: Path | None,
    cache: str | None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``{"<name>.service": text, "<name>.timer": text}`` for a user timer."""
    name = unit_name(cache)
    what = f"cache {cache!r}" if cache else "every llamacache cache"
    exec_start = " ".join(_systemd_quote(a) for a in command)
    service = [
        f"{MARKER}: generated by `llamacache schedule systemd`; remove with --uninstall",
        "[Unit]",
        f"Description=Clean {what} (expire, evict to budget)",
        "",
        "[Service]",
        "Type=oneshot",
        *(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in (environment or {}).items()),
        f"ExecStart={exec_start}",
    ]
    if log is not None:
        service += [f"StandardOutput=append:{log}", f"StandardError=append:{log}"]
    timer = [
        f"{MARKER}: generated by `llamacache schedule systemd`; remove with --uninstall",
        "[Unit]",
        f"Description=Clean {what} every {_human(every)}",
        "",
        "[Timer]",
        "OnBootSec=5min",
        f"OnUnitActiveSec={int(round(every))}s",
        "AccuracySec=1min",
        f"Unit={name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return {f"{name}.service": "\n".join(service) + "\n", f"{name}.timer": "\n".join(timer) + "\n"}


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./:=@+," for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def default_units_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


# -- crontab editing ---------------------------------------------------------------------------


def _read_crontab(crontab_file: Path | None) -> str:
    if crontab_file is not None:
        return crontab_file.read_text() if crontab_file.exists() else ""
    if shutil.which("crontab") is None:
        raise OptionError(
            None,
            "crontab is not installed; use crontab_file PATH or schedule systemd",
            also=("crontab_file",),
        )
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if "no crontab" in done.stderr.lower():
            return ""
        raise LlamacacheError(f"crontab -l failed: {done.stderr.strip()}")
    return done.stdout


def _write_crontab(crontab_file: Path | None, text: str) -> None:
    if crontab_file is not None:
        output.write_text(crontab_file, text)  # random temp name beside it, then rename
        return
    done = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LlamacacheError(f"crontab - failed: {done.stderr.strip()}")


def _without(text: str, mark: str) -> tuple[list[str], bool]:
    lines = text.splitlines()
    kept = [ln for ln in lines if not ln.rstrip().endswith(mark)]
    return kept, len(kept) != len(lines)


def cron(
    *,
    every: float = DEFAULT_EVERY,
    cache: str | None = None,
    config_file: Path | None = None,
    cache_dir: Path | None = None,
    log: Path | None = None,
    action: str = "print",
    crontab_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ScheduleReport:
    """Print, install or uninstall the crontab line for ``clean`` (one line per cache marker).

    Install replaces a line with the same marker (idempotent) and creates the log's folder;
    uninstall removes only lines carrying our marker for that cache.
    """
    log = log or default_log()
    command = tuple(clean_command(cache, config_file, cache_dir, lock_wait(every)))
    environment = carried_environment(env or {})
    line = cron_line(every, command, log, cache, environment)
    changed = False
    target = str(crontab_file) if crontab_file is not None else "crontab -l"
    if action in ("install", "uninstall"):
        current = _read_crontab(crontab_file)
        kept, removed = _without(current, marker(cache))
        if action == "install":
            log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            kept.append(line)
            changed = line not in current.splitlines()
        else:
            changed = removed
        if changed or (action == "install" and removed):
            _write_crontab(crontab_file, "".join(f"{ln}\n" for ln in kept))
    return ScheduleReport(
        kind="cron",
        every=every,
        cache=cache,
        command=command,
        log=log,
        files={"crontab": line + "\n"},
        action=action,
        target=target if action != "print" else None,
        changed=changed,
        environment=environment,
    )


def systemd(
    *,
    every: float = DEFAULT_EVERY,
    cache: str | None = None,
    config_file: Path | None = None,
    cache_dir: Path | None = None,
    log: Path | None = None,
    action: str = "print",
    units_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ScheduleReport:
    """Print, install or uninstall ``llamacache-clean[-CACHE].{service,timer}`` user units.

    Logs go to the journal unless ``log`` is given. Enabling the timer is left to
    ``systemctl --user enable --now`` (printed by the CLI): it needs a user session.
    """
    if every < 1:
        raise OptionError("every", "systemd timers need at least 1s", value=f"{every:g}s")
    command = tuple(clean_command(cache, config_file, cache_dir, lock_wait(every)))
    environment = carried_environment(env or {})
    units = systemd_units(every, command, log, cache, environment)
    directory = units_dir or default_units_dir()
    changed = False
    if action == "install":
        directory.mkdir(parents=True, exist_ok=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, text in units.items():
            path = directory / name
            if not path.exists() or path.read_text() != text:
                output.write_text(path, text)
                changed = True
    elif action == "uninstall":
        for name in units:
            path = directory / name
            if path.exists() and MARKER in path.read_text():
                path.unlink()
                changed = True
    return ScheduleReport(
        kind="systemd",
        every=every,
        cache=cache,
        command=command,
        log=log,
        files=units,
        action=action,
        target=str(directory) if action != "print" else None,
        changed=changed,
        environment=environment,
    )


def schedule(
    kind: str,
    *,
    every: float = DEFAULT_EVERY,
    cache: str | None = None,
    config_file: Path | None = None,
    cache_dir: Path | None = None,
    log: Path | None = None,
    action: str = "print",
    target: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ScheduleReport:
    """``cron`` or ``systemd`` by name; ``target`` is the crontab file or the units folder."""
    if kind == "cron":
        return cron(
            every=every, cache=cache, config_file=config_file, cache_dir=cache_dir, log=log,
            action=action, crontab_file=target, env=env,
        )  # fmt: skip
    if kind == "systemd":
        return systemd(
            every=every, cache=cache, config_file=config_file, cache_dir=cache_dir, log=log,
            action=action, units_dir=target, env=env,
        )  # fmt: skip
    raise UsageError(f"{kind!r} is not a scheduler; expected cron or systemd")
