"""Config resolution on real files: the seed's examples, precedence, sources, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llamacache import config
from llamacache.config import CacheConfig, resolve, units
from llamacache.config.schema import SEED_DEFAULTS, SETTINGS_BY_KEY, MachineShare
from llamacache.engine.resources import machine_size
from llamacache.errors import ConfigError

MB = 10**6
SIZE_HINT = 'expected e.g. "100GB", "512MiB", "30%"'
POLICIES = "lru, fifo, lfu, time, size, none"

# The original specification's config blocks, byte for byte (the YAML, TOML and
# environment examples users were given). The cache-type blocks sit inside a numbered
# list there; their list indentation is removed so they can share one file.
SEED_CORE_YAML = """\
cache:
  memory:
    size: 1000  # MB
    type: "lru"
    compression: true
  disk:
    size: 10000  # MB
    path: "./cache"
    cleanup_interval: 3600  # seconds
"""
SEED_MODEL_YAML = """\
model_cache:
  size: 1024  # MB
  format: "safetensors"
  compression: true
  cleanup_policy: "lru"
"""
SEED_TRAINING_YAML = """\
training_cache:
  size: 512  # MB
  batch_buffer: 32
  prefetch: 4
  cleanup_policy: "fifo"
"""
SEED_SYSTEM_YAML = """\
system_cache:
  size: 256  # MB
  temp_dir: ".cache/temp"
  max_age: 86400  # seconds
  cleanup_policy: "time"
"""
SEED_TOML = """\
[cache]
memory_size = "4GB"
disk_size = "100GB"
policy = "lru"
eviction_threshold = 0.9

[cache.memory]
max_items = 1000
cleanup_interval = 300

[cache.disk]
path = ".cache/training"
use_mmap = true
"""
SEED_ENV = """\
# Cache settings
CACHE_MEMORY_SIZE=4GB
CACHE_DISK_SIZE=100GB
CACHE_POLICY=lru
"""


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose XDG folders are inside tmp_path, and nothing else."""
    return {
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory with no config file in it."""
    d = tmp_path / "work"
    d.mkdir()
    return d


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(
    tmp_path: Path, text: str, env: dict[str, str], name: str = "llamacache.toml"
) -> config.Settings:
    path = write(tmp_path / "conf" / name, text)
    return resolve(config_file=path, env=env, cwd=tmp_path)


# -- the seed's examples -------------------------------------------------------------------------


def test_seed_yaml_core_settings_and_cache_types(tmp_path: Path, home: dict[str, str]) -> None:
    doc = "\n".join([SEED_CORE_YAML, SEED_MODEL_YAML, SEED_TRAINING_YAML, SEED_SYSTEM_YAML])
    path = write(tmp_path / "proj" / "llamacache.yaml", doc)
    s = resolve(config_file=path, env=home, cwd=tmp_path)
    folder = path.parent
    assert s.root == folder / "cache"
    assert s.config_file == path
    default = s.cache("default")
    assert default.memory_size == 1000 * MB
    assert default.memory_policy == "lru"
    assert default.memory_compression is True
    assert default.disk_size == 10_000 * MB
    assert default.cleanup_interval == 3600.0
    assert default.path == folder / "cache" / "default"
    model, training, system = s.cache("model"), s.cache("training"), s.cache("system")
    assert (model.disk_size, model.format, model.compression, model.policy) == (
        1024 * MB,
        "safetensors",
        "auto",
        "lru",
    )
    assert model.memory_size == 1000 * MB  # min(global memory, its disk size)
    assert (training.disk_size, training.batch_buffer, training.prefetch, training.policy) == (
        512 * MB,
        32,
        4,
        "fifo",
    )
    assert training.memory_size == 512 * MB
    assert (system.disk_size, system.max_age, system.policy) == (256 * MB, 86400.0, "time")
    assert system.temp_dir == folder / ".cache" / "temp"  # relative to the file's folder
    src = f"file:{path}"
    assert s.sources["cache.memory.size"] == src
    assert s.sources["caches.training.policy"] == src
    assert s.sources["caches.model.checksum"] == "default"
    assert s.values["cache.memory.size"] == "1GB"
    assert s.values["caches.system.max_age"] == 86400.0


def test_seed_toml_block(tmp_path: Path, home: dict[str, str]) -> None:
    path = write(tmp_path / "proj" / "llamacache.toml", SEED_TOML)
    s = resolve(config_file=path, env=home, cwd=tmp_path)
    assert s.root == path.parent / ".cache" / "training"
    d = s.cache("default")
    assert (d.memory_size, d.disk_size, d.policy, d.eviction_threshold) == (
        4 * 10**9,
        100 * 10**9,
        "lru",
        0.9,
    )
    assert (d.max_items, d.memory_cleanup_interval, d.use_mmap) == (1000, 300.0, True)
    # The seed caches keep their own disk sizes even under an explicit global disk_size
    # (the model cache's is sized for the machine: the TOML block names no model size)...
    model_rule = SEED_DEFAULTS["model"]["size"]
    assert isinstance(model_rule, MachineShare)
    assert s.cache("model").disk_size == machine_size(model_rule, s.root / "model")
    assert s.cache("model").memory_size == min(4 * 10**9, s.cache("model").disk_size)
    assert s.sources["caches.model.size"] == "auto: 25% of free disk, at most 200GB"
    # ...and their own seed policies (more specific than a global); other globals reach them.
    assert s.cache("training").policy == "fifo"
    assert s.sources["caches.training.policy"] == "default"
    assert s.cache("training").max_items == 1000
    assert s.sources["caches.training.max_items"] == f"file:{path}"
    assert s.sources["cache.memory.size"] == f"file:{path}"  # the alias lands on the canonical key
    assert s.values["cache.disk.size"] == "100GB"


def test_seed_environment_variables(work: Path, home: dict[str, str]) -> None:
    env = dict(home)
    for line in SEED_ENV.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    s = resolve(env=env, cwd=work)
    d = s.cache("default")
    assert (d.memory_size, d.disk_size, d.policy) == (4 * 10**9, 100 * 10**9, "lru")
    assert s.sources["cache.memory.size"] == "env:CACHE_MEMORY_SIZE"
    assert s.sources["cache.disk.size"] == "env:CACHE_DISK_SIZE"
    assert s.sources["cache.policy"] == "env:CACHE_POLICY"


# -- defaults, precedence, sources ---------------------------------------------------------------


def test_defaults(work: Path, home: dict[str, str]) -> None:
    s = resolve(env=home, cwd=work)
    assert s.root == Path(home["XDG_CACHE_HOME"]) / "llamacache"
    assert s.config_file is None and s.network is None
    assert list(s.caches) == ["default", "model", "training", "system"]
    d = s.cache("default")
    memory_rule = SETTINGS_BY_KEY["cache.memory.size"].default
    assert isinstance(memory_rule, MachineShare)
    assert (d.memory_size, d.disk_size, d.policy, d.eviction_threshold) == (
        machine_size(memory_rule, s.root),
        10_000 * MB,
        "lru",
        0.9,
    )
    assert (d.cleanup_interval, d.memory_cleanup_interval, d.file_threshold) == (
        3600.0,
        300.0,
        32768,
    )
    assert s.cache("system").temp_dir == s.root / "system" / ".cache" / "temp"
    assert {src for src in s.sources.values() if not src.startswith("auto: ")} == {"default"}


def test_precedence_default_file_env_override(tmp_path: Path, home: dict[str, str]) -> None:
    path = write(
        tmp_path / "llamacache.toml",
        """\
        [cache]
        policy = "fifo"
        checksum = "blake3"
        eviction_threshold = 0.8
        [cache.memory]
        size = "2GB"
        """,
    )
    env = {
        **home,
        "LLAMACACHE_POLICY": "lfu",
        "CACHE_POLICY": "size",
        "LLAMACACHE_MEMORY_SIZE": "3GB",
    }
    s = resolve(
        config_file=path,
        env=env,
        cwd=tmp_path,
        overrides={"cache.memory.size": "5GB", "cache.policy": None},
        override_source="flag:--memory-size",
    )
    d = s.cache("default")
    assert d.memory_size == 5 * 10**9 and s.sources["cache.memory.size"] == "flag:--memory-size"
    assert d.policy == "lfu" and s.sources["cache.policy"] == "env:LLAMACACHE_POLICY"
    assert d.checksum == "blake3" and s.sources["cache.checksum"] == f"file:{path}"
    assert d.durability == "fsync" and s.sources["cache.durability"] == "default"
    assert s.source_of("cache.eviction_threshold") == f"file:{path}"
    # explicit globals reach every cache, with their source, except where a seed cache
    # has its own default (system's time policy is more specific than a global policy)
    assert s.cache("model").checksum == "blake3"
    assert s.sources["caches.model.checksum"] == f"file:{path}"
    assert s.cache("model").policy == "lru" and s.cache("system").policy == "time"


def test_seed_alias_env_is_below_llamacache_env(work: Path, home: dict[str, str]) -> None:
    s = resolve(env={**home, "CACHE_DISK_SIZE": "1GB", "LLAMACACHE_DISK_SIZE": "2GB"}, cwd=work)
    assert s.cache("default").disk_size == 2 * 10**9


def test_per_cache_env_and_overrides(work: Path, home: dict[str, str]) -> None:
    env = {
        **home,
        "LLAMACACHE_MODEL_SIZE": "2GB",
        "LLAMACACHE_TRAINING_BATCH_BUFFER": "64",
        "LLAMACACHE_NETWORK_URL": "redis://127.0.0.1:6390/0",
        "LLAMACACHE_SIGNING_KEY": "k",
    }
    s = resolve(
        env=env,
        cwd=work,
        overrides={"caches.scratch.size": "1GB", "caches.model.cleanup_policy": "lfu"},
    )
    assert s.cache("model").disk_size == 2 * 10**9
    assert s.sources["caches.model.size"] == "env:LLAMACACHE_MODEL_SIZE"
    assert s.cache("model").policy == "lfu"
    assert s.cache("training").batch_buffer == 64
    assert s.cache("scratch").disk_size == 10**9 and s.cache("scratch").memory_size == 10**9
    assert s.network is not None and s.network.url == "redis://127.0.0.1:6390/0"
    assert s.network.signing_key == "k"


def test_per_cache_memory_size_and_global_memory_zero(tmp_path: Path, home: dict[str, str]) -> None:
    s = load(
        tmp_path,
        """\
        [cache.memory]
        size = 0
        [caches.model]
        memory_size = "100MB"
        """,
        home,
    )
    assert s.cache("default").memory_size == 0
    assert s.cache("training").memory_size == 0
    assert s.cache("model").memory_size == 100 * MB


def test_user_caches_from_file_inherit_globals(tmp_path: Path, home: dict[str, str]) -> None:
    s = load(
        tmp_path,
        """\
        embeddings_cache:
          size: 2048
        caches:
          tokens: {}
        cache:
          checksum: sha256
        """,
        home,
        name="llamacache.yml",
    )
    assert s.cache("embeddings").disk_size == 2048 * MB
    assert s.cache("embeddings").checksum == "sha256"
    assert s.cache("tokens").disk_size == 10_000 * MB
    assert s.cache("embeddings").path == s.root / "embeddings"


def test_system_max_age_can_be_switched_off_only_with_another_policy(
    tmp_path: Path, home: dict[str, str]
) -> None:
    s = load(tmp_path, '[caches.system]\nmax_age = "none"\npolicy = "lru"\n', home)
    assert s.cache("system").max_age is None
    with pytest.raises(ConfigError) as err:
        load(tmp_path, '[cache]\npolicy = "time"\n', home)
    assert str(err.value).startswith('cache.policy: "time" needs a max_age')


# -- relative paths ------------------------------------------------------------------------------


def test_relative_paths_from_file_env_and_arguments(tmp_path: Path, home: dict[str, str]) -> None:
    path = write(tmp_path / "conf" / "llamacache.toml", '[cache.disk]\npath = "data"\n')
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert resolve(config_file=path, env=home, cwd=cwd).root == path.parent / "data"
    s = resolve(config_file=path, env={**home, "LLAMACACHE_DISK_PATH": "envdata"}, cwd=cwd)
    assert s.root == cwd / "envdata" and s.sources["cache.disk.path"] == "env:LLAMACACHE_DISK_PATH"
    s = resolve(
        config_file=path,
        env=home,
        cwd=cwd,
        overrides={"cache.disk.path": "flagdata"},
        override_source="flag:--cache-dir",
    )
    assert s.root == cwd / "flagdata" and s.values["cache.disk.path"] == str(cwd / "flagdata")
    assert s.sources["cache.disk.path"] == "flag:--cache-dir"


# -- file discovery ------------------------------------------------------------------------------


def test_discovery_order(tmp_path: Path, home: dict[str, str], work: Path) -> None:
    xdg = write(Path(home["XDG_CONFIG_HOME"]) / "llamacache" / "config.toml", "")
    assert config.find_config_file(None, home, work) == xdg
    local_yaml = write(work / "llamacache.yaml", "")
    assert config.find_config_file(None, home, work) == local_yaml
    local = write(work / "llamacache.toml", "")
    assert config.find_config_file(None, home, work) == local
    named = write(tmp_path / "named.toml", "")
    env = {**home, "LLAMACACHE_CONFIG": str(named)}
    assert config.find_config_file(None, env, work) == named
    explicit = write(tmp_path / "explicit.toml", '[cache]\npolicy = "lfu"\n')
    assert config.find_config_file(explicit, env, work) == explicit
    s = resolve(config_file=explicit, env=env, cwd=work)
    assert s.config_file == explicit and s.sources["cache.policy"] == f"file:{explicit}"


def test_discovery_nothing_found_and_missing_named_files(work: Path, home: dict[str, str]) -> None:
    assert config.find_config_file(None, home, work) is None
    with pytest.raises(
        ConfigError, match=r"config file .*nope.toml \(given with --config\) does not exist"
    ):
        config.find_config_file(Path("nope.toml"), home, work)
    env = {**home, "LLAMACACHE_CONFIG": str(work / "gone.toml")}
    with pytest.raises(ConfigError, match=r"named by \$LLAMACACHE_CONFIG\) does not exist"):
        resolve(env=env, cwd=work)


def test_read_files_false_ignores_files_and_settings_env(work: Path, home: dict[str, str]) -> None:
    write(work / "llamacache.toml", '[cache]\npolicy = "fifo"\n')
    env = {**home, "LLAMACACHE_POLICY": "lfu"}
    s = resolve(read_files=False, env=env, cwd=work, overrides={"cache.checksum": "sha256"})
    assert s.config_file is None
    assert s.cache("default").policy == "lru"
    assert s.cache("default").checksum == "sha256"
    assert s.root == Path(home["XDG_CACHE_HOME"]) / "llamacache"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[cache]\ndisk_size = "-1GB"\n',
            'cache.disk_size: "-1GB" is not a size; {size} (in {path})',
        ),
        (
            "[cache.memory]\nsize = [1, 2]\n",
            "cache.memory.size: [1, 2] is not a size; {size} (in {path})",
        ),
        (
            "[cache.memory]\nsize = -5\n",
            "cache.memory.size: -5 is not a size; {size} (in {path})",
        ),
        (
            '[cache.disk]\ncleanup_interval = "soon"\n',
            'cache.disk.cleanup_interval: "soon" is not a duration; '
            'expected e.g. "30s", "1h", "7d" or seconds (in {path})',
        ),
        (
            '[cache]\npolicy = "lur"\n',
            'cache.policy: "lur" is not one of {policies}; did you mean "lru"? (in {path})',
        ),
        (
            "[cache]\neviction_threshold = 1.5\n",
            "cache.eviction_threshold: 1.5 is not a fraction; "
            'expected 0 < x <= 1, e.g. 0.9 or "90%" (in {path})',
        ),
        (
            "[cache]\neviction_threshold = 0\n",
            'cache.eviction_threshold: 0 is not a fraction; expected 0 < x <= 1, e.g. 0.9 or "90%" '
            "(in {path})",
        ),
        (
            '[cache]\ncompression = "zsdt"\n',
            'cache.compression: "zsdt" is not one of {codecs}; did you mean "zstd"? (in {path})',
        ),
        (
            '[cache]\nchecksum = "blake2"\n',
            'cache.checksum: "blake2" is not one of xxh3, blake3, sha256; did you mean "blake3"? '
            "(in {path})",
        ),
        (
            '[cache.memory]\nszie = "1GB"\n',
            'unknown key "cache.memory.szie" in {path}; did you mean "size"?',
        ),
        (
            '[caches.model]\nsise = "1GB"\n',
            'unknown key "caches.model.sise" in {path}; did you mean "size"?',
        ),
        ('[cahce]\npolicy = "lru"\n', 'unknown key "cahce" in {path}; did you mean "cache"?'),
        (
            '[cache]\nmemory_size = "1GB"\n[cache.memory]\nsize = "2GB"\n',
            "cache.memory_size and cache.memory.size are the same setting (in {path}); "
            "give it once",
        ),
        (
            '[caches.memory]\nsize = "1GB"\n',
            'cache name "memory" is reserved in {path}; pick another name',
        ),
        (
            '[caches.Big]\nsize = "1GB"\n',
            'cache name "Big" is not valid in {path}; use lowercase letters, digits, "-" and "_"',
        ),
        (
            "[caches.model]\nbatch_buffer = -1\n",
            "caches.model.batch_buffer: -1 is not valid; expected a whole number >= 0 (in {path})",
        ),
        (
            "[cache]\nmemory = 5\n",
            "cache.memory: 5 is not a section; expected keys under [cache.memory]",
        ),
    ],
)
def test_file_errors(tmp_path: Path, home: dict[str, str], text: str, message: str) -> None:
    path = write(tmp_path / "llamacache.toml", text)
    with pytest.raises(ConfigError) as err:
        resolve(config_file=path, env=home, cwd=tmp_path)
    hints = {"size": SIZE_HINT, "policies": POLICIES, "codecs": "none, zlib, zstd, lz4, auto"}
    assert str(err.value) == message.format(path=path, **hints)


def test_syntax_errors_name_file_and_line(tmp_path: Path) -> None:
    bad_toml = write(tmp_path / "a.toml", "[cache]\npolicy = = 1\n")
    with pytest.raises(ConfigError, match=r"a\.toml: invalid TOML: .*line 2"):
        config.load_document(bad_toml)
    bad_yaml = write(tmp_path / "a.yaml", "cache:\n  policy: [lru\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: invalid YAML at line 3"):
        config.load_document(bad_yaml)
    with pytest.raises(ConfigError, match=r"expected a table of settings"):
        config.load_document(write(tmp_path / "b.yml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match=r"does not exist"):
        config.load_document(tmp_path / "missing.toml")


def test_other_suffix_tries_toml_then_yaml(tmp_path: Path) -> None:
    assert config.load_document(write(tmp_path / "c.conf", '[cache]\npolicy = "lru"\n')) == {
        "cache": {"policy": "lru"}
    }
    assert config.load_document(write(tmp_path / "d.conf", "cache:\n  policy: lru\n")) == {
        "cache": {"policy": "lru"}
    }


def test_env_and_override_errors(work: Path, home: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(env={**home, "LLAMACACHE_POLICY": "lfru"}, cwd=work)
    assert str(err.value) == (
        f'LLAMACACHE_POLICY: "lfru" is not one of {POLICIES}; did you mean "lru"?'
    )
    with pytest.raises(ConfigError) as err:
        resolve(
            env=home,
            cwd=work,
            overrides={"cache.disk.size": "-1GB"},
            override_source="flag:--disk-size",
        )
    assert str(err.value) == (
        'cache.disk.size: "-1GB" is not a size; expected e.g. "100GB", "512MiB", '
        '"30%" (from --disk-size)'
    )
    with pytest.raises(
        ConfigError, match=r'unknown key "cache.polcy" in overrides; did you mean "policy"\?'
    ):
        resolve(env=home, cwd=work, overrides={"cache.polcy": "lru"})


def test_bad_value_in_a_lower_layer_is_still_an_error(tmp_path: Path, home: dict[str, str]) -> None:
    path = write(tmp_path / "llamacache.toml", '[cache]\npolicy = "nope"\n')
    with pytest.raises(ConfigError, match='cache.policy: "nope"'):
        resolve(config_file=path, env={**home, "LLAMACACHE_POLICY": "lru"}, cwd=tmp_path)


def test_unknown_env_vars(home: dict[str, str]) -> None:
    env = {
        **home,
        "LLAMACACHE_POLICY": "lru",
        "LLAMACACHE_CONFIG": "x",
        "LLAMACACHE_REDIS_SERVER": "x",
        "LLAMACACHE_REQUIRE_REDIS": "1",
        "LLAMACACHE_POLCY": "lru",
        "LLAMACACHE_MODEL_SIZE": "1GB",
        "LLAMACACHE_EMB_SIZE": "1GB",
        "PATH": "/bin",
    }
    assert config.unknown_env_vars(env) == ["LLAMACACHE_EMB_SIZE", "LLAMACACHE_POLCY"]
    assert config.unknown_env_vars(env, caches=["emb"]) == [
        "LLAMACACHE_MODEL_SIZE",
        "LLAMACACHE_POLCY",
    ]


def test_unknown_env_vars_are_ignored_by_resolve(work: Path, home: dict[str, str]) -> None:
    s = resolve(env={**home, "LLAMACACHE_POLCY": "zzz", "LLAMACACHE_REQUIRE_REDIS": "1"}, cwd=work)
    assert s.cache("default").policy == "lru"


# -- CacheConfig, describe, starter file ---------------------------------------------------------


def test_cache_config_seed_example(work: Path, home: dict[str, str]) -> None:
    cfg = CacheConfig(memory_size="4GB", disk_size="100GB", policy="lru", eviction_threshold=0.9)
    s = resolve(read_files=False, env=home, cwd=work, overrides=cfg.to_overrides())
    d = s.cache("default")
    assert (d.memory_size, d.disk_size, d.policy, d.eviction_threshold) == (
        4 * 10**9,
        100 * 10**9,
        "lru",
        0.9,
    )
    assert s.sources["cache.memory.size"] == "argument"


def test_cache_config_numbers_are_bytes(work: Path, home: dict[str, str]) -> None:
    cfg = CacheConfig(memory_size=1234567.0, disk_size=10**9, cleanup_interval=60, path=work / "c")
    assert cfg.to_overrides()["cache.memory.size"] == "1234567B"
    s = resolve(read_files=False, env=home, cwd=work, overrides=cfg.to_overrides())
    assert s.cache("default").memory_size == 1_234_567
    assert s.cache("default").disk_size == 10**9
    assert s.cache("default").cleanup_interval == 60.0
    assert s.root == work / "c"


def test_cache_config_rejects_bad_sizes_where_written() -> None:
    with pytest.raises(ConfigError, match=r"^CacheConfig.memory_size: -1 is not a size"):
        CacheConfig(memory_size=-1)
    with pytest.raises(ConfigError, match=r'^CacheConfig.disk_size: "lots" is not a size'):
        CacheConfig(disk_size="lots")


def test_describe_has_every_setting_with_source_and_env(
    tmp_path: Path, home: dict[str, str]
) -> None:
    s = load(tmp_path, '[cache]\npolicy = "fifo"\n', home)
    rows = {r.key: r for r in config.describe(s)}
    assert len(rows) == len(config.SETTINGS) + 4 * len(config.CACHE_KEYS)
    assert rows["cache.policy"].value == "fifo"
    assert rows["cache.policy"].source.startswith("file:")
    assert rows["cache.policy"].env_var == "LLAMACACHE_POLICY"
    assert rows["caches.training.batch_buffer"].env_var == "LLAMACACHE_TRAINING_BATCH_BUFFER"
    assert rows["cache.disk.path"].env_var == "LLAMACACHE_DISK_PATH"
    assert rows["caches.model.size"].value == units.size_to_config(s.cache("model").disk_size)
    assert rows["caches.model.size"].source.startswith("auto: 25% of free disk")


def test_settings_table_env_names() -> None:
    env = {st.key: st.env[0] for st in config.SETTINGS}
    assert env["cache.memory.size"] == "LLAMACACHE_MEMORY_SIZE"
    assert env["cache.network.url"] == "LLAMACACHE_NETWORK_URL"
    assert env["cache.eviction_threshold"] == "LLAMACACHE_EVICTION_THRESHOLD"
    names = [v for st in config.SETTINGS for v in st.env]
    assert len(names) == len(set(names))
    assert config.ENV_PREFIX == "LLAMACACHE_"


def test_starter_config_round_trips_to_defaults(
    tmp_path: Path, work: Path, home: dict[str, str]
) -> None:
    text = config.render_starter_config()
    assert "# disk eviction order" in text and "LLAMACACHE_MEMORY_SIZE" in text
    for section in (
        "[cache]",
        "[cache.memory]",
        "[cache.disk]",
        "[caches.model]",
        "[caches.training]",
        "[caches.system]",
    ):
        assert section in text
    path = write(tmp_path / "starter" / "config.toml", text)
    from_file = resolve(config_file=path, env=home, cwd=work)
    defaults = resolve(env=home, cwd=work)
    assert from_file.caches == defaults.caches
    assert from_file.values == defaults.values
    assert from_file.network is None


def test_percentages_measure_the_cache_filesystem_and_ram(
    tmp_path: Path, home: dict[str, str]
) -> None:
    import shutil

    import psutil

    s = load(tmp_path, '[cache]\ndisk_size = "50%"\nmemory_size = "10%"\n', home)
    assert s.cache("default").disk_size == int(shutil.disk_usage(tmp_path).total * 0.5)
    assert s.cache("default").memory_size == int(psutil.virtual_memory().total * 0.1)
    assert s.values["cache.disk.size"] == units.size_to_config(s.cache("default").disk_size)


@pytest.mark.parametrize("url", ["10MB", "http://host:6379", "redis://", "localhost:6379"])
def test_network_url_must_be_a_redis_url(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a Redis URL; expected e\.g\. \"redis://"):
        resolve(env={"LLAMACACHE_NETWORK_URL": url}, cwd=tmp_path)


def test_network_url_schemes_accepted(tmp_path: Path) -> None:
    for url in ("redis://h:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"):
        settings = resolve(env={"LLAMACACHE_NETWORK_URL": url}, cwd=tmp_path)
        assert settings.network is not None and settings.network.url == url


# -- defaults sized for the machine ---------------------------------------------------------------


def test_machine_sized_defaults_follow_free_disk_and_ram(tmp_path: Path) -> None:
    import shutil

    rule = MachineShare(0.25, 200 * 10**9, 1024 * MB, "disk")
    free = shutil.disk_usage(tmp_path).free
    expected = max(1024 * MB, min(200 * 10**9, int(free * 0.25) // MB * MB))
    assert abs(machine_size(rule, tmp_path / "model") - expected) <= 4 * MB
    assert machine_size(MachineShare(0.5, 10 * MB, MB, "disk"), tmp_path) == 10 * MB  # capped
    assert machine_size(MachineShare(1e-12, 10**12, 7 * MB, "disk"), tmp_path) == 7 * MB  # floor
    ram = machine_size(MachineShare(0.05, 10**13, 0, "memory"), tmp_path)
    assert ram == int(units.physical_memory() * 0.05) // MB * MB


def test_filling_a_machine_sized_cache_does_not_shrink_it(work: Path, home: dict[str, str]) -> None:
    """Free space alone would shrink the limit as the cache fills, and clean would then evict
    what a warm just stored; the cache's own bytes count as room it has."""
    import os

    from llamacache.engine.index import used_bytes_at
    from llamacache.engine.resources import disk_free
    from llamacache.manager import CacheManager

    settings = resolve(env=home, cwd=work)
    with CacheManager(settings) as m:
        m.cache("model").put("blob", os.urandom(64 * MB))  # incompressible: 64 MB on disk
    folder = settings.root / "model"
    used = used_bytes_at(folder)
    assert used >= 64 * MB
    rule = MachineShare(0.25, 10**15, 0, "disk")
    free = disk_free(folder)  # other programs write too: measure both sides back to back
    sized = machine_size(rule, folder)
    assert abs(sized - int((free + used) * 0.25)) <= 8 * MB, (sized, free, used)


def test_an_explicit_size_means_what_it_says(tmp_path: Path, home: dict[str, str]) -> None:
    """The specification's YAML (`model_cache: size: 1024  # MB`) still means 1024 MB."""
    path = write(tmp_path / "llamacache.yaml", "model_cache:\n  size: 1024  # MB\n")
    s = resolve(config_file=path, env=home, cwd=tmp_path)
    assert s.cache("model").disk_size == 1024 * MB
    assert s.sources["caches.model.size"] == f"file:{path}"
    env = {**home, "LLAMACACHE_MODEL_SIZE": "50GB", "CACHE_MEMORY_SIZE": "1000"}
    s = resolve(env=env, cwd=tmp_path)
    assert s.cache("model").disk_size == 50 * 10**9
    assert s.cache("default").memory_size == 1000 * MB
