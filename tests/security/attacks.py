"""Hostile payloads the attack tests plant: pickles that would leave a marker file if run."""

from __future__ import annotations

import pickle
from pathlib import Path

from llamacache.engine import checksums, framing
from llamacache.engine import netformat as nf


class Plant:
    """Unpickling this creates ``marker`` (the stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Plant(marker), protocol=5)


def framed_pickle(marker: Path, key: str) -> tuple[bytes, bytes]:
    """A framed entry of kind pickle for ``key`` whose digest, key hash and CRC are right
    (the attacker computes them all)."""
    payload = evil_pickle(marker)
    algo = checksums.BY_NAME["xxh3"]
    meta = framing.make_meta(
        framing.K_PICKLE, 0, algo.id, algo.digest(payload), len(payload), len(payload), key
    )
    return meta, payload


def record(rkey: str, meta: bytes, payload: bytes, signing_key: bytes | None = None) -> bytes:
    return b"".join(nf.pack_record(rkey.encode(), nf.T_INLINE, meta, payload, signing_key))
