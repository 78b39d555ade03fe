"""Configuration, resolved once: defaults < config file < environment < arguments/flags.

The settings themselves are a table (``SETTINGS``, ``CACHE_KEYS`` in
``schema``); this module layers the sources, parses every value once
(a bad value is an error, never a silent default) and records where each
resolved value came from so ``config show`` can tell the user.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from llamacache.config import schema, units
from llamacache.config.files import (
    Raw,
    canonical,
    check_cache_name,
    file_layer,
    find_config_file,
    load_document,
    put,
)
from llamacache.config.schema import (
    CACHE_KEYS,
    ENV_PREFIX,
    SEED_CACHES,
    SEED_DEFAULTS,
    SETTINGS,
    CacheKey,
    Ctx,
    Setting,
    cache_env,
)
from llamacache.config.settings import (
    BUILTIN_CACHES,
    DEFAULT_CACHE,
    CacheSettings,
    NetworkSettings,
    ObjectSettings,
    Settings,
)
from llamacache.config.starter import render_starter_config
from llamacache.errors import ConfigError

__all__ = [
    "CACHE_KEYS",
    "ENV_PREFIX",
    "SETTINGS",
    "CacheConfig",
    "SEED_CACHES",
    "CacheKey",
    "Setting",
    "SettingRow",
    "check_cache_name",
    "describe",
    "find_config_file",
    "load_document",
    "render_starter_config",
    "resolve",
    "misspelt_env_vars",
    "unknown_env_vars",
]

Layer = dict[str, Raw]
Resolved = tuple[object, str]  # (parsed value, source)


_NO_EMPTY_ENV = ("cache.disk.path",)


def _env_layer(env: Mapping[str, str], cwd: Path, names: Iterable[str]) -> Layer:
    """Values from the environment; the LLAMACACHE_ name beats the seed's CACHE_ alias."""
    layer: Layer = {}
    for st in SETTINGS:
        if st.key in _NO_EMPTY_ENV:  # an empty cache root is a mistake, not "use the default"
            for v in st.env:
                if v in env and not env[v].strip():
                    raise ConfigError(f"{v}: is set but empty; expected a folder (or unset it)")
        var = next((v for v in st.env if env.get(v)), None)  # empty means unset
        if var is not None:
            layer[st.key] = Raw(env[var], f"env:{var}", var, cwd)
    for name in names:
        for ck in CACHE_KEYS:
            var = cache_env(name, ck.name)
            if env.get(var):
                layer[f"caches.{name}.{ck.name}"] = Raw(env[var], f"env:{var}", var, cwd)
    return layer


def _override_layer(
    overrides: Mapping[str, object], source: str, cwd: Path
) -> tuple[Layer, set[str]]:
    """Explicit values (dotted keys as in the file); None means "not given"."""
    layer: Layer = {}
    names: set[str] = set()
    flag = source.removeprefix("flag:")
    where = f" (from {flag})" if source.startswith("flag:") else ""
    for written, value in overrides.items():
        key, name = canonical(written, where or " in overrides")
        if value is not None or key == f"caches.{name}":
            put(layer, key, Raw(value, source, written, cwd, where), names, name)
    return layer, names


def _parse(raw: Raw, parse: schema.Parser, ctx: Ctx) -> object:
    try:
        return parse(raw.value, raw.field, Ctx(base=raw.base, root=ctx.root))
    except ConfigError as exc:
        raise ConfigError(f"{exc}{raw.where}") from None


class _Resolver:
    """Parses every layer (lowest first) so that even overridden bad values are reported."""

    def __init__(self, layers: list[Layer], root: Path) -> None:
        self.root = root
        self.winners: dict[str, Resolved] = {}
        ctx = Ctx(base=root, root=root)
        for layer in layers:
            for key, raw in layer.items():
                self.winners[key] = (_parse(raw, _parser(key), ctx), raw.source)

    def get(self, key: str) -> Resolved | None:
        return self.winners.get(key)


def _parser(key: str) -> schema.Parser:
    if key in schema.SETTINGS_BY_KEY:
        return schema.SETTINGS_BY_KEY[key].parse
    return schema.CACHE_KEYS_BY_NAME[key.rsplit(".", 1)[1]].parse


def _root(layers: list[Layer], env: Mapping[str, str]) -> Resolved:
    """The cache root first: disk percentages are measured on its filesystem."""
    found: Resolved | None = None
    for layer in layers:
        raw = layer.get("cache.disk.path")
        if raw is not None:
            found = (
                _parse(raw, schema.SETTINGS_BY_KEY["cache.disk.path"].parse, Ctx(raw.base)),
                raw.source,
            )
    if found is not None:
        return found
    xdg = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return xdg / "llamacache", "default"


def _cache_value(
    name: str,
    ck: CacheKey,
    r: _Resolver,
    glob: Mapping[str, Resolved],
    cache: Mapping[str, Resolved],
) -> Resolved:
    """One per-cache value: its own section, else the global, else the seed cache's default."""
    own = r.get(f"caches.{name}.{ck.name}")
    if own is not None:
        return own
    seed = SEED_DEFAULTS.get(name, {})
    if ck.name == "memory_size":  # a cache never holds more in RAM than on disk
        mem, disk = glob["cache.memory.size"], cache["size"]
        return mem if int(mem[0]) <= int(disk[0]) else disk  # type: ignore[call-overload]
    if ck.inherits is not None:
        inherited = glob[ck.inherits]
        # A seed cache's own default (training's fifo, system's max_age) is more specific
        # than a global: a global reaches only what the seed does not set for that cache.
        if ck.name in seed:
            return _sized(seed[ck.name], r.root / name)
        return inherited
    return _sized(seed.get(ck.name, ck.default), r.root / name)


def _sized(default: object, cache_dir: Path) -> Resolved:
    """A built-in default; one sized for the machine is measured now, its rule as source."""
    if isinstance(default, schema.MachineShare):
        from llamacache.engine.resources import machine_size

        return machine_size(default, cache_dir), default.source
    return default, "default"


def _pressure_floor(value: object) -> int:
    """The default is "5%", kept as written so `config show` says so; bytes for the engine."""
    if isinstance(value, str):
        return units.parse_size(value, field="cache.memory.pressure_floor", kind="memory")
    assert isinstance(value, int)
    return value


def _build_cache(
    name: str, root: Path, r: _Resolver, glob: Mapping[str, Resolved]
) -> tuple[CacheSettings, dict[str, Resolved]]:
    own: dict[str, Resolved] = {}
    for ck in CACHE_KEYS:
        own[ck.name] = _cache_value(name, ck, r, glob, own)
    temp, temp_src = own["temp_dir"]
    if isinstance(temp, Path) and not temp.is_absolute():  # a seed default: inside the cache
        own["temp_dir"] = (root / name / temp, temp_src)
    if own["policy"][0] == "time" and own["max_age"][0] is None:
        field = "cache.policy" if name == DEFAULT_CACHE else f"caches.{name}.policy"
        hint = f'set caches.{name}.max_age or cache.max_age (e.g. "7d")'
        raise ConfigError(f'{field}: "time" needs a max_age; {hint}')
    values = {ck.field: own[ck.name][0] for ck in CACHE_KEYS}
    values.update(
        compression_level=glob["cache.compression_level"][0],
        memory_policy=glob["cache.memory.type"][0],
        memory_compression=glob["cache.memory.compression"][0],
        memory_cleanup_interval=glob["cache.memory.cleanup_interval"][0],
        coherence_interval=glob["cache.coherence_interval"][0],
        pressure_floor=_pressure_floor(glob["cache.memory.pressure_floor"][0]),
        allow_network_fs=glob["cache.disk.allow_network_fs"][0],
    )
    return CacheSettings(name=name, path=root / name, **values), own  # type: ignore[arg-type]


def _network(glob: Mapping[str, Resolved]) -> NetworkSettings | None:
    url = glob["cache.network.url"][0]
    if url is None:
        return None
    kw = {f.name: glob[f"cache.network.{f.name}"][0] for f in fields(NetworkSettings)}
    return NetworkSettings(**kw)  # type: ignore[arg-type]


def _object(glob: Mapping[str, Resolved]) -> ObjectSettings | None:
    if glob["cache.object.url"][0] is None:
        return None
    kw = {f.name: glob[f"cache.object.{f.name}"][0] for f in fields(ObjectSettings)}
    return ObjectSettings(**kw)  # type: ignore[arg-type]


def _ordered_names(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(sorted(group) if isinstance(group, set) else group))
    return list(seen)


def resolve(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    override_source: str = "argument",
    cwd: Path | None = None,
    read_files: bool = True,
) -> Settings:
    """The whole configuration, frozen, with the source of every value.

    ``read_files=False`` is "exactly these overrides under the default root": no file
    discovery and no environment except the XDG_* folders. Raises ConfigError for
    any bad value, unknown key, or missing/unparseable file. Reads the file once.
    """
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).absolute()
    path: Path | None = None
    doc_layer: Layer = {}
    file_names: set[str] = set()
    if read_files:
        path = find_config_file(config_file, env, cwd)
    elif config_file is not None:  # discovery is off, but a named file is still read
        path = cwd / config_file
    if path is not None:
        doc_layer, file_names = file_layer(load_document(path), path)
    if not read_files:
        env = {k: v for k, v in env.items() if k.startswith("XDG_")}
    arg_layer, arg_names = _override_layer(overrides or {}, override_source, cwd)
    names = _ordered_names(BUILTIN_CACHES, file_names)
    layers = [doc_layer, _env_layer(env, cwd, names), arg_layer]
    root, root_src = _root(layers, env)
    assert isinstance(root, Path)
    r = _Resolver(layers, root)
    glob: dict[str, Resolved] = {
        st.key: r.get(st.key) or _sized(st.default, root) for st in SETTINGS
    }
    glob["cache.disk.path"] = (root, root_src)
    sources = {k: src for k, (_, src) in glob.items()}
    values = {st.key: st.show(glob[st.key][0]) for st in SETTINGS}
    caches: dict[str, CacheSettings] = {}
    for name in _ordered_names(names, arg_names):
        caches[name], own = _build_cache(name, root, r, glob)
        for ck in CACHE_KEYS:
            sources[f"caches.{name}.{ck.name}"] = own[ck.name][1]
            values[f"caches.{name}.{ck.name}"] = ck.show(own[ck.name][0])
    return Settings(
        root=root,
        caches=caches,
        network=_network(glob),
        object_store=_object(glob),
        config_file=path,
        sources=sources,
        values=values,
    )


@dataclass(frozen=True)
class CacheConfig:
    """The seed's Python API: ``CacheConfig(memory_size="4GB", disk_size="100GB", ...)``.

    None means "not given". A number in a size is BYTES (the seed passes
    ``get_available_memory() * 0.3``); strings mean what they mean in the file.
    Sizes are checked here so a bad one fails where it was written.
    """

    memory_size: int | float | str | None = None
    disk_size: int | float | str | None = None
    policy: str | None = None
    eviction_threshold: float | str | None = None
    cleanup_interval: float | str | None = None
    path: str | Path | None = None
    compression: str | bool | None = None
    checksum: str | None = None
    max_items: int | None = None
    max_age: float | str | None = None
    on_corrupt: str | None = None

    def __post_init__(self) -> None:
        self.to_overrides()

    @classmethod
    def from_settings(cls, settings: Settings) -> CacheConfig:
        """The effective config of the ``default`` cache, every field filled (bytes, seconds).

        ``CacheManager.config`` is this, so the seed's ``self.config.cleanup_interval``
        is the interval in force even when the caller's CacheConfig left it out.
        """
        d = settings.cache(DEFAULT_CACHE)
        return cls(
            memory_size=d.memory_size,
            disk_size=d.disk_size,
            policy=d.policy,
            eviction_threshold=d.eviction_threshold,
            cleanup_interval=d.cleanup_interval,
            path=settings.root,
            compression=d.compression,
            checksum=d.checksum,
            max_items=d.max_items,
            max_age=d.max_age,
            on_corrupt=d.on_corrupt,
        )

    def to_overrides(self) -> dict[str, object]:
        """Dotted overrides for resolve(); sizes become exact strings so bytes stay bytes."""
        out: dict[str, object] = {}
        for attr, key in _CACHE_CONFIG_KEYS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if attr in ("memory_size", "disk_size") and not isinstance(value, str):
                value = units.size_to_config(
                    units.parse_size_bytes(value, field=f"CacheConfig.{attr}")
                )
            elif attr in ("memory_size", "disk_size"):
                kind = "memory" if attr == "memory_size" else "disk"
                units.parse_size(value, field=f"CacheConfig.{attr}", kind=kind)  # type: ignore[arg-type]
            elif isinstance(value, Path):
                value = str(value)
            out[key] = value
        return out


_CACHE_CONFIG_KEYS = {
    "memory_size": "cache.memory.size",
    "disk_size": "cache.disk.size",
    "policy": "cache.policy",
    "eviction_threshold": "cache.eviction_threshold",
    "cleanup_interval": "cache.disk.cleanup_interval",
    "path": "cache.disk.path",
    "compression": "cache.compression",
    "checksum": "cache.checksum",
    "max_items": "cache.memory.max_items",
    "max_age": "cache.max_age",
    "on_corrupt": "cache.on_corrupt",
}


@dataclass(frozen=True)
class SettingRow:
    """One line of ``config show``: key, value as the user would write it, source, env var."""

    key: str
    value: object
    source: str
    env_var: str | None


def describe(settings: Settings) -> list[SettingRow]:
    """Every setting, globals first (table order), then each cache's keys."""
    rows = [
        SettingRow(st.key, settings.values.get(st.key), settings.source_of(st.key), st.env[0])
        for st in SETTINGS
    ]
    for name in settings.caches:
        for ck in CACHE_KEYS:
            key = f"caches.{name}.{ck.name}"
            rows.append(
                SettingRow(
                    key, settings.values.get(key), settings.source_of(key), cache_env(name, ck.name)
                )
            )
    return rows


def misspelt_env_vars(
    env: Mapping[str, str], caches: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Unknown LLAMACACHE_* variables that look like settings, with a hint each: the
    nearest known name (``LLAMACACHE_MODLE_SIZE`` -> ``LLAMACACHE_MODEL_SIZE``), or, for
    a per-cache key of a cache that is not configured, that no such cache exists.
    Variables that resemble nothing (a test's own knobs) are left alone."""
    names = list(caches if caches is not None else BUILTIN_CACHES)
    known = sorted(set(schema.NON_SETTING_ENV) | {v for st in SETTINGS for v in st.env})
    known += [cache_env(name, ck.name) for name in names for ck in CACHE_KEYS]
    out: list[tuple[str, str]] = []
    for var in unknown_env_vars(env, names):
        close = difflib.get_close_matches(var, known, n=1, cutoff=0.85)
        if close:
            out.append((var, f"did you mean {close[0]}?"))
            continue
        for ck in CACHE_KEYS:
            cache = var.removeprefix(ENV_PREFIX).removesuffix("_" + ck.name.upper())
            if var.endswith("_" + ck.name.upper()) and cache and cache != var:
                shown = cache.lower().replace("_", "-")
                out.append((var, f"no cache named {shown!r} is configured"))
                break
    return out


def unknown_env_vars(env: Mapping[str, str], caches: Iterable[str] | None = None) -> list[str]:
    """LLAMACACHE_* variables that are not settings (resolve ignores them; validate warns).

    ``caches`` are the cache names whose per-cache variables count as known
    (default: the built-in ones; pass ``settings.caches`` to include the file's).
    """
    known = set(schema.NON_SETTING_ENV)
    known.update(v for st in SETTINGS for v in st.env)
    for name in caches if caches is not None else BUILTIN_CACHES:
        known.update(cache_env(name, ck.name) for ck in CACHE_KEYS)
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
