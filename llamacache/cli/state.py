"""What the root options decided for one invocation, read by every command (``state_of(ctx)``).

Its own module so command modules import it without importing the app that imports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llamacache.cli.render import Renderer

if TYPE_CHECKING:
    from llamacache.manager import CacheManager


@dataclass
class State:
    """What the global options decided; commands read it from ``ctx.obj``."""

    config_file: Path | None = None
    cache_dir: Path | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    warn_env: bool = True  # config validate reports every unknown variable itself
    _manager: CacheManager | None = field(default=None, repr=False)

    def manager(self) -> CacheManager:
        """The manager for this invocation, resolved once (config errors exit 2)."""
        if self._manager is None:
            from llamacache.config import resolve
            from llamacache.manager import CacheManager

            overrides: dict[str, object] = {}
            if self.cache_dir is not None:
                overrides["cache.disk.path"] = str(self.cache_dir)
            settings = resolve(
                config_file=self.config_file,
                overrides=overrides,
                override_source="flag:--cache-dir",
            )
            self._manager = CacheManager(settings)
            if self.warn_env:
                self._warn_misspelt(settings.caches)
        return self._manager

    def _warn_misspelt(self, caches: Iterable[str]) -> None:
        """One stderr line per LLAMACACHE_* variable that looks like a setting but is not
        one (a typo is otherwise silently ignored), naming the nearest known name."""
        import os

        from llamacache.config import misspelt_env_vars

        r = self.renderer()
        for var, hint in misspelt_env_vars(os.environ, caches):
            r.warn(f"environment variable {var} is not a llamacache setting and is ignored; {hint}")

    def renderer(self, *, quiet: bool = False, wide: bool = False) -> Renderer:
        """A renderer honouring --json and --quiet, the command's --wide, and ``quiet``
        when the command's own output replaces the talk (``bench --csv``)."""
        return Renderer(json_mode=self.json, quiet=self.quiet or quiet, wide=wide)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj
