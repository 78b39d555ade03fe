"""``verify --tier network``: every shared record authenticated, every chunk present and right.

Reads every chunk once, in batches (``MGET``), so it costs the whole shared payload in
transfer; it never writes. Split from ``network_admin`` to keep each module small.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from llamacache.engine import checksums
from llamacache.engine import netformat as nf
from llamacache.engine.network import NetworkTier
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
        for rkey, data in na.records(tier):
            if data is None:
                continue
            key = na.display_key(tier, rkey)
            problem, n = _check(tier, rkey, data)
            checked += 1
            nbytes += n
            if problem:
                problems.append(NetworkProblem(cache, key, problem))
            if progress is not None:
                progress(checked, None)
    except (redis.RedisError, OSError) as exc:
        raise na.unreachable(tier, exc) from exc
    return checked, nbytes, problems


def _check(tier: NetworkTier, rkey: str, data: bytes) -> tuple[str | None, int]:
    try:  # the same gate a read goes through: what it rejects is listed here
        rec, meta = nf.admit(rkey.encode(), data, tier._keys, tier.settings.max_value_size)
    except nf.BadRecord as exc:
        return str(exc), 0
    if rec.rtype == nf.T_INLINE:
        return None, len(rec.body)
    man = nf.unpack_manifest(rec.body)
    per = max(1, tier.batch_bytes // man.chunk_size)
    hasher = checksums.BY_NAME[meta.checksum].new()
    seen = 0
    for start in range(0, man.count, per):
        names = [
            nf.chunk_key(tier.settings.key_prefix, tier.cache, meta.digest, man.chunk_size, i)
            for i in range(start, min(man.count, start + per))
        ]
        for i, chunk in enumerate(tier.client.mget(names), start):
            if chunk is None:
                return f"missing chunk {i} ({names[i - start]})", seen
            if man.algo.digest(chunk) != man.digests[i]:  # type: ignore[arg-type]
                return f"chunk {i} digest mismatch ({names[i - start]})", seen
            hasher.update(chunk)  # type: ignore[arg-type]
            seen += len(chunk)
    if seen != meta.stored_len or hasher.digest() != meta.digest:
        return "assembled value digest mismatch", seen
    return None, seen
