"""config show / validate / init / path, as reports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llamacache import config
from llamacache.config.settings import Settings
from llamacache.config.starter import format_for
from llamacache.errors import OptionError, UsageError
from llamacache.ops import output
from llamacache.ops._report import Report, ReportWarning


@dataclass(frozen=True)
class ConfigRow:
    key: str
    value: object
    source: str
    env_var: str | None


@dataclass(frozen=True)
class ConfigShowReport(Report):
    schema = "config.show"
    config_file: Path | None
    root: Path
    settings: tuple[ConfigRow, ...]


@dataclass(frozen=True)
class ConfigValidateReport(Report):
    schema = "config.validate"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    config_file: Path | None
    caches: tuple[str, ...]
    warnings: tuple[ReportWarning, ...]


@dataclass(frozen=True)
class ConfigPathReport(Report):
    schema = "config.path"
    config_file: Path | None
    searched: tuple[Path, ...]


@dataclass(frozen=True)
class ConfigInitReport(Report):
    schema = "config.init"
    path: Path
    overwritten: bool


def show(settings: Settings, key_prefix: str | None = None) -> ConfigShowReport:
    """Every resolved setting with its value, its source and its environment variable."""
    rows = tuple(
        ConfigRow(r.key, r.value, r.source, r.env_var)
        for r in config.describe(settings)
        if key_prefix is None or r.key.startswith(key_prefix)
    )
    if not rows:  # an empty table would look like "set, but to nothing"
        raise UsageError(f"no setting matches {key_prefix!r}; see llamacache config show")
    return ConfigShowReport(config_file=settings.config_file, root=settings.root, settings=rows)


def validate(settings: Settings, env: Mapping[str, str] | None = None) -> ConfigValidateReport:
    """The configuration resolved (errors were raised already); warn of what is ignored."""
    env = os.environ if env is None else env
    hints = dict(config.misspelt_env_vars(env, caches=settings.caches))
    warnings = tuple(
        ReportWarning(
            "unknown-variable",
            None,
            f"environment variable {name} is not a llamacache setting and is ignored"
            + (f"; {hints[name]}" if name in hints else ""),
        )
        for name in config.unknown_env_vars(env, caches=settings.caches)
    )
    from llamacache.ops._common import unsigned_warning

    if (w := unsigned_warning(settings)) is not None:
        warnings += (w,)
    return ConfigValidateReport(
        config_file=settings.config_file, caches=tuple(sorted(settings.caches)), warnings=warnings
    )


def search_path(explicit: Path | None, env: Mapping[str, str] | None = None) -> ConfigPathReport:
    """Which config file would be read, and where llamacache looks for one."""
    env = os.environ if env is None else env
    cwd = Path.cwd()
    found = config.find_config_file(explicit, env, cwd)
    xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "llamacache"
    searched: list[Path] = []
    if explicit is not None:
        searched.append(explicit)
    if env.get("LLAMACACHE_CONFIG"):
        searched.append(Path(env["LLAMACACHE_CONFIG"]))
    searched += [cwd / "llamacache.toml", xdg / "config.toml"]
    return ConfigPathReport(config_file=found, searched=tuple(searched))


def init(path: Path, force: bool) -> ConfigInitReport:
    """Write the commented starter file in the format its suffix names (``.toml``, ``.yaml``,
    ``.yml``); refuse another suffix, and an existing file unless forced."""
    fmt = format_for(path)
    if fmt is None:
        raise UsageError(
            f"{path}: cannot tell which format to write; name the file *.toml, *.yaml or *.yml"
        )
    existed = path.exists()
    if existed and not force:
        raise OptionError(
            None, f"{path} already exists; pass force to overwrite it", also=("force",)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(path, config.render_starter_config(fmt))  # random temp name, then rename
    return ConfigInitReport(path=path, overwritten=existed)


def default_init_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `config init` writes when no path is given: the user config file."""
    env = os.environ if env is None else env
    return (
        Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "llamacache" / "config.toml"
    )
