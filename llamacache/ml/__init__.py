"""ML helpers above the engine: the model cache (safetensors, mmap) and the dataset cache."""

from llamacache.ml.dataset import CachedDataset, DatasetCache, DatasetTooLargeWarning
from llamacache.ml.model import ModelCache, NotCachedError

__all__ = [
    "CachedDataset",
    "DatasetCache",
    "DatasetTooLargeWarning",
    "ModelCache",
    "NotCachedError",
]
