"""Structural validators for caches with a declared ``format`` (e.g. ``safetensors``).

``verify`` runs ``VALIDATORS[settings.format]`` on every raw-file entry of such a cache:
a file whose checksum matches can still be structurally broken if it was stored broken.
A validator returns a problem description, or None when the file is sound. Format
modules register themselves here (the safetensors one lives with the model helpers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

VALIDATORS: dict[str, Callable[[Path], str | None]] = {}
