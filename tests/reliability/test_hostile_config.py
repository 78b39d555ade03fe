"""(9) Hostile configuration through the real CLI: never a traceback, never a touched cache.

Hypothesis feeds size strings, durations, mutated TOML and YAML documents and
environment values to the real app (in-process with Typer's CliRunner for speed, plus
subprocess runs as a user would). Every run either succeeds or prints one error line and
exits 2 — no traceback, no "unexpected" error — and a run that fails leaves the existing
cache byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llamacache.cli.app import app
from llamacache.config.schema import SETTINGS

from ._util import Figure, llamacache_cmd, open_cache

VALID_TOML = """\
[cache]
memory_size = "4GB"
disk_size = "100GB"
policy = "lru"
eviction_threshold = 0.9
max_age = "7d"

[cache.memory]
max_items = 1000
cleanup_interval = 300

[cache.disk]
use_mmap = true
file_threshold = "32KiB"

[caches.model]
size = 1024
compression = "zstd"
"""
VALID_YAML = """\
cache:
  memory:
    size: 1000  # MB
    type: "lru"
    compression: true
  disk:
    size: 10000  # MB
    cleanup_interval: 3600  # seconds
model_cache:
  size: 1024  # MB
  format: "safetensors"
  compression: true
  cleanup_policy: "lru"
system_cache:
  size: 256
  max_age: 86400
  cleanup_policy: "time"
"""
ENV_NAMES = sorted({name for s in SETTINGS for name in s.env if "PATH" not in name})

size_strings = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True)),
        st.sampled_from(["", "B", "KB", "kib", "MB", "GiB", "TB", "PB", "EB", "%", " GB", "xB"]),
    ),
)
durations = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.one_of(st.integers(-(10**20), 10**20), st.floats()),
        st.sampled_from(["", "s", "m", "h", "d", "w", "y", "ms", " days", "x"]),
    ),
)


@st.composite
def mutated(draw: Any, doc: str) -> str:
    """A valid document with a few random edits: deletions, insertions, replaced values."""
    text = doc
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["delete", "insert", "value", "dup"]))
        i = draw(st.integers(0, len(text)))
        if how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)) :]
        elif how == "insert":
            text = (
                text[:i]
                + draw(st.text(alphabet=st.sampled_from(list('[]{}:="#\n -.,0a\t')), max_size=6))
                + text[i:]
            )
        elif how == "value":
            lines = text.splitlines()
            if lines:
                j = draw(st.integers(0, len(lines) - 1))
                sep = "=" if "=" in lines[j] else ":"
                head = lines[j].split(sep, 1)[0]
                value = draw(st.one_of(size_strings, durations, st.sampled_from(["[1,2]", "{}"])))
                lines[j] = f"{head}{sep} {value}"
                text = "\n".join(lines) + "\n"
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                j = draw(st.integers(0, len(lines) - 1))
                text = "".join(lines[: j + 1] + [lines[j]] + lines[j + 1 :])
    return text


def fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Tally:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = self.failures = 0
        self.anomalies: list[str] = []
        self.touched = 0

    def check(self, result: Any, before: dict[str, str], what: str) -> None:
        self.runs += 1
        err = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            self.anomalies.append(f"{what}: {type(result.exception).__name__}: {result.exception}")
            return
        if "Traceback" in err or "unexpected" in err:
            self.anomalies.append(f"{what}: {err[:300]}")
        if result.exit_code == 0:
            return
        self.failures += 1
        if result.exit_code != 2 or err.count("\n") != 1 or not err.startswith("llamacache:"):
            self.anomalies.append(f"{what}: exit {result.exit_code}: {err[:300]!r}")
        if fingerprint(self.root) != before:
            self.touched += 1


def prepared_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    cache = open_cache(root, "default", compression="auto")
    cache.put("k", b"value")
    cache.close()
    return root


def test_hostile_config_files_and_env(tmp_path: Path, figure: Figure) -> None:
    root = prepared_root(tmp_path)
    runner = CliRunner()
    tally = Tally(root)

    def run(args: list[str], env: dict[str, str], what: str) -> None:
        for command in (["config", "show"], ["get", "k"]):
            before = fingerprint(root)  # a good run may write (opening an index does)
            result = runner.invoke(
                app, ["--cache-dir", str(root), *args, *command], env=env, catch_exceptions=True
            )
            tally.check(result, before, f"{what} {command[0]}")
            if result.exit_code == 0 and command[0] == "get":
                assert result.stdout == "value"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        doc=st.one_of(
            mutated(VALID_TOML).map(lambda d: ("toml", d)),
            mutated(VALID_YAML).map(lambda d: ("yaml", d)),
        )
    )
    def files(doc: tuple[str, str]) -> None:
        suffix, text = doc
        path = tmp_path / f"config.{suffix}"
        path.write_text(text)
        run(["--config", str(path)], {}, f"{suffix}:{text!r}")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        name=st.sampled_from(ENV_NAMES),
        value=st.one_of(size_strings, durations, st.text(max_size=12)),
    )
    def env(name: str, value: str) -> None:
        if "\x00" in value:
            return  # an environment cannot hold NUL
        run([], {name: value}, f"env {name}={value!r}")

    files()
    env()
    figure("hostile_config_runs", tally.runs)
    figure("hostile_config_rejected", tally.failures)
    figure("anomalies_config_tracebacks", len(tally.anomalies))
    figure("corrupt_cache_touched_by_bad_config", tally.touched)
    assert not tally.anomalies, tally.anomalies[:5]
    assert tally.touched == 0


def test_hostile_config_as_a_subprocess(tmp_path: Path, figure: Figure) -> None:
    root = prepared_root(tmp_path)
    before = fingerprint(root)
    cases = [
        ("config.toml", '[cache]\ndisk_size = "-1GB"\n'),
        ("config.toml", "[cache\npolicy = lru\n"),
        ("config.yaml", "cache: [unclosed\n"),
        ("config.yaml", "cache:\n  memory:\n    size: 1e400\n"),
        ("config.toml", '[cache]\nmax_age = "forever"\n'),
    ]
    bad = 0
    for name, text in cases:
        path = tmp_path / name
        path.write_text(text)
        done = subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(root), "--config", str(path), "get", "k"],
            capture_output=True,
            check=False,
        )
        err = done.stderr.decode()
        ok = done.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
        bad += not ok
    figure("anomalies_config_subprocess", bad)
    figure("corrupt_cache_touched_subprocess", int(fingerprint(root) != before))
    assert bad == 0 and fingerprint(root) == before
