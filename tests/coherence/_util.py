"""Helpers for coherence tests: staleness figures, a bounded trial count, a writer process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

# Read at import: the autouse fixture strips LLAMACACHE_* variables from each test's env.
TRIALS = max(1, int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "40")))
INTERVAL = 0.05  # the default coherence_interval
BOUND = INTERVAL + 0.05  # the promise: p99 staleness within coherence_interval + 50 ms


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def wait_seen(get: Callable[[], Any], want: Any, since: float, limit: float = 5.0) -> float:
    """Poll ``get()`` until it returns ``want``; seconds from ``since`` (monotonic), or inf."""
    end = since + limit
    while True:
        if get() == want:
            return time.monotonic() - since
        if time.monotonic() > end:
            return float("inf")
        time.sleep(0.0005)


def report(name: str, lags: list[float]) -> None:
    """Print the staleness figures (pytest -s shows them; the benchmark prints them too)."""
    print(
        f"\n{name}: n={len(lags)} p50={pct(lags, 0.5) * 1000:.1f} ms "
        f"p99={pct(lags, 0.99) * 1000:.1f} ms max={max(lags) * 1000:.1f} ms",
        file=sys.stderr,
    )
