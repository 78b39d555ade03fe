"""ML helpers above the engine: the model cache (safetensors, mmap) and the dataset cache.

Names are loaded on first use, so a tool that needs one module (``verify`` reads the model
manifest format from ``ml.model``) does not import the dataset machinery with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llamacache.ml.dataset import CachedDataset, DatasetCache, DatasetTooLargeWarning
    from llamacache.ml.model import ModelCache, NotCachedError

_HOME = {
    "CachedDataset": "dataset",
    "DatasetCache": "dataset",
    "DatasetTooLargeWarning": "dataset",
    "ModelCache": "model",
    "NotCachedError": "model",
}

__all__ = [
    "CachedDataset",
    "DatasetCache",
    "DatasetTooLargeWarning",
    "ModelCache",
    "NotCachedError",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'llamacache.ml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llamacache.ml.{home}"), name)
    globals()[name] = value
    return value
