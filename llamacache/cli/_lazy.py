"""A module imported on first attribute access, so building the command table is cheap.

Typer needs every command's signature to parse a command line, but a command's op (and the
engine, numpy, psutil, asyncio behind it) is needed only by the command that runs. Each
``*_cmd`` module names its op with ``lazy("llamacache.ops.X")``; type checkers see the real
module through an ``if TYPE_CHECKING`` import.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module; the first attribute read imports it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when first used."""
    return LazyModule(name)
