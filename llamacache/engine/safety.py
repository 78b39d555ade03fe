"""Directory checks that keep another user from planting pickles (code) in a cache.

A cache directory that others can write is refused, not repaired: silently chmod-ing a
directory someone shared on purpose would be worse than a clear one-line error.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from llamacache.errors import CacheIOError, UnsafeCacheDirError

CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
_TAG_TEXT = (
    f"{CACHEDIR_SIGNATURE}\n"
    "# This file is a cache directory tag created by llamacache.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
# SQLite's locking is unreliable on these; writing a cache there can corrupt its index.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smbfs",
        "smb3",
        "lustre",
        "gpfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "beegfs",
    }
)


# What the cache creates inside a cache folder besides its known top-level files: value
# files ``xx/yy/<hex>.val`` and temporaries ``tmp/<hex>.tmp``. Orphan sweeps act on these
# names only: a file someone else left in the folder is never ours to delete.
_OWN_VALUE = re.compile(r"[0-9a-f]{2}(/[0-9a-f]{2})?/[0-9A-Za-z_-]{1,64}\.val")
_OWN_TMP = re.compile(r"tmp/[0-9A-Za-z_.-]{1,80}\.tmp")


def is_own_name(rel: str) -> bool:
    """True when ``rel`` (relative to a cache folder, "/"-separated) is a name we create."""
    return bool(_OWN_VALUE.fullmatch(rel) or _OWN_TMP.fullmatch(rel))


def is_value_name(name: object) -> bool:
    """True when an index row's file name is one the cache writes (``xx/yy/<hex>.val``).

    Any other value (a number from a flipped type byte, ``../`` from a planted row)
    is damage: never a path to open or delete.
    """
    return isinstance(name, str) and bool(_OWN_VALUE.fullmatch(name))


def check_parents(path: Path, what: str = "cache directory") -> None:
    """Refuse ``path`` when a folder above it can be written by anyone without the sticky bit.

    There another user can rename our folder away and plant a link or their own folder in
    its place (the next run would adopt it). ``/tmp`` (mode 1777) is fine. Costs one
    ``stat`` per ancestor.
    """
    for parent in Path(path).parents:
        try:
            st = os.stat(parent)
        except OSError:
            continue  # not there yet: mkdir creates it private
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise UnsafeCacheDirError(
                f"{what} {path} sits in {parent}, which any user can write (mode "
                f"{stat.S_IMODE(st.st_mode):o}, no sticky bit): they could swap the folder "
                f"for a link; fix: chmod o-w {parent} (or chmod +t), or choose another folder"
            )


def check_private_dir(path: Path, what: str = "cache directory") -> None:
    """Raise UnsafeCacheDirError unless ``path`` is a real folder of ours that only we can write.

    Refused, for root too: a symbolic link (someone else chose where it points), a folder
    owned by another user (root-owned is accepted: a system-wide cache prepared by an
    administrator), one writable by group/others, or one under a world-writable folder
    without the sticky bit. Costs one ``lstat`` plus one ``stat`` per ancestor.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeCacheDirError(
            f"{what} {path} is a symbolic link (to {os.readlink(path)}); llamacache only "
            "uses folders it owns; fix: point the setting at the real folder"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheDirError(f"{what} {path} is not a folder")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheDirError(
            f"{what} {path} is writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); values in it could run code; fix: chmod go-w {path}"
        )
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise UnsafeCacheDirError(
            f"{what} {path} is owned by uid {st.st_uid}, not you (uid {uid}); "
            f"fix: chown {uid} {path} or choose another folder"
        )
    check_parents(path, what)


def ensure_private_dir(path: Path, what: str = "cache directory") -> Path:
    """Create ``path`` (and missing parents) with mode 0o700, then check it is private.

    The folders above are checked first, so nothing is created in a folder others control.
    """
    path = Path(path).absolute()
    check_parents(path, what)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path, what)
    return path


def ensure_cache_root(root: Path) -> Path:
    """Create/check the cache root and drop a ``CACHEDIR.TAG`` so backup tools skip it.

    Raises UnsafeCacheDirError naming the path and the fix (``chmod go-w PATH``).
    """
    try:
        root = ensure_private_dir(root, "cache root")
    except OSError as exc:  # e.g. --cache-dir /proc/nope: name the root, not a cache
        raise CacheIOError(f"cache root {root}: {exc.strerror or exc}") from None
    tag = root / CACHEDIR_TAG
    if not tag.exists() and os.access(root, os.W_OK):
        try:
            tmp = root / f".{CACHEDIR_TAG}.{os.getpid()}.tmp"
            tmp.write_text(_TAG_TEXT)
            os.replace(tmp, tag)  # atomic: two processes starting at once both succeed
        except OSError:
            pass  # a missing tag only costs backup tools some time
    return root


def leads_outside(directory: Path | str, path: Path | str) -> bool:
    """True when ``path`` is a symlink or resolves outside ``directory`` (a planted link).

    Value files are never links; reading or moving through one would act on a file
    someone else chose. Costs two ``realpath`` calls.
    """
    if os.path.islink(path):
        return True
    base = os.path.realpath(directory)
    return os.path.commonpath((base, os.path.realpath(path))) != base


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount: /proc/self/mounts where there is one
    (what psutil reads on Linux, without its ~20 ms import), else psutil."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            rows = [line.split() for line in f]
    except OSError:
        import psutil

        return [(p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True)]
    octal = re.compile(r"\\([0-7]{3})")  # a space in a mount point is written \040
    return [(octal.sub(lambda m: chr(int(m[1], 8)), r[1]), r[2]) for r in rows if len(r) >= 3]


def filesystem_type(path: Path) -> str | None:
    """The filesystem type of the mount holding ``path`` (e.g. "ext4", "nfs4"), or None."""
    target = os.path.realpath(path)
    best, fstype = "", None
    for mount, kind in _mounts():
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, kind
    return fstype


def is_network_fs(path: Path) -> bool:
    """True when ``path`` lives on NFS/CIFS/Lustre/GPFS or a similar shared filesystem."""
    fstype = (filesystem_type(path) or "").lower()
    return fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs")
