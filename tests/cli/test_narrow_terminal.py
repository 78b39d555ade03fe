"""The main screens on an 80-column terminal, and piped: the rule is checked under a real
pseudo-terminal (the process sees a tty 80 columns wide), with keys far longer than that."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from llamacache.cli.render import ago, elide_middle
from tests.cli.helpers import cli, llamacache_exe, run

LONG = "tokenizers/" + "very-long-segment-" * 8 + "end.bin"


def _on_pty(*args: str, columns: int = 80, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the real entry point with stdout and stderr on a pty ``columns`` wide."""
    main, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    child_env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    child_env.update(env or {})
    proc = subprocess.Popen(
        [*llamacache_exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=child_env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    code = proc.wait(timeout=60)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours, cursor moves
    return code, "\n".join(line.rpartition("\r")[2] for line in text.split("\n"))


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A default cache and a model cache with long keys, plus a folder to warm."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"part{i}.bin").write_bytes(os.urandom(40_000 + i))
        assert cli("put", f"{LONG}-{i}", "--file", str(data / f"part{i}.bin")).exit_code == 0
        assert cli("put", f"short{i}", "x" * 100).exit_code == 0
    assert cli("warm", str(data)).exit_code == 0
    return data


COMMANDS = (
    ("inspect", "--top", "5"),
    ("ls",),
    ("ls", "-c", "model"),
    ("stats",),
    ("clean", "--dry-run"),
    ("evict", "--match", "*", "--dry-run"),
    ("verify",),
    ("warm", "-c", "default", "{data}"),
)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_screen_fits_80_columns_on_a_terminal(filled: Path, args: tuple[str, ...]) -> None:
    argv = [a.replace("{data}", str(filled)) for a in args]
    code, out = _on_pty(*argv)
    assert code == 0, out
    lines = out.splitlines()
    assert lines, out
    too_long = [line for line in lines if len(line) > 80]
    assert not too_long, "\n".join(too_long)
    wide_code, wide = _on_pty(*argv, "--wide", columns=80)
    assert wide_code == 0
    if args[0] in ("ls", "inspect", "evict", "warm"):  # --wide shows keys whole
        # the model cache holds file bytes under blob keys (blobs/xxh3/<32 hex>.bin)
        blob = re.search(r"blobs/xxh3/[0-9a-f]{32}\.bin", wide)
        assert LONG in wide or "part0.bin" in wide or blob is not None


def test_columns_env_is_honoured_when_piped(filled: Path) -> None:
    env = {**os.environ, "COLUMNS": "60"}
    proc = subprocess.run(
        [*llamacache_exe(), "ls", "-c", "default"],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 + 6 and all(len(line) <= 60 for line in lines)


def test_piped_output_is_one_record_per_line_with_whole_keys(filled: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [*llamacache_exe(), "ls", "-c", "default"], capture_output=True, env=env, timeout=60
    )
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 + 6  # header + one line per entry, nothing folded
    assert sum(LONG in line for line in lines) == 3


def test_relative_times_and_middle_elision() -> None:
    now = 1_000_000.0
    assert ago(now - 3 * 86400, now) == "3d ago"
    assert ago(now - 90, now) == "1m ago"
    assert ago(now + 7200, now) == "in 2h"
    assert ago(None, now) == "-"
    cut = elide_middle(LONG, 30)
    assert len(cut) == 30 and cut.startswith("tokenizers/") and cut.endswith("end.bin")


def test_ls_wide_has_every_column_and_exact_times(filled: Path) -> None:
    proc = run("ls", "--wide")
    header = proc.stdout.decode().splitlines()[0].split()
    assert {"stored", "accessed", "expires", "kind", "codec", "checksum"} <= set(header)
    narrow = run("ls").stdout.decode().splitlines()[0].split()
    assert "checksum" not in narrow and "key" in narrow


def _squashed(text: str) -> str:
    return "".join(text.split())


SENTENCES = (
    ("verify",),
    ("config", "show", "caches.model"),
    ("clean", "--dry-run"),
    ("bench", "--tier", "memory", "--ops", "200", "--keys", "20", "--value-size", "1KB"),
)


@pytest.mark.parametrize("args", SENTENCES, ids=lambda a: " ".join(a[:2]))
def test_sentences_wrap_at_words_and_lose_nothing(filled: Path, args: tuple[str, ...]) -> None:
    """At 80 columns a summary sentence wraps at word boundaries; nothing is cut from it.
    (Tables may still elide a long cell: bench's target names; config show wraps its
    value and source cells, which are sentences.)"""
    code, out = _on_pty(*args)
    assert code == 0, out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    if args[0] != "bench":
        assert "…" not in out, out
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run(
        [*llamacache_exe(), *args], capture_output=True, env=env, timeout=120, check=True
    ).stdout.decode()
    lines = piped.splitlines()
    sentences = [line for line in lines if len(line) > 80 and "  " not in line.strip()]
    if args[0] == "config":  # the long cell of its one row
        sentences = [c for row in lines[3:] for c in row.split("  ") if len(c) > 30]
    assert sentences, piped  # something did need wrapping
    if args[0] in ("config", "clean"):  # no timings: the same text, only wrapped
        for sentence in sentences:
            assert _squashed(sentence) in _squashed(out), (sentence, out)
    tokens = set(out.split())
    for word in " ".join(sentences).split():  # wrapped at spaces: each word arrives whole
        if not re.search(r"[0-9]", word) and len(word) <= 60:
            assert word in tokens, (word, out)
