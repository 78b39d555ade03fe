"""Options declared once and shared by every command.

Sizes and durations parse with the same functions as the config file, so a bad
``--to-size`` fails with the same one-line message as a bad TOML value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llamacache.config import units
from llamacache.errors import ConfigError


def _size(value: str) -> int:
    try:
        return units.parse_size(value, field="size")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def _duration(value: str) -> float:
    try:
        return units.parse_duration(value, field="duration")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def _line_settings(ctx: typer.Context) -> Any:
    """The configuration the command line names (--config/--cache-dir already typed)."""
    from llamacache.config import resolve

    params = ctx.find_root().params
    overrides: dict[str, object] = {}
    if params.get("cache_dir"):
        overrides["cache.disk.path"] = str(params["cache_dir"])
    return resolve(config_file=params.get("config"), overrides=overrides)


def complete_cache_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Configured cache names for shell completion, honouring --config/--cache-dir on the line.

    Runs inside ``_LLAMACACHE_COMPLETE=...``: it must never print or raise, only answer.
    """
    from llamacache.errors import LlamacacheError

    try:
        settings = _line_settings(ctx)
    except (LlamacacheError, OSError):
        return []
    return [name for name in sorted(settings.caches) if name.startswith(incomplete)]


KEY_COMPLETIONS = 300  # a shell list longer than this helps nobody; type more of the key


def _glob_literal(text: str) -> str:
    """``text`` matched literally by SQLite's GLOB (``*``, ``?`` and ``[`` bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def complete_keys(ctx: typer.Context, incomplete: str) -> list[str]:
    """Keys starting with ``incomplete`` in the cache on the line (``-c``; every cache when the
    command has no default), at most KEY_COMPLETIONS, sorted: one indexed read through the
    ``ls`` op, no value read. Never prints or raises (it runs on TAB)."""
    from llamacache.errors import LlamacacheError
    from llamacache.manager import CacheManager
    from llamacache.ops import ls as ls_ops

    try:
        with CacheManager(_line_settings(ctx)) as manager:
            report = ls_ops.ls(
                manager,
                ctx.params.get("cache"),
                sort="key",
                limit=KEY_COMPLETIONS,
                filters=(f"key~{_glob_literal(incomplete)}*",),
            )
    except (LlamacacheError, OSError, ValueError):
        return []
    return [str(e.key) for e in report.entries]


# What the shells complete without asking llamacache: option values from a fixed list,
# keyed by (command path, option); "*" is any command. The ops validate against the same.
def static_choices() -> dict[tuple[str, str], tuple[str, ...]]:
    from llamacache.config.settings import POLICIES
    from llamacache.ops import _bench_targets, ls

    return {
        ("*", "--tier"): ("local", "network", "object"),  # every admin command's --tier (TierOpt)
        ("evict", "--tier"): ("memory", "disk", "local", "network", "object"),
        ("bench", "--tier"): ("memory", "disk", "local", "network", "object"),
        ("bench", "--workload"): tuple(_bench_targets.WORKLOADS),
        ("bench", "--policy"): POLICIES,
        ("ls", "--sort"): tuple(
            f"{field}{suffix}" for field in ls.SORTS for suffix in ("", ":asc", ":desc")
        ),
    }


# Where the shells ask llamacache for keys: (command path, option, or "" for the arguments).
KEY_COMPLETED = frozenset({("get", ""), ("rm", ""), ("evict", "--key")})


CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache",
        "-c",
        help="Named cache (default: every cache for admin commands).",
        show_default=False,
        autocompletion=complete_cache_names,
    ),
]
OneCacheOpt = Annotated[
    str,
    typer.Option("--cache", "-c", help="Named cache to use.", autocompletion=complete_cache_names),
]
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide",
        "-w",
        help="Every column, full keys and exact times (default: fit the terminal's width).",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
SizeOpt = Annotated[
    int | None,
    typer.Option(parser=_size, metavar="SIZE", help='A size, e.g. "4GB", "512MiB", "30%".'),
]
DurationOpt = Annotated[
    float | None,
    typer.Option(parser=_duration, metavar="DURATION", help='A duration, e.g. "30s", "1h", "7d".'),
]
TtlOpt = Annotated[
    float | None,
    typer.Option(
        "--ttl",
        parser=_duration,
        metavar="DURATION",
        help='Expire the entry after this long, e.g. "1h".',
    ),
]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        parser=_duration,
        metavar="DURATION",
        help="How long to wait for another run's lock before exiting with code 3.",
    ),
]
PathArg = Annotated[Path, typer.Argument(help="A path.")]
ExistingKeyArg = Annotated[
    str,
    typer.Argument(
        help="The entry's key (any string; never a path).", autocompletion=complete_keys
    ),
]
