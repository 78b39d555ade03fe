"""The value parsers: every accepted spelling, every rejection's message, and round trips."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamacache.config import units
from llamacache.errors import ConfigError

MB = 10**6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4 * 10**9),
        ("4GiB", 4 * 2**30),
        ("1.5G", 1_500_000_000),
        ("512MiB", 512 * 2**20),
        ("100GB", 100 * 10**9),
        (" 4 gb ", 4 * 10**9),
        ("123456789B", 123_456_789),
        ("1000", 1000 * MB),
        ("1.5", 1_500_000),
        ("0", 0),
        (1000, 1000 * MB),
        (1.1, 1_100_000),
        (0, 0),
    ],
)
def test_parse_size_accepts(text: object, expected: int) -> None:
    assert units.parse_size(text, field="cache.disk_size") == expected


def test_bare_number_is_megabytes_as_in_the_seed() -> None:
    assert units.parse_size(1000, field="cache.memory.size") == 1_000_000_000


def test_percentage_of_memory_and_of_disk(tmp_path: Path) -> None:
    total_ram = psutil.virtual_memory().total
    assert units.parse_size("30%", field="f", kind="memory") == int(total_ram * 30 / 100)
    missing = tmp_path / "not" / "yet"
    disk = shutil.disk_usage(tmp_path).total
    assert units.parse_size("50%", field="f", kind="disk", base_path=missing) == int(disk * 0.5)
    assert units.parse_size("100%", field="f", kind="disk", base_path=tmp_path) == disk


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("-1GB", '"-1GB"'),
        ("", '""'),
        ("   ", '"   "'),
        ("lots", '"lots"'),
        ("4 parsecs", '"4 parsecs"'),
        ("1.2.3", '"1.2.3"'),
        ("-5", '"-5"'),
        (-1, "-1"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (True, "true"),
        (None, "null"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_parse_size_rejects_with_the_style_message(value: object, shown: str) -> None:
    with pytest.raises(ConfigError) as err:
        units.parse_size(value, field="cache.disk_size")
    assert str(err.value) == (
        f'cache.disk_size: {shown} is not a size; expected e.g. "100GB", "512MiB", "30%"'
    )


@pytest.mark.parametrize("value", ["0%", "101%", "-5%", "%", "abc%"])
def test_bad_percentages(value: str) -> None:
    with pytest.raises(ConfigError, match=r"a percentage must be above 0% and at most 100%"):
        units.parse_size(value, field="cache.memory.size", kind="memory")


def test_absurd_sizes_are_too_large() -> None:
    with pytest.raises(ConfigError, match=r'^f: "99999999999TB" is too large'):
        units.parse_size("99999999999TB", field="f")


def test_parse_size_bytes_numbers_are_bytes_strings_are_file_meaning() -> None:
    assert units.parse_size_bytes(1234567.0, field="f") == 1_234_567
    assert units.parse_size_bytes(4096, field="f") == 4096
    assert units.parse_size_bytes("4GB", field="f") == 4 * 10**9
    assert units.parse_size_bytes("1000", field="f") == 1000 * MB
    with pytest.raises(ConfigError, match=r"^CacheConfig.memory_size: -1 is not a size"):
        units.parse_size_bytes(-1, field="CacheConfig.memory_size")
    with pytest.raises(ConfigError):
        units.parse_size_bytes(False, field="f")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (4 * 10**9, "4GB"),
        (10**9, "1GB"),
        (1000 * MB, "1GB"),
        (1024 * MB, "1024MB"),
        (32 * 1024, "32KiB"),
        (512 * 2**20, "512MiB"),
        (123_456_789, "123456789B"),
        (2 * 10**12, "2TB"),
    ],
)
def test_size_to_config(n: int, text: str) -> None:
    assert units.size_to_config(n) == text


@given(st.integers(min_value=0, max_value=units.MAX_SIZE))
def test_size_to_config_round_trips(n: int) -> None:
    assert units.parse_size(units.size_to_config(n), field="f") == n


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parse_size_raises_only_config_error(value: object) -> None:
    try:
        result = units.parse_size(value, field="f", kind="memory")
    except ConfigError:
        return
    assert isinstance(result, int) and 0 <= result <= units.MAX_SIZE


def test_format_size() -> None:
    assert units.format_size(4 * 10**9) == "4 GB"
    assert units.format_size(1_500_000) == "1.5 MB"
    assert units.format_size(512) == "512 bytes"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("30m", 1800.0),
        ("90s", 90.0),
        ("1.5h", 5400.0),
        ("3600", 3600.0),
        (" 2.5 ", 2.5),
        (300, 300.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert units.parse_duration(value, field="f") == seconds


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("soon", '"soon"'),
        ("-1h", '"-1h"'),
        ("", '""'),
        (-5, "-5"),
        (True, "true"),
        (float("nan"), "nan"),
        ("-3", '"-3"'),
        ({}, "{}"),
    ],
)
def test_parse_duration_rejects(value: object, shown: str) -> None:
    with pytest.raises(ConfigError) as err:
        units.parse_duration(value, field="cache.disk.cleanup_interval")
    assert str(err.value) == (
        f'cache.disk.cleanup_interval: {shown} is not a duration; expected e.g. "30s", "1h", "7d" '
        "or seconds"
    )


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parse_duration_raises_only_config_error(value: object) -> None:
    try:
        result = units.parse_duration(value, field="f")
    except ConfigError:
        return
    assert math.isfinite(result) and result >= 0


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_duration_numbers_round_trip(seconds: float) -> None:
    assert units.parse_duration(repr(seconds), field="f") == seconds


def test_optional_duration_and_format() -> None:
    assert units.parse_optional_duration(None, field="f") is None
    assert units.parse_optional_duration("none", field="f") is None
    assert units.parse_optional_duration("1d", field="f") == 86400.0
    assert units.format_duration(3600) == "1 hour"


@pytest.mark.parametrize(("value", "share"), [(0.9, 0.9), ("90%", 0.9), ("0.5", 0.5), (1, 1.0)])
def test_parse_fraction(value: object, share: float) -> None:
    assert units.parse_fraction(value, field="f") == pytest.approx(share)


@pytest.mark.parametrize("value", [0, 0.0, 1.5, -0.1, "0%", "150%", "most", True, None])
def test_parse_fraction_rejects(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        units.parse_fraction(value, field="cache.eviction_threshold")
    assert str(err.value).startswith(
        f"cache.eviction_threshold: {units.show(value)} is not a fraction"
    )
    assert str(err.value).endswith('expected 0 < x <= 1, e.g. 0.9 or "90%"')


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (True, True),
        ("true", True),
        ("YES", True),
        ("1", True),
        ("on", True),
        (1, True),
        (False, False),
        ("false", False),
        ("no", False),
        ("0", False),
        ("off", False),
    ],
)
def test_parse_bool(value: object, flag: bool) -> None:
    assert units.parse_bool(value, field="f") is flag


def test_parse_bool_rejects() -> None:
    with pytest.raises(
        ConfigError, match=r'^cache.disk.use_mmap: "maybe" is not a boolean; expected'
    ):
        units.parse_bool("maybe", field="cache.disk.use_mmap")


def test_parse_int() -> None:
    assert units.parse_int("32", field="f", min=0) == 32
    assert units.parse_int(1e3, field="f") == 1000
    with pytest.raises(ConfigError, match=r"^f: -1 is not valid; expected a whole number >= 0$"):
        units.parse_int(-1, field="f", min=0)
    with pytest.raises(ConfigError, match=r"expected a whole number >= 0 and <= 22"):
        units.parse_int(1.5, field="f", min=0, max=22)
    with pytest.raises(ConfigError):
        units.parse_int(True, field="f")


def test_parse_choice_suggests() -> None:
    assert units.parse_choice("LRU", ("lru", "fifo"), field="f") == "lru"
    with pytest.raises(ConfigError) as err:
        units.parse_choice("lfru", ("lru", "fifo", "lfu"), field="cache.policy")
    assert (
        str(err.value) == 'cache.policy: "lfru" is not one of lru, fifo, lfu; did you mean "lru"?'
    )
    with pytest.raises(ConfigError) as err:
        units.parse_choice(3, ("lru",), field="cache.policy")
    assert str(err.value) == "cache.policy: 3 is not one of lru"


def test_parse_compression() -> None:
    codecs = ("none", "zlib", "zstd", "lz4", "auto")
    assert units.parse_compression(True, field="f", codecs=codecs) == "auto"
    assert units.parse_compression(False, field="f", codecs=codecs) == "none"
    assert units.parse_compression("zstd", field="f", codecs=codecs) == "zstd"
    assert units.parse_compression("none", field="f", codecs=codecs) == "none"
    with pytest.raises(ConfigError, match='did you mean "zstd"'):
        units.parse_compression("zstdd", field="f", codecs=codecs)


def test_format_size_is_humanfriendlys_text_without_importing_it() -> None:
    import random

    import humanfriendly

    rng = random.Random(7)
    values = [0, 1, 2, 999, 1000, 1001, 1500, 999_999, 10**6, 10**9 - 1, 5 * 10**12, 2**63 - 1]
    values += [rng.randrange(10 ** rng.randrange(1, 22)) for _ in range(5000)]
    for n in values:
        assert units.format_size(n) == humanfriendly.format_size(n), n
