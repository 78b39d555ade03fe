"""Structural validators per cache ``format``; ``verify`` consults them by the cache's format."""

from collections.abc import Callable
from pathlib import Path

from llamacache.formats import safetensors

VALIDATORS: dict[str, Callable[[Path], str | None]] = {}
VALIDATORS["safetensors"] = safetensors.validate
