"""One lower tier driven alone with Python values, for ``bench --tier disk|network``.

Measures what a tier costs without the memory front above it and without decoding: a get
is a hit or a miss on the framed bytes the tier hands back. Values are framed as
``TieredCache`` frames them, once per distinct value object (a benchmark cycles through a
small pool), and every stored header is bound to its own key, so what bench leaves in a
real cache (``bench --cache NAME``) reads back as valid entries, never as corrupt ones.
"""

from __future__ import annotations

from collections.abc import Hashable

from llamacache.config.settings import CacheSettings
from llamacache.engine import framing
from llamacache.engine.protocol import CacheTier

__all__ = ["TierDriver"]


class TierDriver:
    """``put(key, value)`` / ``hit(key)`` / ``remove(key)`` on one ``CacheTier``."""

    def __init__(self, tier: CacheTier, settings: CacheSettings) -> None:
        self.tier = tier
        self.settings = settings
        self._framed: dict[int, tuple[bytes, bytes]] = {}  # id(value) -> (meta, payload)

    def hit(self, key: Hashable) -> bool:
        """True when the tier holds ``key`` (its framed bytes are read, not decoded)."""
        return self.tier.get(key) is not None

    def put(self, key: Hashable, value: bytes) -> None:
        """Store ``value`` under ``key``: framed (checksum, codec) once per value object,
        then only its header is bound to ``key`` (two small hashes per put)."""
        framed = self._framed.get(id(value))
        if framed is None:
            meta, payload = framing.encode(value, self.settings, key)
            framed = self._framed[id(value)] = (meta, bytes(payload))
            self.tier.put(key, *framed)
            return
        self.tier.put(key, framing.rebind(framed[0], key), framed[1])

    def remove(self, key: Hashable) -> bool:
        return self.tier.remove(key)

    def close(self) -> None:
        close = getattr(self.tier, "close", None)
        if close is not None:
            close()
