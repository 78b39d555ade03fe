"""Directory checks that keep another user from planting pickles (code) in a cache.

A cache directory that others can write is refused, not repaired: silently chmod-ing a
directory someone shared on purpose would be worse than a clear one-line error.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path, PurePath

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


_MAX_LINKS = 40  # as the kernel's limit on links followed while resolving one path


def _check_folder(st: os.stat_result, folder: str, path: Path, what: str) -> None:
    """A folder on the way to ``path``: yours or root's, not writable by others unless sticky."""
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise UnsafeCacheDirError(
            f"{what} {path} lies under {folder}, which is owned by uid {st.st_uid}, "
            f"not you (uid {uid}) or root: they could swap what is below it for a "
            "link to your files; fix: choose a folder that only you or root control"
        )
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise UnsafeCacheDirError(
            f"{what} {path} sits in {folder}, which any user can write (mode "
            f"{stat.S_IMODE(st.st_mode):o}, no sticky bit): they could swap the folder "
            f"for a link; fix: chmod o-w {folder} (or chmod +t), or choose another folder"
        )


def _check_link(st: os.stat_result, link: str, path: Path, what: str) -> None:
    """A link on the way to ``path`` is followed only when you or root made it."""
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise UnsafeCacheDirError(
            f"{what} {path}: {link} is a symbolic link owned by uid {st.st_uid}, not you "
            f"(uid {uid}) or root, so they chose where it leads (to {os.readlink(link)}); "
            "fix: use the real folder's path"
        )


def check_parents(path: Path, what: str = "cache directory") -> None:
    """Refuse ``path`` when a folder or link above it is in another user's hands.

    The rule of ssh's StrictModes and the kernel's ``fs.protected_symlinks``: every folder
    on the way (links resolved as the kernel would) must be owned by root or by you and
    not writable by others unless sticky (``/tmp``: mode 1777); a link on the way is
    followed only when root or you own it. Otherwise another user could point the path,
    or swap a folder below theirs, at files of yours, and a sweep would delete them.
    Applies to root too. The first missing folder ends the check (``mkdir`` creates the
    rest private). Costs one ``lstat`` per path component (plus a ``readlink`` per link).
    """
    todo = list(reversed(Path(path).absolute().parts[1:-1]))  # folders above; next last
    current = "/"
    links = 0
    while True:
        try:
            st = os.lstat(current)
        except OSError:
            return  # not there yet (or unreadable): later steps fail with a clear error
        if not stat.S_ISDIR(st.st_mode):
            return  # a file where a folder should be: mkdir/open report it
        _check_folder(st, current, path, what)
        step = ""
        while todo and not step:  # the next real component ("." and ".." resolved here)
            name = todo.pop()
            if name == "..":
                current = os.path.dirname(current)
            elif name not in ("", "."):
                step = os.path.join(current, name)
        if not step:
            return
        try:
            lst = os.lstat(step)
        except OSError:
            return
        if not stat.S_ISLNK(lst.st_mode):
            current = step
            continue
        _check_link(lst, step, path, what)
        links += 1
        if links > _MAX_LINKS:
            raise UnsafeCacheDirError(f"{what} {path}: too many symbolic links on the way")
        target = os.readlink(step)
        parts = Path(target).parts
        if os.path.isabs(target):
            current, parts = "/", parts[1:]
        todo.extend(reversed(parts))


def check_private_dir(path: Path, what: str = "cache directory") -> None:
    """Raise UnsafeCacheDirError unless ``path`` is a real folder of ours that only we can write.

    Refused, for root too: a symbolic link (someone else chose where it points), a folder
    owned by another user (root-owned is accepted: a system-wide cache prepared by an
    administrator), one writable by group/others, or one below a folder or link another
    user controls (:func:`check_parents`). Costs one ``lstat`` per path component.
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


def make_dirs_inside(
    base: Path, rel: str | PurePath, what: str = "folder", mode: int = 0o700
) -> Path:
    """Create ``base/rel`` one folder at a time (``mode``, less the umask), never through a link.

    ``base`` is a folder already checked as ours (a cache folder). Each component of
    ``rel`` that exists must be a real folder: a symbolic link there (someone chose
    where it leads) raises UnsafeCacheDirError naming it, before anything is written
    where it points. Costs one ``lstat`` per component (plus a ``mkdir`` for a new one):
    it runs on every file-backed put.
    """
    current = os.fspath(base)
    for part in os.fspath(rel).split(os.sep):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeCacheDirError(f"{what} {current}/..: not a plain folder name")
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current, mode)
            st = os.lstat(current)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeCacheDirError(
                f"{what} {current} is a symbolic link (to {os.readlink(current)}); llamacache "
                "writes only in folders it made; fix: remove the link"
            )
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeCacheDirError(f"{what} {current} is not a folder; fix: remove it")
    return Path(current)


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
