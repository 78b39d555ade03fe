"""Configuration: what a user can set, where it is read from, and the frozen result.

- ``settings``: the resolved, frozen objects the engine and the commands read.
- ``schema``: the table of every setting (name, type, default, environment variables).
- ``files``: finding and reading config files (TOML, YAML).
- ``resolution``: ``resolve()``, layering defaults < config file < environment < flags.
- ``starter``, ``docs``: the starter file ``config init`` writes and the settings reference.
- ``units``: parsing and formatting sizes, durations and choices.
- ``redaction``: secrets in URLs, hidden wherever text is printed.

``from llamacache.config import CacheConfig, resolve`` works as before; names are loaded
on first use (PEP 562), so the engine can import ``config.settings`` without the resolver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llamacache.config.resolution import (
        CACHE_KEYS,
        ENV_PREFIX,
        SEED_CACHES,
        SETTINGS,
        CacheConfig,
        CacheKey,
        Setting,
        SettingRow,
        check_cache_name,
        describe,
        find_config_file,
        load_document,
        misspelt_env_vars,
        render_starter_config,
        resolve,
        unknown_env_vars,
    )
    from llamacache.config.settings import Settings

__all__ = [
    "CACHE_KEYS",
    "ENV_PREFIX",
    "SEED_CACHES",
    "SETTINGS",
    "CacheConfig",
    "CacheKey",
    "Setting",
    "SettingRow",
    "Settings",
    "check_cache_name",
    "describe",
    "find_config_file",
    "load_document",
    "render_starter_config",
    "resolve",
    "misspelt_env_vars",
    "unknown_env_vars",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'llamacache.config' has no attribute {name!r}")
    value = getattr(importlib.import_module("llamacache.config.resolution"), name)
    globals()[name] = value  # next time, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
