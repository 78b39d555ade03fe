"""The cache owns only its own files: planted links, foreign folders and shared temp dirs.

Where permissions matter the attacker is a real second user (uid 65534, "nobody"): these
tests need root to act as them, and skip otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import cli, run

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as uid 65534 needs root")


def as_nobody(*argv: str) -> None:
    """Run a command as uid 65534 (the hostile user)."""
    subprocess.run(list(argv), user=NOBODY, group=NOBODY, check=True, cwd="/")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder under /tmp that uid 65534 can reach (pytest's own tmp tree is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lc-sec-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "root-owned"
    victim.mkdir(mode=0o700)
    (victim / "important.txt").write_text("keep me")
    (victim / "cache.db").write_text("not a cache")
    return victim


@needs_root
def test_symlinked_root_planted_by_another_user_is_refused(open_tmp: Path) -> None:
    victim = _victim(open_tmp)
    shared = open_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # world-writable, no sticky bit
    root = shared / "llamacache"
    as_nobody("ln", "-s", str(victim), str(root))
    assert root.is_symlink() and root.lstat().st_uid == NOBODY
    for args in (("put", "k", "v"), ("verify",), ("clean",), ("inspect",)):
        out = run("--cache-dir", str(root), *args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0]
        assert "any user can write" in lines[0] or "symbolic link" in lines[0]
    assert sorted(p.name for p in victim.iterdir()) == ["cache.db", "important.txt"]
    assert (victim / "important.txt").read_text() == "keep me"


def test_symlinked_root_in_a_safe_parent_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    root = tmp_path / "llamacache"
    root.symlink_to(victim)
    out = run("--cache-dir", str(root), "clean")
    assert out.returncode == 2
    assert "symbolic link" in out.stderr.decode()
    assert sorted(p.name for p in victim.iterdir()) == ["cache.db", "important.txt"]


def test_symlinked_cache_directory_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    root = tmp_path / "root"
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    (root / "model").symlink_to(victim)
    for args in (("put", "-c", "model", "k", "v"), ("verify", "--cache", "model")):
        out = run("--cache-dir", str(root), *args)
        assert out.returncode == 2, args
        assert "symbolic link" in out.stderr.decode()
    assert sorted(p.name for p in victim.iterdir()) == ["cache.db", "important.txt"]


@needs_root
def test_cache_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    theirs = root / "default"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    out = run("--cache-dir", str(root), "put", "k", "v")
    assert out.returncode == 2
    assert f"owned by uid {NOBODY}" in out.stderr.decode()


def test_temp_dir_sweep_removes_only_our_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir(mode=0o700)
    (project / "llamacache.toml").write_text('[caches.system]\ntemp_dir = "."\nmax_age = "1h"\n')
    old = time.time() - 7 * 86400
    mine = [project / "thesis.tex", project / "data.csv", project / "main.py"]
    for p in mine:
        p.write_text("my work")
        os.utime(p, (old, old))
    ours = project / "llamacache-abc123"
    ours.write_bytes(b"scratch")
    os.utime(ours, (old, old))
    os.chdir(project)
    out = run("--cache-dir", str(tmp_path / "root"), "clean")
    assert out.returncode == 0, out.stderr
    assert all(p.read_text() == "my work" for p in mine)
    assert not ours.exists()


@needs_root
def test_temp_dir_in_a_world_writable_folder_is_refused(open_tmp: Path, tmp_path: Path) -> None:
    shared = open_tmp / "x"
    shared.mkdir()
    os.chmod(shared, 0o777)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[caches.system]\ntemp_dir = "{shared}"\nmax_age = "1h"\n')
    old = time.time() - 7 * 86400
    theirs = shared / "llamacache-planted"
    as_nobody("touch", str(theirs))
    os.utime(theirs, (old, old))
    out = run("--config", str(cfg), "--cache-dir", str(tmp_path / "root"), "clean")
    assert out.returncode == 2
    assert "temp_dir" in out.stderr.decode()
    assert theirs.exists()


def test_repair_and_clean_delete_only_names_llamacache_creates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    d = root / "default"
    old = time.time() - 30 * 86400
    foreign = [d / "notes.txt", d / "data" / "train.csv", d / "ab" / "keep.me"]
    for p in foreign:
        p.parent.mkdir(exist_ok=True)
        p.write_text("theirs")
        os.utime(p, (old, old))
    ours = d / "ab" / "cd" / ("f" * 28 + ".val")
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"orphan")
    os.utime(ours, (old, old))
    assert cli("--cache-dir", str(root), "clean").exit_code == 0
    assert cli("--cache-dir", str(root), "repair").exit_code == 0
    assert all(p.read_text() == "theirs" for p in foreign)
    assert not ours.exists()


# -- folders and links above the cache root (ssh StrictModes, fs.protected_symlinks) --------


def _victim_cache(base: Path) -> tuple[Path, Path]:
    """A real cache of root's with an old file that a clean through a link would sweep."""
    cache = base / "victimB" / "cache"
    assert cli("--cache-dir", str(cache), "put", "k", "v").exit_code == 0
    precious = cache / "default" / "0b" / "74" / "33afa4b01509c824a5e24975e7eb.val"
    precious.parent.mkdir(parents=True, mode=0o700)
    precious.write_text("precious")
    old = time.time() - 2 * 86400
    os.utime(precious, (old, old))
    return cache, precious


ADMIN_ARGS = (
    ("clean",),
    ("put", "k2", "v"),
    ("get", "k"),
    ("verify",),
    ("ls",),
    ("inspect",),
    ("stats",),
    ("repair",),
    ("evict", "--to-size", "0", "--dry-run"),
)


def _refused(root: Path, names: str) -> None:
    """Every admin command refuses ``root`` with one line naming ``names`` and uid 65534."""
    for args in ADMIN_ARGS:
        out = run("--cache-dir", str(root), *args)
        lines = out.stderr.decode().strip().splitlines()
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        assert names in lines[0] and f"uid {NOBODY}" in lines[0], lines[0]


@needs_root
def test_link_planted_above_the_root_in_a_sticky_folder_is_refused(open_tmp: Path) -> None:
    cache, precious = _victim_cache(open_tmp)
    before = sorted(p.name for p in cache.iterdir())
    pub = open_tmp / "pub"
    pub.mkdir()
    os.chmod(pub, 0o1777)  # like /tmp: sticky, so only the link's owner matters
    team = pub / "team"
    as_nobody("ln", "-s", str(cache.parent), str(team))
    _refused(team / "cache", str(team))
    assert precious.read_text() == "precious"
    assert sorted(p.name for p in cache.iterdir()) == before


@needs_root
def test_folder_above_the_root_owned_by_another_user_is_refused(open_tmp: Path) -> None:
    cache, precious = _victim_cache(open_tmp)
    pub = open_tmp / "pub"
    pub.mkdir()
    os.chmod(pub, 0o1777)
    theirs = pub / "a"
    as_nobody("mkdir", "-m", "755", str(theirs))
    _refused(theirs / "b" / "cache", str(theirs))
    assert not (theirs / "b").exists()  # nothing created in their folder
    # ... and when they later swap a/b for a link to root's cache, still refused
    as_nobody("ln", "-s", str(cache.parent), str(theirs / "b"))
    _refused(theirs / "b" / "cache", str(theirs))
    assert precious.read_text() == "precious"


@needs_root
def test_links_owned_by_root_or_the_user_are_followed(open_tmp: Path) -> None:
    pub = open_tmp / "pub"
    pub.mkdir()
    os.chmod(pub, 0o1777)
    real = open_tmp / "real"
    real.mkdir(mode=0o700)
    (pub / "mine").symlink_to(real)  # root's own link in a sticky world-writable folder
    root = pub / "mine" / "cache"
    for args in (("put", "k", "v"), ("get", "k"), ("clean",), ("verify",)):
        out = run("--cache-dir", str(root), *args)
        assert out.returncode == 0, (args, out.stderr)
    assert (real / "cache" / "default" / "cache.db").exists()


def test_a_link_of_your_own_above_the_root_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "disk2"
    real.mkdir(mode=0o700)
    (tmp_path / "home").mkdir(mode=0o700)
    (tmp_path / "home" / "caches").symlink_to(real)
    root = tmp_path / "home" / "caches" / "llamacache"
    for args in (("put", "k", "v"), ("get", "k"), ("clean",), ("verify",)):
        out = run("--cache-dir", str(root), *args)
        assert out.returncode == 0, (args, out.stderr)
    assert (real / "llamacache" / "default" / "cache.db").exists()
