"""The Sentinel URL form of ``cache.network.url``, parsed without importing redis.

``redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db][?sentinel_password=...]``

The hosts are Sentinels (not Redis servers); ``service_name`` is the name they monitor
(``sentinel monitor NAME ...``). ``user:pass@`` authenticates to the master, as in a
``redis://`` URL; Sentinels themselves are reached without a password unless
``sentinel_username=`` / ``sentinel_password=`` are given. The config check and the
connection pool use this one parser, so a URL accepted at start is one the tier can use.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SCHEME = "redis+sentinel://"
EXAMPLE = "redis+sentinel://host:26379,host2:26379/mymaster/0"


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a ``redis+sentinel://`` URL; ValueError (no secret in it) when malformed."""
    if not url.startswith(SCHEME):
        raise ValueError(f"does not start with {SCHEME}")
    rest = url[len(SCHEME) :]
    rest, _, query = rest.partition("?")
    rest = rest.partition("#")[0]
    username = password = None
    at = rest.rfind("@")
    if at >= 0:  # the last "@": a password may itself hold "@"
        cred, rest = rest[:at], rest[at + 1 :]
        user, colon, secret = cred.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else unquote(user)
        if not colon:
            username = None
    hosts, slash, path = rest.partition("/")
    if not hosts:
        raise ValueError("names no Sentinel host:port")
    sentinels = [_host_port(item) for item in hosts.split(",")]
    parts = [p for p in path.split("/") if p] if slash else []
    if not parts:
        raise ValueError("names no service (the name the Sentinels monitor)")
    if len(parts) > 2:
        raise ValueError(f"path {'/'.join(parts)!r} is not service_name[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"database {parts[1]!r} is not a number")
        db = int(parts[1])
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - {"sentinel_username", "sentinel_password"})
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r} (known: sentinel_username, sentinel_password)"
        )
    return SentinelAddress(
        tuple(sentinels),
        unquote(parts[0]),
        db,
        username,
        password,
        params.get("sentinel_username") or None,
        params.get("sentinel_password") or None,
    )


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host:
        raise ValueError(f"Sentinel address {item!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Sentinel port {port!r} is not a port number")
    return host, int(port)
