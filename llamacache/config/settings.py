"""The resolved, frozen configuration objects the engine and the commands read.

``resolution.py`` builds these from defaults, the config file, the environment and
flags; nothing else constructs them except tests. Every size is already bytes,
every duration seconds, every path absolute: consumers never parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The longest TTL or age accepted anywhere (100 years): past it expiry times overflow dates.
MAX_DURATION = 100 * 365.25 * 86400.0

DEFAULT_CACHE = "default"
BUILTIN_CACHES = ("default", "model", "training", "system")

POLICIES = ("lru", "fifo", "lfu", "time", "size", "none")
MEMORY_POLICIES = ("lru", "fifo")
CODECS = ("none", "zlib", "zstd", "lz4", "auto")
CHECKSUMS = ("xxh3", "blake3", "sha256")
ON_CORRUPT = ("raise", "miss")
DURABILITY = ("none", "fsync", "full")  # full also fsyncs the directory after rename
NETWORK_MODES = ("read-write", "read-only")
WRITE_ERROR_POLICIES = ("local", "all", "ignore")
OBJECT_THRESHOLD = 8 * 1024 * 1024  # values this large go to the object tier
OBJECT_PART_SIZE = 8 * 1024 * 1024  # bytes per verified part (and per ranged GET)


# 4 MiB - 64 B: Redis (jemalloc) stores a string in the size class above its length plus
# ~60 B of object header, so an exact 4 MiB chunk lands in the 5 MiB class: MEMORY USAGE
# 5,242,952 B, 1.25 bytes per payload byte. 4 MiB - 64 B fits the 4 MiB class: 4,194,376 B,
# 1.00003 (measured on redis 7.0, tests/benchmarks/bench_coherence.py prints it).
CHUNK_SIZE = 4 * 1024 * 1024 - 64


@dataclass(frozen=True)
class NetworkSettings:
    """The shared Redis tier ([cache.network]); absent when no url is set."""

    url: str
    key_prefix: str = "llamacache:"
    ttl: float | None = None
    mode: str = "read-write"
    write_error_policy: str = "local"
    max_value_size: int = 512 * 1024 * 1024
    chunk_size: int = CHUNK_SIZE
    signing_key: str | None = None
    signing_keys: tuple[str, ...] = ()  # more keys: all verify; the first signs if no signing_key
    connect_timeout: float = 1.0  # seconds to open a connection
    reply_timeout: float = 5.0  # seconds to wait for a reply before the server counts as down

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every HMAC key, the signing one first (empty: records are unauthenticated)."""
        out: list[bytes] = []
        for k in (self.signing_key, *self.signing_keys):
            if k and k.encode("utf-8") not in out:
                out.append(k.encode("utf-8"))
        return tuple(out)


@dataclass(frozen=True)
class ObjectSettings:
    """The S3-compatible object tier ([cache.object]); absent when no url is set."""

    url: str  # s3://bucket/prefix
    endpoint: str | None = None  # MinIO, R2, Ceph...; None: AWS for the region
    region: str | None = None
    path_style: bool = False  # http://endpoint/bucket/key instead of http://bucket.endpoint/key
    mode: str = "read-write"
    threshold: int = OBJECT_THRESHOLD
    part_size: int = OBJECT_PART_SIZE
    signing_key: str | None = None  # falls back to [cache.network] signing keys
    connect_timeout: float = 2.0
    reply_timeout: float = 30.0

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The object tier's own HMAC key (empty: use the network tier's, or none)."""
        return (self.signing_key.encode("utf-8"),) if self.signing_key else ()


@dataclass(frozen=True)
class CacheSettings:
    """Everything one named cache needs; sizes in bytes, durations in seconds."""

    name: str
    path: Path  # this cache's own directory: <root>/<name>
    disk_size: int
    memory_size: int
    max_items: int = 100_000
    memory_policy: str = "lru"
    memory_compression: bool = False
    policy: str = "lru"
    eviction_threshold: float = 0.9
    compression: str = "auto"
    compression_level: int = 1
    checksum: str = "xxh3"
    max_age: float | None = None
    cleanup_interval: float = 3600.0
    memory_cleanup_interval: float = 300.0
    # a memory front looks at the cache's change signal at most this often (0: every get)
    coherence_interval: float = 0.05
    pressure_floor: int = 0  # bytes of system available memory below which memory shrinks
    on_corrupt: str = "raise"
    durability: str = "fsync"
    use_mmap: bool = True
    file_threshold: int = 32 * 1024  # values at least this large are stored as files
    allow_network_fs: bool = False
    format: str | None = None  # "safetensors" for the model cache
    batch_buffer: int = 32
    prefetch: int = 4
    temp_dir: Path | None = None
    temp_grace: float = 900.0  # clean/repair leave younger temporaries and orphans alone
    network: bool = True  # use the [cache.network] tier when one is configured
    object: bool = True  # use the [cache.object] tier when one is configured


@dataclass(frozen=True)
class Settings:
    """The whole resolved configuration: the root, every named cache, and provenance."""

    root: Path
    caches: Mapping[str, CacheSettings]
    network: NetworkSettings | None = None
    object_store: ObjectSettings | None = None  # [cache.object]
    config_file: Path | None = None
    # dotted key ("caches.model.disk_size", "cache.memory.size") -> where it came from:
    # "default", "file:<path>", "env:<VAR>", "argument", "flag:--name"
    sources: Mapping[str, str] = field(default_factory=dict)
    # dotted key -> the resolved value as the user would write it (for `config show`)
    values: Mapping[str, object] = field(default_factory=dict)

    def cache(self, name: str) -> CacheSettings:
        """The settings of one named cache (raises CacheNotFoundError naming the known ones)."""
        from llamacache.errors import CacheNotFoundError

        try:
            return self.caches[name]
        except KeyError:
            known = ", ".join(sorted(self.caches))
            raise CacheNotFoundError(
                f"no cache named {name!r}; configured caches: {known}"
            ) from None

    def source_of(self, key: str) -> str:
        """Where a dotted setting came from ("default" when unknown)."""
        return self.sources.get(key, "default")
