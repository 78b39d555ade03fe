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


def check_private_dir(path: Path) -> None:
    """Raise UnsafeCacheDirError if ``path`` is writable by group/others or owned by someone else.

    Ownership by root is accepted (a system-wide cache prepared by an administrator).
    Costs one ``stat``.
    """
    st = path.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheDirError(
            f"cache directory {path} is writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); values in it could run code; fix: chmod go-w {path}"
        )
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise UnsafeCacheDirError(
            f"cache directory {path} is owned by uid {st.st_uid}, not you (uid {uid}); "
            f"fix: chown {uid} {path} or choose another cache directory"
        )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0o700, then check it is private."""
    path = Path(path).absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path)
    return path


def ensure_cache_root(root: Path) -> Path:
    """Create/check the cache root and drop a ``CACHEDIR.TAG`` so backup tools skip it.

    Raises UnsafeCacheDirError naming the path and the fix (``chmod go-w PATH``).
    """
    try:
        root = ensure_private_dir(root)
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
