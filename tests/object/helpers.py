"""Machines (separate cache roots) configured for the test's place in the object store."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from llamacache.config.settings import ObjectSettings
from llamacache.manager import CacheManager

MB = 1024 * 1024


def object_env(root: Path, obj: ObjectSettings, **extra: str) -> dict[str, str]:
    """The environment a machine with cache root ``root`` resolves its config from."""
    env = {
        "XDG_CACHE_HOME": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "LLAMACACHE_OBJECT_URL": obj.url,
        "LLAMACACHE_OBJECT_PATH_STYLE": "true" if obj.path_style else "false",
        "LLAMACACHE_OBJECT_THRESHOLD": str(obj.threshold) + "B",
        "LLAMACACHE_OBJECT_PART_SIZE": str(obj.part_size) + "B",
        "LLAMACACHE_OBJECT_MODE": obj.mode,
        "LLAMACACHE_OBJECT_CONNECT_TIMEOUT": str(obj.connect_timeout),
        "LLAMACACHE_OBJECT_REPLY_TIMEOUT": str(obj.reply_timeout),
        "LLAMACACHE_DURABILITY": "none",
    }
    if obj.endpoint:
        env["LLAMACACHE_OBJECT_ENDPOINT"] = obj.endpoint
    if obj.region:
        env["LLAMACACHE_OBJECT_REGION"] = obj.region
    env.update(extra)
    return env


def machine(root: Path, obj: ObjectSettings, **extra: str) -> CacheManager:
    """A CacheManager for one "machine": its own cache root, the shared bucket."""
    return CacheManager(env=object_env(root, obj, **extra))


def subprocess_env(root: Path, obj: ObjectSettings, **extra: str) -> dict[str, str]:
    """``object_env`` over this process's environment (AWS_* credentials), for subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMACACHE_")}
    env.update(object_env(root, obj, **extra))
    return env


def write_model(folder: Path, mb: int, seed: int = 0) -> Path:
    """A real safetensors model of about ``mb`` MiB plus a small config file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = mb * MB // 4
    save_file({"w": rng.standard_normal(n, dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(f'{{"hidden": {seed}}}')
    return folder
