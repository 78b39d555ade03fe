"""A permission problem is reported as one, naming the path: never as corruption.

Root ignores file modes, so the user here is uid 65534 (``nobody``) running the real CLI.
An index it may not read is not a damaged index: ``repair`` must not plan to rebuild it
(a rebuild would quarantine a healthy index), and an unreadable config file is a
configuration error (exit 2), as a missing one is.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.test_permissions import NOBODY, as_nobody, nobody_base  # noqa: F401


def _home(base: Path) -> None:
    (base / "home").mkdir()
    os.chown(base / "home", NOBODY, NOBODY)


def test_an_unreadable_index_is_a_permission_problem(
    nobody_base: tuple[Path, list[str]],  # noqa: F811
) -> None:
    base, cmd = nobody_base
    _home(base)
    root = base / "root"
    assert as_nobody(cmd, base, root, "put", "k", "v").returncode == 0
    assert as_nobody(cmd, base, root, "put", "big", "x" * 100_000).returncode == 0
    db = root / "default" / "cache.db"
    before = db.read_bytes()
    os.chmod(db, 0o000)
    try:
        for args in (
            ("ls",),
            ("inspect",),
            ("verify",),
            ("get", "k"),
            ("evict", "--to-size", "0", "--dry-run"),
            ("clean", "--dry-run"),
            ("repair", "--dry-run"),
            ("repair",),
        ):
            done = as_nobody(cmd, base, root, *args)
            err = done.stderr
            assert done.returncode == 1, (args, done.returncode, err)
            assert err.count("\n") == 1 and "Traceback" not in err, (args, err)
            assert "permission denied" in err.lower() and str(db) in err, (args, err)
            assert "corrupt" not in err and "damaged" not in err, (args, err)
            assert "rebuild" not in done.stdout, (args, done.stdout)
    finally:
        os.chmod(db, 0o644)
    assert db.read_bytes() == before
    assert not (root / "default" / "quarantine").exists()
    assert as_nobody(cmd, base, root, "get", "k").stdout == "v\n"  # a str ends with a newline


def test_an_unreadable_config_file_is_a_config_error(
    nobody_base: tuple[Path, list[str]],  # noqa: F811
) -> None:
    base, cmd = nobody_base
    _home(base)
    private = base / "private"
    private.mkdir(mode=0o700)  # root's folder: nobody cannot look inside
    (private / "cfg.toml").write_text("[cache]\n")
    unreadable = base / "cfg.toml"
    unreadable.write_text("[cache]\n")
    os.chmod(unreadable, 0o600)  # root's file: nobody cannot read it
    for path in (private / "cfg.toml", unreadable):
        done = as_nobody(cmd, base, base / "root", "--config", str(path), "ls")
        err = done.stderr
        assert done.returncode == 2, (path, done.returncode, err)
        assert str(path) in err and "Traceback" not in err, err
        assert err.count("\n") <= 2, err
