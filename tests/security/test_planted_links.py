"""Links planted in a cache folder are strays that verify, repair and clean agree on.

The cache makes symbolic links only in its ``snapshots/`` views; a link anywhere else in
a cache folder (a value-tree name, ``tmp``, any other name) was put there by someone
else. ``verify`` reports each one, ``repair --dry-run`` and ``clean --dry-run`` plan to
remove exactly those, the real runs remove only the links, and nothing is followed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from llamacache import CacheManager, ModelCache
from llamacache.config import resolve
from tests.cli.helpers import cli


def _json(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("--cache-dir", str(root), "--json", *args)
    assert "Traceback" not in result.stderr and "error: unexpected" not in result.stderr
    return result.exit_code, json.loads(result.stdout)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "ab" / "cd").mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    (victim / "ab" / "cd" / ("0" * 28 + ".val")).write_text("looks like ours")
    return victim


def _listing(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def _check(root: Path, cache: str, planted: set[str], victim: Path) -> None:
    before = _listing(victim)
    code, verify = _json(root, "verify", "-c", cache)
    (c,) = verify["caches"]
    found = {p["path"] for p in c["problems"]}
    assert code == 1 and found == planted, (code, c["problems"])
    assert all("symbolic link" in p["detail"] for p in c["problems"]), c["problems"]
    _, plan = _json(root, "repair", "-c", cache, "--dry-run")
    actions = plan["caches"][0]["actions"]
    assert {a["path"] for a in actions if a["action"] == "remove_file"} == planted, actions
    _, dry = _json(root, "clean", "-c", cache, "--dry-run")
    assert dry["caches"][0]["orphans"] == len(planted), dry
    _, done = _json(root, "clean", "-c", cache)
    assert done["caches"][0]["orphans"] == len(planted), done
    assert not any((root / cache / p).is_symlink() for p in planted)
    assert _listing(victim) == before  # nothing followed
    code, again = _json(root, "verify", "-c", cache)
    assert code == 0 and again["caches"][0]["problems"] == []


def test_links_planted_in_a_cache_folder_are_reported_and_removed_alike(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    root = tmp_path / "c"
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    folder = root / "default"
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    (folder / "ab" / "cd").mkdir(parents=True, mode=0o700)
    links = {
        "aa": victim,
        "stray.val": victim / "keep.txt",
        "tmp": victim,
        "tmp2": victim,
        "ab/cd/" + "1" * 28 + ".val": victim / "keep.txt",
        "ab/cd/other": victim / "keep.txt",
        "ab/cd/sub": victim / "ab",
    }
    for rel, target in links.items():
        (folder / rel).symlink_to(target)
    _check(root, "default", set(links), victim)
    assert cli("--cache-dir", str(root), "get", "k").stdout == "v\n"  # a str ends with a newline


def test_a_linked_snapshots_folder_is_the_same_kind_of_stray(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    root = tmp_path / "c"
    with CacheManager(resolve(read_files=False, overrides={"cache.disk.path": str(root)})) as m:
        ModelCache(m).put_model("tiny", {"w": np.zeros(4, np.float32)})
    snapshots = root / "model" / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    snapshots.symlink_to(victim)
    _check(root, "model", {"snapshots"}, victim)


def test_a_put_never_writes_through_a_planted_folder_link(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    before = _listing(victim)
    root = tmp_path / "c"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 400)  # a value file
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    folder = root / "default"
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    (folder / "tmp").symlink_to(victim)
    out = cli("--cache-dir", str(root), "put", "big", "--file", str(big))
    assert out.exit_code == 2 and str(folder / "tmp") in out.stderr, out.stderr
    (folder / "tmp").unlink()
    for i in range(256):  # wherever the value file would go (xx/ is random)
        (folder / f"{i:02x}").symlink_to(victim)
    out = cli("--cache-dir", str(root), "put", "big", "--file", str(big))
    assert out.exit_code == 2 and "symbolic link" in out.stderr, out.stderr
    assert _listing(victim) == before
    assert cli("--cache-dir", str(root), "get", "big").exit_code == 1  # a miss, not a value
