"""The settings tables: every key, its parser, default, environment variable and help.

Kept as data (a table, not if-chains) so resolution, ``config show``, the starter file and the
docs all read one list. ``resolution.py`` holds the machinery that applies it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llamacache.config import settings as s
from llamacache.config import units
from llamacache.errors import ConfigError

ENV_PREFIX = "LLAMACACHE_"
# Our own variables that are not settings: never reported as unknown, never parsed here.
NON_SETTING_ENV = (
    "LLAMACACHE_CONFIG",
    "LLAMACACHE_REDIS_SERVER",
    "LLAMACACHE_REQUIRE_REDIS",
    "LLAMACACHE_TEST_S3_URL",
)
RESERVED_CACHE_NAMES = ("memory", "disk", "network", "object")
SEED_CACHES = ("model", "training", "system")


@dataclass(frozen=True)
class Ctx:
    """What a parser needs beyond the value: where relative paths start, where the cache lives."""

    base: Path  # folder of the config file, or the cwd for env/flags/arguments
    root: Path | None = None  # the resolved cache root, for disk percentages


Parser = Callable[[object, str, Ctx], object]


def _size(kind: Literal["memory", "disk"]) -> Parser:
    def parse(value: object, field: str, ctx: Ctx) -> object:
        return units.parse_size(value, field=field, kind=kind, base_path=ctx.root)

    return parse


def _choice(choices: tuple[str, ...]) -> Parser:
    return lambda value, field, ctx: units.parse_choice(value, choices, field=field)


def _int(low: int, high: int | None = None) -> Parser:
    return lambda value, field, ctx: units.parse_int(value, field=field, min=low, max=high)


def _path(value: object, field: str, ctx: Ctx) -> object:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ConfigError(f"{field}: {units.show(value)} is not a path; expected a folder name")
    path = Path(value).expanduser()
    return path if path.is_absolute() else ctx.base / path


def _optional_path(value: object, field: str, ctx: Ctx) -> object:
    return None if value is None else _path(value, field, ctx)


PATH_PARSERS: tuple[Parser, ...] = (_path, _optional_path)  # settings that name a folder


def _text(value: object, field: str, ctx: Ctx) -> object:
    if not isinstance(value, str):
        raise ConfigError(f"{field}: {units.show(value)} is not text; expected a quoted string")
    return value


def _optional_text(value: object, field: str, ctx: Ctx) -> object:
    if value is None or (isinstance(value, str) and value.strip().lower() in units.NONE_WORDS):
        return None
    return _text(value, field, ctx)


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEME = "redis+sentinel://"  # engine/sentinel_url.py parses it


def _redis_url(value: object, field: str, ctx: Ctx) -> object:
    """A Redis URL, checked here so a typo is a config error, not a failure at first use."""
    url = _optional_text(value, field, ctx)
    if url is None:
        return None
    assert isinstance(url, str)
    from urllib.parse import urlsplit

    from llamacache.config.redaction import redact_url

    why = ""
    if url.startswith(SENTINEL_SCHEME):
        from llamacache.engine.sentinel_url import parse_sentinel_url

        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            why = f"is not a valid Sentinel URL ({exc})"
    elif not url.startswith(REDIS_SCHEMES) or len(url) <= len(url.partition("://")[0]) + 3:
        why = "is not a Redis URL"
    else:
        try:  # what redis-py will do with it at first use: fail here, as a config error
            parts = urlsplit(url)
            _ = parts.port
        except ValueError as exc:
            why = f"is not a valid URL ({exc})"
    if why:
        raise ConfigError(
            f"{field}: {units.show(redact_url(url))} {why}; expected e.g. "
            '"redis://host:6379/0", "rediss://host:6380/0", "unix:///run/redis.sock" or '
            '"redis+sentinel://host:26379,host2:26379/mymaster/0"'
        )
    return url


def _s3_url(value: object, field: str, ctx: Ctx) -> object:
    """An s3://bucket/prefix URL, checked here so a typo is a config error."""
    url = _optional_text(value, field, ctx)
    if url is None:
        return None
    assert isinstance(url, str)
    from llamacache.config.redaction import redact_url

    bucket = url.removeprefix("s3://").partition("/")[0]
    if not url.startswith("s3://") or not bucket or "@" in bucket or ":" in bucket:
        raise ConfigError(
            f"{field}: {units.show(redact_url(url))} is not an S3 URL; expected "
            '"s3://bucket/prefix" (credentials come from AWS_* variables or profiles)'
        )
    return url


SIZE_MEMORY = _size("memory")
SIZE_DISK = _size("disk")


def _floor(value: object, field: str, ctx: Ctx) -> object:
    """A memory size; a percentage stays as written (measured when caches are built)."""
    size = SIZE_MEMORY(value, field, ctx)
    return value.strip() if isinstance(value, str) and value.strip().endswith("%") else size


DURATION: Parser = lambda value, field, ctx: units.parse_duration(value, field=field)  # noqa: E731


def _positive_duration(value: object, field: str, ctx: Ctx) -> object:
    """A period between runs: 0 would be accepted here and crash the daemon later."""
    seconds = units.parse_duration(value, field=field)
    if seconds <= 0:
        expected = "expected a positive duration"
        raise ConfigError(f"{field}: {units.show(value)} is not valid; {expected}")
    return seconds


def _positive_size(value: object, field: str, ctx: Ctx) -> object:
    """A size that must be at least one byte (a chunk of 0 bytes never ends a value)."""
    size = SIZE_DISK(value, field, ctx)
    assert isinstance(size, int)
    if size <= 0:
        raise ConfigError(f"{field}: {units.show(value)} is not valid; expected a positive size")
    return size


OPT_DURATION: Parser = lambda v, f, ctx: units.parse_optional_duration(v, field=f)  # noqa: E731
FRACTION: Parser = lambda value, field, ctx: units.parse_fraction(value, field=field)  # noqa: E731
BOOL: Parser = lambda value, field, ctx: units.parse_bool(value, field=field)  # noqa: E731
COMPRESSION: Parser = lambda v, f, ctx: units.parse_compression(v, field=f, codecs=s.CODECS)  # noqa: E731


def user_value(value: object) -> object:
    """How a resolved value is shown and written back: sizes stay exact, paths become text."""
    if isinstance(value, Path):
        return str(value)
    return value


def size_value(value: object) -> object:
    return units.size_to_config(value) if isinstance(value, int) else value


@dataclass(frozen=True)
class MachineShare:
    """A default sized for this machine: a share of the free disk space under the cache (plus
    what the cache already holds, so filling it does not shrink it) or of the RAM, capped.

    Resolved when the configuration is (``config show`` prints the bytes and this rule as
    the source); a value written anywhere (file, environment, flag) replaces it.
    """

    share: float
    cap: int
    floor: int
    kind: Literal["disk", "memory"]

    def __str__(self) -> str:
        what = "free disk" if self.kind == "disk" else "RAM"
        return f"{self.share:.0%} of {what}, at most {units.size_to_config(self.cap)}"

    @property
    def source(self) -> str:
        return f"auto: {self}"


@dataclass(frozen=True)
class Setting:
    """One global setting: dotted key as in the file, parser, default, env vars, help."""

    key: str
    parse: Parser
    default: object
    env: tuple[str, ...]
    help: str
    aliases: tuple[str, ...] = ()
    show: Callable[[object], object] = user_value


def _env(key: str) -> str:
    """cache.memory.size -> LLAMACACHE_MEMORY_SIZE (the "cache." section is implied)."""
    return ENV_PREFIX + key.removeprefix("cache.").replace(".", "_").upper()


def _g(key: str, parse: Parser, default: object, help: str, **kw: object) -> Setting:
    extra = kw.pop("env", ())
    assert isinstance(extra, tuple)
    sized = parse in (SIZE_MEMORY, SIZE_DISK)
    shown = kw.pop("show", None) or (size_value if sized else user_value)
    return Setting(key, parse, default, (_env(key), *extra), help, show=shown, **kw)  # type: ignore[arg-type]


def _secret(value: object) -> object:
    """A secret as `config show` prints it: whether it is set, never what it is."""
    return None if value is None else "***"


def _key_list(value: object, field: str, ctx: Ctx) -> object:
    """Extra signing keys: a list of strings, or one comma-separated string (environment)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"{field}: a list of {len(value) if isinstance(value, list | tuple) else 1} "
            "value(s) that are not all non-empty strings; expected e.g. "
            '["new secret", "old secret"]'
        )
    return tuple(v.strip() for v in value)


def _secrets(value: object) -> object:
    """Several secrets as `config show` prints them: each one's public key id, never the key."""
    from llamacache.engine.signing import key_id

    if not isinstance(value, tuple | list):
        return value
    return [f"*** (id {key_id(str(v).encode('utf-8')).hex()})" for v in value]


def _url(value: object) -> object:
    """A URL as `config show` prints it: every credential replaced by ***."""
    from llamacache.config.redaction import redact_url

    return redact_url(value) if isinstance(value, str) else value


_MAX_CHUNK = units.MAX_SIZE
SETTINGS: tuple[Setting, ...] = (
    _g(
        "cache.policy",
        _choice(s.POLICIES),
        "lru",
        "disk eviction order: " + "|".join(s.POLICIES),
        env=("CACHE_POLICY",),
    ),
    _g(
        "cache.eviction_threshold", FRACTION, 0.9, "evict when a tier passes this share of its size"
    ),
    _g("cache.compression", COMPRESSION, "auto", "codec: " + "|".join(s.CODECS) + " (true = auto)"),
    _g("cache.compression_level", _int(0, 22), 1, "codec level (zstd 1-22, zlib 0-9, lz4 0-16)"),
    _g("cache.checksum", _choice(s.CHECKSUMS), "xxh3", "checksum: " + "|".join(s.CHECKSUMS)),
    _g(
        "cache.max_age",
        OPT_DURATION,
        None,
        "entries older than this expire (needed by policy time)",
    ),
    _g(
        "cache.on_corrupt",
        _choice(s.ON_CORRUPT),
        "raise",
        "corrupt entry: raise, or treat as a miss",
    ),
    _g(
        "cache.durability", _choice(s.DURABILITY), "fsync", "fsync of stored files: none|fsync|full"
    ),
    _g(
        "cache.coherence_interval",
        DURATION,
        0.05,
        "longest a process serves a value another process replaced (0: check every get)",
    ),
    _g(
        "cache.memory.size",
        SIZE_MEMORY,
        MachineShare(0.05, 4 * 10**9, 256 * units.MB, "memory"),
        "memory front size (bare number = MB)",
        aliases=("cache.memory_size",),
        env=("CACHE_MEMORY_SIZE",),
    ),
    _g("cache.memory.max_items", _int(0), 100_000, "most entries held in memory"),
    _g("cache.memory.type", _choice(s.MEMORY_POLICIES), "lru", "memory front order: lru|fifo"),
    _g("cache.memory.compression", BOOL, False, "keep compressible values compressed in RAM"),
    _g("cache.memory.cleanup_interval", _positive_duration, 300.0, "seconds between memory sweeps"),
    _g(
        "cache.memory.pressure_floor",
        _floor,
        "5%",
        "shrink memory fronts when system available memory falls below this",
    ),
    _g(
        "cache.disk.size",
        SIZE_DISK,
        10_000 * units.MB,
        "disk tier size per cache (bare number = MB)",
        aliases=("cache.disk_size",),
        env=("CACHE_DISK_SIZE",),
    ),
    _g("cache.disk.path", _path, None, "cache root (default $XDG_CACHE_HOME/llamacache)"),
    _g("cache.disk.use_mmap", BOOL, True, "memory-map large files on read"),
    _g("cache.disk.cleanup_interval", _positive_duration, 3600.0, "seconds between disk cleanups"),
    _g("cache.disk.file_threshold", SIZE_DISK, 32 * 1024, "values this large are stored as files"),
    _g(
        "cache.disk.temp_grace",
        DURATION,
        900.0,
        "clean/repair leave temporaries and orphans younger than this (a live put's)",
    ),
    _g("cache.disk.allow_network_fs", BOOL, False, "allow NFS/CIFS/Lustre/GPFS (unsafe locking)"),
    _g(
        "cache.network.url",
        _redis_url,
        None,
        "redis://host:port/db (or redis+sentinel://host:port,.../service/db) of the shared tier",
        show=_url,
    ),
    _g("cache.network.key_prefix", _text, "llamacache:", "prefix of every Redis key"),
    _g("cache.network.ttl", OPT_DURATION, None, "expiry of shared entries"),
    _g("cache.network.mode", _choice(s.NETWORK_MODES), "read-write", "read-write|read-only"),
    _g(
        "cache.network.write_error_policy",
        _choice(s.WRITE_ERROR_POLICIES),
        "local",
        "when a shared write fails: local|all|ignore",
    ),
    _g("cache.network.max_value_size", SIZE_DISK, 512 * 2**20, "largest value shared"),
    _g(
        "cache.network.chunk_size",
        _positive_size,
        s.CHUNK_SIZE,
        "values are sent in chunks this big",
        show=size_value,
    ),
    _g(
        "cache.network.connect_timeout",
        _positive_duration,
        1.0,
        "seconds to open a connection to the shared tier",
    ),
    _g(
        "cache.network.reply_timeout",
        _positive_duration,
        5.0,
        "seconds to wait for a reply before the shared tier counts as down",
    ),
    _g(
        "cache.network.signing_key",
        _optional_text,
        None,
        "HMAC key for shared values",
        env=(ENV_PREFIX + "SIGNING_KEY",),
        show=_secret,
    ),
    _g(
        "cache.network.signing_keys",
        _key_list,
        (),
        "more HMAC keys that verify (rotation); the first signs when signing_key is unset",
        env=(ENV_PREFIX + "SIGNING_KEYS",),
        show=_secrets,
    ),
    _g("cache.object.url", _s3_url, None, "s3://bucket/prefix of the object tier", show=_url),
    _g(
        "cache.object.endpoint",
        _optional_text,
        None,
        "S3 endpoint URL (MinIO, R2, Ceph); default AWS",
        show=_url,
    ),
    _g("cache.object.region", _optional_text, None, "region of the bucket"),
    _g("cache.object.path_style", BOOL, False, "path-style addressing (MinIO, Ceph)"),
    _g("cache.object.mode", _choice(s.NETWORK_MODES), "read-write", "read-write|read-only"),
    _g(
        "cache.object.threshold",
        _positive_size,
        s.OBJECT_THRESHOLD,
        "values this large go to the object tier",
        show=size_value,
    ),
    _g(
        "cache.object.part_size",
        _positive_size,
        s.OBJECT_PART_SIZE,
        "bytes per verified part (one ranged GET each)",
        show=size_value,
    ),
    _g(
        "cache.object.signing_key",
        _optional_text,
        None,
        "HMAC key for object manifests (default: the network signing keys)",
        show=_secret,
    ),
    _g(
        "cache.object.connect_timeout",
        _positive_duration,
        2.0,
        "seconds to open a connection to the object store",
    ),
    _g(
        "cache.object.reply_timeout",
        _positive_duration,
        30.0,
        "seconds a request may take before the object store counts as down",
    ),
)
SETTINGS_BY_KEY: Mapping[str, Setting] = {st.key: st for st in SETTINGS}
GLOBAL_ALIASES: Mapping[str, str] = {a: st.key for st in SETTINGS for a in st.aliases}


@dataclass(frozen=True)
class CacheKey:
    """One per-cache key under [caches.NAME]; unset, it inherits ``inherits`` or ``default``."""

    name: str
    field: str  # the CacheSettings field it fills
    parse: Parser
    inherits: str | None
    default: object
    help: str
    aliases: tuple[str, ...] = ()

    def show(self, value: object) -> object:
        parser = SETTINGS_BY_KEY[self.inherits].parse if self.inherits else None
        if self.name == "memory_size" or parser in (SIZE_MEMORY, SIZE_DISK):
            return size_value(value)
        return user_value(value)


CACHE_KEYS: tuple[CacheKey, ...] = (
    CacheKey(
        "size",
        "disk_size",
        SIZE_DISK,
        "cache.disk.size",
        None,
        "disk size of this cache",
        ("disk_size",),
    ),
    CacheKey(
        "memory_size",
        "memory_size",
        SIZE_MEMORY,
        None,
        None,
        "memory front size (default: min of cache.memory.size and this cache's size)",
    ),
    CacheKey(
        "max_items", "max_items", _int(0), "cache.memory.max_items", None, "entries in memory"
    ),
    CacheKey(
        "policy",
        "policy",
        _choice(s.POLICIES),
        "cache.policy",
        None,
        "eviction order",
        ("cleanup_policy",),
    ),
    CacheKey(
        "eviction_threshold",
        "eviction_threshold",
        FRACTION,
        "cache.eviction_threshold",
        None,
        "evict above this share",
    ),
    CacheKey("compression", "compression", COMPRESSION, "cache.compression", None, "codec"),
    CacheKey("checksum", "checksum", _choice(s.CHECKSUMS), "cache.checksum", None, "checksum"),
    CacheKey("max_age", "max_age", OPT_DURATION, "cache.max_age", None, "expiry age"),
    CacheKey(
        "on_corrupt", "on_corrupt", _choice(s.ON_CORRUPT), "cache.on_corrupt", None, "raise|miss"
    ),
    CacheKey(
        "durability",
        "durability",
        _choice(s.DURABILITY),
        "cache.durability",
        None,
        "none|fsync|full",
    ),
    CacheKey("use_mmap", "use_mmap", BOOL, "cache.disk.use_mmap", None, "memory-map large files"),
    CacheKey("format", "format", _optional_text, None, None, 'value format, e.g. "safetensors"'),
    CacheKey("batch_buffer", "batch_buffer", _int(0), None, 32, "batches buffered (datasets)"),
    CacheKey("prefetch", "prefetch", _int(0), None, 4, "batches fetched ahead (datasets)"),
    CacheKey(
        "temp_dir",
        "temp_dir",
        _optional_path,
        None,
        None,
        "scratch folder (default inside the cache's own folder)",
    ),
    CacheKey(
        "cleanup_interval",
        "cleanup_interval",
        _positive_duration,
        "cache.disk.cleanup_interval",
        None,
        "seconds between cleanups",
    ),
    CacheKey(
        "file_threshold",
        "file_threshold",
        SIZE_DISK,
        "cache.disk.file_threshold",
        None,
        "values this large are files",
    ),
    CacheKey(
        "temp_grace",
        "temp_grace",
        DURATION,
        "cache.disk.temp_grace",
        None,
        "leave younger temporaries and orphans",
    ),
    CacheKey("network", "network", BOOL, None, True, "use the shared network tier if configured"),
    CacheKey("object", "object", BOOL, None, True, "use the object tier if configured"),
)
CACHE_KEYS_BY_NAME: Mapping[str, CacheKey] = {k.name: k for k in CACHE_KEYS}
CACHE_ALIASES: Mapping[str, str] = {a: k.name for k in CACHE_KEYS for a in k.aliases}

# The seed's cache types, already parsed. temp_dir is relative to the cache's own folder.
# The model and training caches are sized for the machine (a 7B model in fp16 is 14 GB);
# a file that names a size (the specification's `size: 1024  # MB`) means exactly that.
SEED_DEFAULTS: Mapping[str, Mapping[str, object]] = {
    "model": {
        "size": MachineShare(0.25, 200 * 10**9, 1024 * units.MB, "disk"),
        "format": "safetensors",
        "compression": "auto",
        "policy": "lru",
    },
    "training": {
        "size": MachineShare(0.10, 50 * 10**9, 512 * units.MB, "disk"),
        "batch_buffer": 32,
        "prefetch": 4,
        "policy": "fifo",
    },
    "system": {
        "size": 256 * units.MB,
        "temp_dir": Path(".cache/temp"),
        "max_age": 86400.0,
        "policy": "time",
    },
}


def cache_env(name: str, key: str) -> str:
    """caches.training.batch_buffer -> LLAMACACHE_TRAINING_BATCH_BUFFER."""
    return f"{ENV_PREFIX}{name.upper().replace('-', '_')}_{key.upper()}"


def is_path_env(var: str) -> bool:
    """Whether environment variable ``var`` sets a folder (``LLAMACACHE_DISK_PATH``, a
    cache's ``..._TEMP_DIR``): a relative value there is relative to the working folder."""
    for st in SETTINGS:
        if var in st.env:
            return st.parse in PATH_PARSERS
    return var.startswith(ENV_PREFIX) and any(
        ck.parse in PATH_PARSERS and var.endswith("_" + ck.name.upper()) for ck in CACHE_KEYS
    )


def suggest(word: str, options: object) -> str:
    """'; did you mean "x"?' for the closest option, or nothing."""
    assert isinstance(options, Mapping | tuple | list | set | frozenset)
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f'; did you mean "{close[0]}"?' if close else ""
