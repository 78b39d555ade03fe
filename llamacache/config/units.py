"""Parsing and formatting of sizes, durations, fractions and choices.

Every value a user types (TOML, YAML, environment, flags) passes through one of
these parsers, so a bad value gets the same one-line ConfigError wherever it was
written: the field, the value as written, and what would have been accepted.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from llamacache.config.settings import MAX_DURATION
from llamacache.errors import ConfigError

MB = 10**6
# SQLite (the disk index) stores signed 64-bit integers; a larger "size" is a typo.
MAX_SIZE = 2**63 - 1

SIZE_EXAMPLES = 'expected e.g. "100GB", "512MiB", "30%"'
DURATION_EXAMPLES = 'expected e.g. "30s", "1h", "7d" or seconds'
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null")

# What humanfriendly should see: a number and a unit it knows. It alone would read
# "4 parsecs" as 4 PB (it matches units by first letter), so we check the shape first.
_SIZE_TEXT = re.compile(r"(\d+(\.\d*)?|\.\d+)\s*([kmgtpezy](ib?|b)?|b|bytes?)", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# Exact units for size_to_config, largest first: a value divisible by one prints as it.
_EXACT_UNITS = (
    ("TB", 10**12),
    ("TiB", 2**40),
    ("GB", 10**9),
    ("GiB", 2**30),
    ("MB", 10**6),
    ("MiB", 2**20),
    ("KB", 10**3),
    ("KiB", 2**10),
)


def show(value: object) -> str:
    """The value as the user wrote it, quoted like TOML/JSON so blanks and types are visible."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)


def _is_bad_number(value: object) -> bool:
    """Booleans are ints in Python but never sizes; NaN and infinities are never finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    return isinstance(value, float) and not math.isfinite(value)


def _numeric(text: str) -> float | int | None:
    """A plain number written as a string ("1000", "1.5"), else None."""
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text) if any(c in text for c in ".eE") else int(text)
    return number if math.isfinite(number) else None


# -- sizes ---------------------------------------------------------------------------------------


def _size_error(value: object, field: str) -> ConfigError:
    return ConfigError(f"{field}: {show(value)} is not a size; {SIZE_EXAMPLES}")


def _megabytes(number: float | int) -> float | int:
    """Bytes in ``number`` MB, rounded to a whole byte (1.1 * 10**6 is 1100000.0000000002)."""
    product = number * MB
    return round(product) if isinstance(product, float) and math.isfinite(product) else product


def _checked(n: float | int, value: object, field: str) -> int:
    if not math.isfinite(n) or n < 0:
        raise _size_error(value, field)
    result = int(n)
    if result > MAX_SIZE:
        raise ConfigError(f"{field}: {show(value)} is too large; {SIZE_EXAMPLES}")
    return result


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest existing ancestor: the cache dir may not exist yet."""
    path = path.expanduser().absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def physical_memory() -> int:
    """Bytes of RAM: sysconf where it answers (psutil's figure, without its ~20 ms import)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)


def _percentage(text: str, value: object, field: str, kind: str, base_path: Path | None) -> int:
    number = _numeric(text[:-1].strip())
    if number is None or not 0 < number <= 100:
        raise ConfigError(
            f"{field}: {show(value)} is not a size; a percentage must be above 0% and at most 100%"
        )
    if kind == "memory":
        total = physical_memory()
    else:
        total = shutil.disk_usage(_nearest_existing(base_path or Path.cwd())).total
    return _checked(total * number / 100, value, field)


def parse_size(
    value: object,
    *,
    field: str,
    kind: Literal["memory", "disk"] = "disk",
    base_path: Path | None = None,
) -> int:
    """Bytes from a size as users write it: "4GB" (decimal), "4GiB", "30%", or a bare number of MB.

    A bare number means megabytes because the seed config writes ``size: 1000  # MB``.
    A percentage is a share of physical memory (kind="memory") or of the filesystem
    holding ``base_path`` (kind="disk"), measured now. 0 is allowed ("disabled").
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _size_error(value, field)
        if text.endswith("%"):
            return _percentage(text, value, field, kind, base_path)
        number = _numeric(text)
        if number is not None:
            return _checked(_megabytes(number), value, field)
        if not _SIZE_TEXT.fullmatch(text):
            raise _size_error(value, field)
        try:
            import humanfriendly

            return _checked(humanfriendly.parse_size(text, binary=False), value, field)
        except ConfigError:
            raise
        except Exception:  # humanfriendly raises InvalidSize, but odd text can raise others
            raise _size_error(value, field) from None
    if _is_bad_number(value):
        raise _size_error(value, field)
    assert isinstance(value, int | float)
    return _checked(_megabytes(value), value, field)


def parse_size_bytes(
    value: object,
    *,
    field: str,
    kind: Literal["memory", "disk"] = "memory",
    base_path: Path | None = None,
) -> int:
    """Like parse_size, but a Python int/float means BYTES (``get_available_memory() * 0.3``).

    Strings keep the config-file meaning, so ``"1000"`` is still 1000 MB.
    """
    if isinstance(value, str):
        return parse_size(value, field=field, kind=kind, base_path=base_path)
    if _is_bad_number(value):
        raise _size_error(value, field)
    assert isinstance(value, int | float)
    return _checked(value, value, field)


def size_to_config(n: int) -> str:
    """An exact size string that parse_size maps back to ``n``: "4GB", "1000MB", "123B"."""
    if n < 0:
        raise ValueError(f"a size cannot be negative: {n}")
    for unit, factor in _EXACT_UNITS:
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


_DECIMAL_UNITS = ("KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def format_size(n: int) -> str:
    """A size for people, in decimal units ("4 GB", "1.5 MB", "512 bytes").

    Exactly humanfriendly.format_size's text (a test compares them), without importing
    it: every table prints sizes, and humanfriendly costs ~20 ms at start-up.
    """
    for power in range(len(_DECIMAL_UNITS), 0, -1):
        if n >= 1000**power:
            number = f"{n / 1000**power:.2f}"
            if "." in number:
                number = number.rstrip("0").rstrip(".")
            return f"{number} {_DECIMAL_UNITS[power - 1]}"
    return f"{n} byte" if n == 1 else f"{n} bytes"


# -- durations -----------------------------------------------------------------------------------


def _duration_error(value: object, field: str) -> ConfigError:
    return ConfigError(f"{field}: {show(value)} is not a duration; {DURATION_EXAMPLES}")


def parse_duration(value: object, *, field: str) -> float:
    """Seconds from a number of seconds or a humanfriendly span ("90s", "30m", "1.5h", "7d")."""
    if isinstance(value, str):
        text = value.strip()
        number = _numeric(text) if text else None
        if number is None:
            if not text or text.startswith(("-", "+")):
                raise _duration_error(value, field)
            try:
                import humanfriendly

                number = float(humanfriendly.parse_timespan(text))
            except Exception:  # InvalidTimespan, or odd tokens tripping humanfriendly
                raise _duration_error(value, field) from None
    elif _is_bad_number(value):
        raise _duration_error(value, field)
    else:
        assert isinstance(value, int | float)
        number = value
    if not math.isfinite(number) or number < 0:
        raise _duration_error(value, field)
    if number > MAX_DURATION:
        raise ConfigError(f"{field}: {show(value)} is too long; expected at most 100 years")
    return float(number)


def parse_optional_duration(value: object, *, field: str) -> float | None:
    """A duration, or None for null / "none" (no expiry: the setting is deliberately off)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        return None
    return parse_duration(value, field=field)


def format_duration(seconds: float) -> str:
    """A duration for people ("1 hour", "1.5 seconds")."""
    import humanfriendly

    return str(humanfriendly.format_timespan(seconds))


# -- fractions, booleans, integers, choices ------------------------------------------------------


def parse_fraction(value: object, *, field: str) -> float:
    """A share in (0, 1], written 0.9 or "90%" (eviction_threshold)."""
    number: float | int | None = None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            pct = _numeric(text[:-1].strip())
            number = None if pct is None else pct / 100
        else:
            number = _numeric(text)
    elif not _is_bad_number(value):
        assert isinstance(value, int | float)
        number = value
    if number is None or not 0 < number <= 1:
        raise ConfigError(
            f'{field}: {show(value)} is not a fraction; expected 0 < x <= 1, e.g. 0.9 or "90%"'
        )
    return float(number)


def parse_bool(value: object, *, field: str) -> bool:
    """true/false, and the strings an environment variable carries ("1", "yes", "off"...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    raise ConfigError(f"{field}: {show(value)} is not a boolean; expected true or false")


def parse_int(value: object, *, field: str, min: int | None = None, max: int | None = None) -> int:
    """A whole number within [min, max]; integral floats (1e3 in TOML) are accepted."""
    number: int | None = None
    if isinstance(value, str):
        parsed = _numeric(value.strip())
        if parsed is not None and float(parsed).is_integer():
            number = int(parsed)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    low = "" if min is None else f" >= {min}"
    high = "" if max is None else f" <= {max}"
    expected = f"expected a whole number{low}{' and' if low and high else ''}{high}"
    if number is None or (min is not None and number < min) or (max is not None and number > max):
        raise ConfigError(f"{field}: {show(value)} is not valid; {expected}")
    return number


def parse_choice(value: object, choices: Sequence[str], *, field: str) -> str:
    """One of ``choices`` (case-insensitive), with a "did you mean" for near misses."""
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    message = f"{field}: {show(value)} is not one of {', '.join(choices)}"
    if isinstance(value, str):
        close = difflib.get_close_matches(value.strip().lower(), choices, n=1)
        if close:
            message += f'; did you mean "{close[0]}"?'
    raise ConfigError(message)


def parse_compression(value: object, *, field: str, codecs: Sequence[str]) -> str:
    """A codec name; true means "auto" and false "none" (the seed writes ``compression: true``)."""
    if isinstance(value, bool):
        return "auto" if value else "none"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return "auto"
        if text in FALSE_WORDS and text not in codecs:
            return "none"
    return parse_choice(value, codecs, field=field)
