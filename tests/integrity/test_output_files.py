"""Safe output files (get --out, config init, schedule --crontab-file) and get on a terminal."""

from __future__ import annotations

import os
import pty
import stat
import subprocess
from pathlib import Path

import pytest

from llamacache.ops import output
from tests.cli.helpers import cli, llamacache_exe, run


def _char_device(path: Path) -> None:
    """./null as a character device: mknod as root, else a link to /dev/null."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        path.symlink_to("/dev/null")


def test_get_out_to_a_device_writes_in_place_never_replaces(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    assert cli("put", "k", "value").exit_code == 0
    null = tmp_path / "null"
    _char_device(null)
    assert cli("get", "k", "--out", str(null)).exit_code == 0
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_get_out_to_a_fifo_writes_into_it(tmp_path: Path) -> None:
    assert cli("put", "k", "through a pipe").exit_code == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert run("get", "k", "--out", str(fifo)).returncode == 0
    assert reader.communicate(timeout=30)[0] == b"through a pipe"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_predictable_temp_names_are_not_used(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    for name in (".o.bin.llamacache-tmp", "o.bin.tmp", ".o.bin.tmp"):
        (tmp_path / name).symlink_to(victim)
    assert cli("put", "k", "v").exit_code == 0
    out = tmp_path / "o.bin"
    assert cli("get", "k", "--out", str(out)).exit_code == 0
    assert out.read_bytes() == b"v" and victim.read_text() == "keep me"
    assert (out.stat().st_mode & 0o777) == 0o600


def test_config_and_crontab_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        cfg = tmp_path / "c.toml"
        (tmp_path / "c.toml.tmp").symlink_to(tmp_path / "victim")
        assert cli("config", "init", str(cfg)).exit_code == 0
        assert (cfg.stat().st_mode & 0o777) == 0o640
        assert not (tmp_path / "victim").exists()
        target = tmp_path / "crontab"
        output.write_text(target, "* * * * * true\n")
        assert (target.stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)


def test_write_file_refuses_a_directory_and_keeps_target_on_failure(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    with pytest.raises(output.UsageError):
        output.write_file(tmp_path, lambda h: h.write(b"x"))
    target = tmp_path / "t"
    target.write_bytes(b"old")

    def boom(h: object) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        output.write_file(target, boom)
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["t"]


def _get_on_a_pty(*args: str) -> tuple[int, bytes]:
    """Run ``llamacache get ...`` with stdout on a real pseudo-terminal; (exit, tty output)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*llamacache_exe(), "get", *args], stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the follower side closed
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.stderr is not None
    err = proc.stderr.read()
    return proc.returncode, seen + b"|stderr|" + err


def test_get_refuses_binary_on_a_terminal_unless_forced(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"\x00\x01binary\xff" * 1000)
    assert cli("put", "bin", "--file", str(src)).exit_code == 0
    assert cli("put", "text", "hello").exit_code == 0
    code, seen = _get_on_a_pty("bin")
    out, err = seen.split(b"|stderr|")
    assert code == 2 and b"binary" not in out and err.count(b"\n") == 1
    assert b"--out" in err
    code, seen = _get_on_a_pty("bin", "--force")
    assert code == 0 and b"binary" in seen
    code, seen = _get_on_a_pty("text")
    assert code == 0 and seen.startswith(b"hello")
    assert run("get", "bin").stdout == src.read_bytes()  # a pipe is byte-exact
