"""(8) Hostile keys and planted symlinks: keys are data, never paths; links are not followed.

Keys like ``../../etc/passwd``, absolute paths, NUL, unicode dots and very long strings
must round-trip as keys and create nothing outside the cache directory. A symlink planted
inside a cache (a value file, or a value folder, pointing outside) must never lead a
remove, evict, clear or cleanup — nor ``verify``, ``repair``, ``clean`` or ``evict`` — to
touch what it points at.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._util import Figure, llamacache_cmd, make_value, open_cache

HOSTILE = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "a/../../b",
    "nul\x00byte",
    "\u2024\u2024/\u2024\u2024/x",  # one-dot leaders
    "\uff0e\uff0e\uff0fetc",  # fullwidth ../
    "C:\\Windows\\system32",
    "~/.ssh/id_rsa",
    "x" * 20_000,
    "tab\tnewline\n",
]
keys = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(
        alphabet=st.sampled_from(["/", ".", "\\", "\x00", "~", "a", "\u2024", "é"]), max_size=64
    ),
    st.text(max_size=300),
    st.binary(max_size=64),
)


def snapshot(where: Path, skip: Path) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(where):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        out.update(os.path.join(dirpath, n) for n in dirs + files)
    out.discard(str(skip))
    return out


def test_hostile_keys_never_become_paths(tmp_path: Path, figure: Figure) -> None:
    root = tmp_path / "root"
    cache = open_cache(root, file_threshold=4096)
    before = snapshot(tmp_path, root)
    tried = 0
    escapes = 0

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(key=keys, big=st.booleans())
    def roundtrip(key: str | bytes, big: bool) -> None:
        nonlocal tried
        tried += 1
        value = make_value("v", tried, 20_000 if big else 50)
        cache.put(key, value)
        assert cache.get(key) == value
        assert key in cache
        assert cache.remove(key)
        assert cache.get(key) is None

    roundtrip()
    cache.close()
    escapes = len(snapshot(tmp_path, root) - before)
    # inside the cache: only our own names, never a key's text
    allowed = {
        "cache.db",
        "cache.db-wal",
        "cache.db-shm",
        "tmp",
        "reserve",
        "admin.lock",
        "changes",
        "unshared",
    }
    odd = [
        p
        for p in (root / "c").rglob("*")
        if p.name not in allowed and not p.name.endswith(".val") and len(p.name) != 2
    ]
    figure("hostile_keys_tried", tried)
    figure("escapes_outside_cache", escapes)
    figure("escapes_key_named_files", len(odd))
    assert escapes == 0 and not odd, odd


def test_hostile_keys_through_the_cli(tmp_path: Path, figure: Figure) -> None:
    root = tmp_path / "root"
    before = snapshot(tmp_path, root)
    # the shapes a shell can pass (no NUL); the rest is covered in-process above
    shell_keys = ["../../../etc/passwd", "/etc/passwd", "..", "\uff0e\uff0e\uff0fetc", "~/.ssh/x"]
    for key in shell_keys:
        done = subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(root), "put", key, "payload"],
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        got = subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(root), "get", key],
            capture_output=True,
            check=False,
        )
        assert got.returncode == 0 and got.stdout == b"payload\n", got.stderr
    new = snapshot(tmp_path, root) - before
    figure("escapes_cli_keys", len(new))
    assert not new, new


def plant(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A cache whose value files and folders have been replaced by links to ``outside``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    cache = open_cache(root, "default", file_threshold=4096)
    values = {f"k{i}": make_value(f"k{i}", i, 10_000) for i in range(6)}
    for k, v in values.items():
        cache.put(k, v)
    paths = {k: cache.disk.path_of(k) for k in values}
    cache.close()
    for i, (k, path) in enumerate(sorted(paths.items())):
        assert path is not None
        if i % 2 == 0:  # the value file itself becomes a link to a precious file
            target = outside / f"precious-{k}"
            target.write_bytes(values[k])
            path.unlink()
            path.symlink_to(target)
        else:  # its folder becomes a link to a folder outside holding a same-named file
            folder = outside / f"dir-{k}"
            folder.mkdir()
            for sibling in path.parent.iterdir():
                os.replace(sibling, folder / sibling.name)
            path.parent.rmdir()
            path.parent.symlink_to(folder, target_is_directory=True)
    return root, outside, values


def test_planted_symlinks_are_never_followed_by_deletes(tmp_path: Path, figure: Figure) -> None:
    root, outside, values = plant(tmp_path)
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    admin = []
    for args in (["verify"], ["repair"], ["clean"], ["evict", "--match", "*", "-y"], ["verify"]):
        done = subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        admin.append(done.returncode)
    cache = open_cache(root, "default", file_threshold=4096)
    cache.remove("k0")
    cache.remove("k1")
    cache.disk.evict_to(0)
    cache.cleanup()
    cache.clear()
    cache.close()
    after = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    touched = sum(1 for p, data in before.items() if after.get(p) != data)
    figure("planted_links", len(values))
    figure("admin_exit_codes", "/".join(map(str, admin)))
    figure("escapes_followed_links", touched)
    assert touched == 0
    assert admin[0] == 1, "verify must report value files that are links"
    assert admin[1:] == [0, 0, 0, 0], admin
