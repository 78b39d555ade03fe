"""Counters that outlive the process; the table format lives in ``engine/metrics_store.py``.

This name stays for callers of the public API (``add``, ``read``, ``reset``, ``has_ghosts``).
"""

from llamacache.engine.metrics_store import (
    DB_NAME,
    FLUSH_ERRORS,
    Counters,
    add,
    has_ghosts,
    read,
    reset,
)

__all__ = ["DB_NAME", "FLUSH_ERRORS", "Counters", "add", "has_ghosts", "read", "reset"]
