"""Finding, reading and flattening config files (TOML or YAML, one schema).

A document becomes a flat mapping of canonical dotted keys ("cache.memory.size",
"caches.model.size") to what the user wrote, so the file, the environment and
flags can be layered by key without caring where each came from.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacache.config import schema
from llamacache.config.units import show
from llamacache.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CACHE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
CONFIG_NAMES = ("llamacache.toml", "llamacache.yaml", "llamacache.yml")
XDG_NAMES = ("config.toml", "config.yaml", "config.yml")
_SECTIONS = ("cache", "caches", "cache.memory", "cache.disk", "cache.network", "cache.object")


@dataclass(frozen=True)
class Raw:
    """One value as written, with what is needed to parse it and to blame the right place."""

    value: object
    source: str  # "file:<path>", "env:<VAR>", "argument", "flag:--x"
    field: str  # the name the user wrote, for error messages
    base: Path  # where relative paths start
    where: str = ""  # appended to error messages: " (in /path/llamacache.toml)"


def _is_file(path: Path) -> bool:
    """``path.is_file()``, with a folder we may not look into being a config error (exit 2,
    as a missing file is), not a crash."""
    try:
        return path.is_file()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _must_exist(path: Path, how: str) -> Path:
    if not _is_file(path):
        raise ConfigError(f"config file {path} ({how}) does not exist")
    return path


def find_config_file(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read: --config, $LLAMACACHE_CONFIG, ./llamacache.toml, then XDG.

    An explicitly named file that is missing is an error; the searched places are optional.
    """
    if explicit is not None:
        return _must_exist(cwd / Path(explicit).expanduser(), "given with --config")
    named = env.get("LLAMACACHE_CONFIG")
    if named:
        return _must_exist(cwd / Path(named).expanduser(), "named by $LLAMACACHE_CONFIG")
    xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "llamacache"
    candidates = [cwd / n for n in CONFIG_NAMES] + [xdg / n for n in XDG_NAMES]
    return next((p for p in candidates if _is_file(p)), None)


def _parse_toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line N, column M)"
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml  # only for YAML files: most runs read TOML or nothing

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{line}: {problem}") from None


def load_document(path: Path) -> dict[str, Any]:
    """The file as a dict, TOML or YAML by suffix (other suffixes: TOML, then YAML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        doc = _parse_toml(text, path)
    elif suffix in (".yaml", ".yml"):
        doc = _parse_yaml(text, path)
    else:
        try:
            doc = _parse_toml(text, path)
        except ConfigError:
            doc = _parse_yaml(text, path)
    if doc is None:  # an empty or all-comment YAML file
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top, got {show(doc)}")
    return doc


def _is_section(dotted: str) -> bool:
    if dotted in _SECTIONS:
        return True
    if "." not in dotted:
        return dotted.endswith("_cache")
    return dotted.startswith("caches.") and dotted.count(".") == 1


def walk(doc: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key as written, value) for every leaf; empty sections yield (section, None)."""
    for k, v in doc.items():
        dotted = f"{prefix}.{k}" if prefix else str(k)
        if not _is_section(dotted):
            yield dotted, v
        elif isinstance(v, dict):
            if not v:
                yield dotted, None
            yield from walk(v, dotted)
        elif v is None:  # YAML "model_cache:" with every key commented out
            yield dotted, None
        else:
            raise ConfigError(
                f"{dotted}: {show(v)} is not a section; expected keys under [{dotted}]"
            )


def check_cache_name(name: str, where: str) -> str:
    """Cache names become folder names and env var parts; keep them plain."""
    if name in schema.RESERVED_CACHE_NAMES:
        raise ConfigError(f'cache name "{name}" is reserved{where}; pick another name')
    if not CACHE_NAME.fullmatch(name):
        raise ConfigError(
            f'cache name "{name}" is not valid{where}; use lowercase letters, digits, "-" and "_"'
        )
    return name


def _unknown(written: str, options: object, where: str) -> ConfigError:
    last = written.rsplit(".", 1)[-1]
    return ConfigError(f'unknown key "{written}"{where}{schema.suggest(last, options)}')


def canonical(written: str, where: str) -> tuple[str, str | None]:
    """("cache.memory.size" | "caches.NAME.key" | "caches.NAME", cache name or None).

    Aliases (cache.memory_size, size/disk_size, cleanup_policy) map to one key, and
    the seed's top-level ``model_cache:`` is ``[caches.model]``.
    """
    parts = written.split(".")
    if parts[0] == "cache":
        key = schema.GLOBAL_ALIASES.get(written, written)
        if key in schema.SETTINGS_BY_KEY:
            return key, None
        section = written.rsplit(".", 1)[0] + "."
        siblings = [
            k.removeprefix(section) for k in schema.SETTINGS_BY_KEY if k.startswith(section)
        ]
        siblings += [
            a.removeprefix(section) for a in schema.GLOBAL_ALIASES if a.startswith(section)
        ]
        raise _unknown(written, siblings + ["memory", "disk", "network", "object"], where)
    if parts[0] == "caches" and len(parts) in (2, 3):
        name, rest = parts[1], parts[2:]
    elif len(parts) in (1, 2) and parts[0].endswith("_cache") and len(parts[0]) > 6:
        name, rest = parts[0][: -len("_cache")], parts[1:]
    else:
        raise _unknown(written, ["cache", "caches", "model_cache"], where)
    check_cache_name(name, where)
    if not rest:
        return f"caches.{name}", name
    key = schema.CACHE_ALIASES.get(rest[0], rest[0])
    if key not in schema.CACHE_KEYS_BY_NAME:
        raise _unknown(written, list(schema.CACHE_KEYS_BY_NAME) + list(schema.CACHE_ALIASES), where)
    return f"caches.{name}.{key}", name


def put(layer: dict[str, Raw], key: str, raw: Raw, names: set[str], name: str | None) -> None:
    """Add one value to a layer; the same setting twice in one source is an error, not a guess."""
    if name is not None:
        names.add(name)
    if key.count(".") == 1 and key.startswith("caches."):
        return  # a bare (possibly empty) cache section: it only declares the cache
    if key in layer:
        raise ConfigError(
            f"{layer[key].field} and {raw.field} are the same setting{raw.where}; give it once"
        )
    layer[key] = raw


def file_layer(doc: Mapping[str, Any], path: Path) -> tuple[dict[str, Raw], set[str]]:
    """A document's values by canonical key, and the cache names it declares."""
    layer: dict[str, Raw] = {}
    names: set[str] = set()
    where = f" in {path}"
    for written, value in walk(doc):
        if written in _SECTIONS:
            continue  # an empty [cache] / [cache.memory] table
        key, name = canonical(written, where)
        raw = Raw(value, f"file:{path}", written, path.parent, f" (in {path})")
        put(layer, key, raw, names, name)
    return layer, names
