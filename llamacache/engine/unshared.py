"""Writes that did not reach the shared tier, remembered on disk until they are shared.

A put whose network write failed (server down, breaker open, an error reply) leaves a
small file ``<cache>/unshared/<key hash>`` holding the key's text form. Any process of
the cache retries them in the background once the server answers, sharing a value only
where the shared tier lacks the key (a newer value written elsewhere meanwhile wins),
and ``inspect`` counts them. Files are created O_EXCL|O_NOFOLLOW, mode 0600; a file
whose key cannot be decoded (a hashed key) is dropped: ``push --all`` shares those.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Hashable, Iterator
from pathlib import Path

from llamacache.engine import netformat as nf
from llamacache.engine.generation import key_hash

DIR_NAME = "unshared"


def _folder(directory: Path) -> Path:
    return Path(directory) / DIR_NAME


def remember(directory: Path, key: Hashable) -> None:
    """Note that ``key``'s latest write is not on the shared tier (idempotent)."""
    folder = _folder(directory)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    path = folder / f"{key_hash(key):016x}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, nf.encode_key(key).encode("utf-8", "surrogatepass"))
    finally:
        os.close(fd)


def forget(directory: Path, key: Hashable) -> None:
    """``key`` is shared now (or gone): stop retrying it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_folder(directory) / f"{key_hash(key):016x}")


def pending(directory: Path) -> Iterator[Hashable]:
    """The keys still to share; undecodable files are dropped."""
    folder = _folder(directory)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            text = os.read(fd, 1 << 16).decode("utf-8", "surrogatepass")
        except (OSError, UnicodeDecodeError):
            text = ""
        finally:
            os.close(fd)
        key = nf.decode_key(text) if text else None
        if key is None:
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        yield key


def count(directory: Path) -> int:
    """How many writes are waiting to be shared (0 when none or unreadable)."""
    try:
        return len(os.listdir(_folder(directory)))
    except OSError:
        return 0
