"""Dataset fingerprints: one hash pass over array buffers, remembered per object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from llamacache.ml import identity
from llamacache.ml.identity import dataset_identity, fingerprint


class CountingList(list[Any]):
    """A list that counts full passes over it (iteration), which fingerprinting costs."""

    passes = 0

    def __iter__(self) -> Iterator[Any]:
        self.passes += 1
        return super().__iter__()


def _recs(n: int = 200, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 32000, 64, dtype=np.int32) for _ in range(n)]


def test_same_content_same_fingerprint_any_change_differs() -> None:
    a = _recs()
    assert fingerprint(a) == fingerprint([x.copy() for x in a])
    b = [x.copy() for x in a]
    b[117][3] += 1  # one element of one unsampled record
    assert fingerprint(b) != fingerprint(a)
    assert fingerprint(a[:-1]) != fingerprint(a)
    # the same bytes split differently are different datasets
    flat = np.concatenate(a[:2])
    assert fingerprint([flat, *a[2:]]) != fingerprint(a)
    assert fingerprint([a[0].astype(np.uint32), *a[1:]]) != fingerprint(a)
    mixed: list[Any] = [*a[:3], {"x": 1}, *a[3:]]
    assert fingerprint(mixed) != fingerprint(a)


def test_non_contiguous_records_hash_like_their_contiguous_copy() -> None:
    base = np.arange(200 * 128, dtype=np.int32).reshape(200, 128)
    strided = [row[::2] for row in base]
    assert fingerprint(strided) == fingerprint([np.ascontiguousarray(r) for r in strided])


def test_a_second_fingerprint_of_the_same_object_does_not_rehash() -> None:
    data = CountingList(_recs())
    first = fingerprint(data)
    assert data.passes == 1
    assert fingerprint(data) == first and data.passes == 1  # remembered
    data.append(_recs(1, seed=9)[0])  # length changed: hashed again
    second = fingerprint(data)
    assert second != first and data.passes == 2
    data[0] = _recs(1, seed=10)[0]  # a sampled record replaced: hashed again
    assert fingerprint(data) not in (first, second) and data.passes == 3
    data[0][5] += 1  # a sampled record edited in place: hashed again
    fingerprint(data)
    assert data.passes == 4


def test_memory_of_fingerprints_is_bounded() -> None:
    for _ in range(identity._MEMO_MAX + 10):
        fingerprint(_recs(3))
    assert len(identity._memo) <= identity._MEMO_MAX


def test_dataset_identity_of_arrays_and_ranges() -> None:
    arr = np.arange(1000, dtype=np.int64).reshape(100, 10)
    assert dataset_identity(arr) == dataset_identity(arr.copy())
    assert dataset_identity(arr) != dataset_identity(arr.astype(np.int32))
    assert dataset_identity(range(10)) != dataset_identity(range(11))
