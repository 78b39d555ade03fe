"""``verify --tier network``: every shared record authenticated, every chunk present and right.

The checks are the network tier's own (``NetworkTier.verify_records``: the read gate, then
every chunk); this op counts and reports. Reads every chunk once, in batches (``MGET``), so
it costs the whole shared payload in transfer; it never writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from llamacache.errors import ExitCode
from llamacache.manager import CacheManager
from llamacache.ops import network_admin as na
from llamacache.ops._report import Report


@dataclass(frozen=True)
class NetworkProblem:
    cache: str
    key: str
    problem: str  # "bad record", "bad signature", "missing chunk 3", "chunk 3 digest", ...


@dataclass(frozen=True)
class NetworkVerifyReport(Report):
    schema = "network.verify"
    caches: tuple[str, ...]
    checked: int
    bytes_checked: int
    problems: tuple[NetworkProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.PROBLEM

    @property
    def problem_count(self) -> int:
        return len(self.problems)


def verify_network(
    manager: CacheManager, cache: str | None = None, progress: na.Progress | None = None
) -> NetworkVerifyReport:
    """Every record authenticated (with a signing key), every chunk present and hashing right.

    Reads every chunk once (in batches), so it costs the whole shared payload in transfer.
    """
    names = na.network_caches(manager, cache)
    checked = nbytes = 0
    problems: list[NetworkProblem] = []
    for name in names:
        c, n, p = _verify_one(manager, name, progress)
        checked, nbytes, problems = checked + c, nbytes + n, problems + p
    return NetworkVerifyReport(tuple(names), checked, nbytes, tuple(problems))


def _verify_one(
    manager: CacheManager, cache: str, progress: na.Progress | None
) -> tuple[int, int, list[NetworkProblem]]:
    tier = na.tier_for(manager, cache)
    problems: list[NetworkProblem] = []
    checked = nbytes = 0
    try:
        for found in tier.verify_records():
            checked += 1
            nbytes += found.bytes
            if found.problem:
                problems.append(NetworkProblem(cache, found.key, found.problem))
            if progress is not None:
                progress(checked, None)
    except (redis.RedisError, OSError) as exc:
        raise na.unreachable(tier, exc) from exc
    return checked, nbytes, problems
