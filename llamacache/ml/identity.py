"""Stable identities for datasets and preprocessing functions (the parts of a dataset key).

A dataset is known by its ``cache_key``/``fingerprint`` attribute, else by a content hash of
an array or sequence; a function by its qualified name, bytecode, constants, defaults and
closure, so editing ``preprocess_fn`` changes the key. Memory addresses never take part: a
key must be the same in the next process.

Sequences of arrays are fingerprinted at hash speed: one pass of xxh3-128 over the arrays'
own buffers (no copies, no pickling), with their dtype and shape hashed only when they change
from one record to the next. The result is remembered per object for the process, and reused
while the object's length and a sample of its records (identity and content) are unchanged;
an in-place edit of a record outside the sample goes unnoticed, so give a mutable dataset a
``cache_key`` (or pass ``key=``) when exactness matters.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import xxhash

from llamacache.errors import UsageError

_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def _hash_value(h: Any, value: Any) -> None:
    """Feed a record into a hash: arrays by dtype/shape/bytes, containers recursively."""
    import sys

    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        if value.dtype.hasobject:
            h.update(repr(value.tolist()).encode())
        else:
            h.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif (torch := sys.modules.get("torch")) is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"pt{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        h.update(b"b%d:" % len(value))
        h.update(value)
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=repr):
            _hash_value(h, k)
            _hash_value(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _hash_value(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(value).__qualname__}:{_ADDR.sub('', repr(value))};".encode())


def _code_identity(h: Any, code: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _code_identity(h, const)
        else:
            h.update(repr(const).encode())


def function_identity(fn: Callable[..., Any] | None) -> str:
    """A stable hash of what a preprocessing function does (name, code, consts, closure)."""
    h = hashlib.sha256()
    if fn is None:
        return "none"
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and callable(inner):
        h.update(function_identity(inner).encode())
        _hash_value(h, list(getattr(fn, "args", ())))
        _hash_value(h, dict(getattr(fn, "keywords", {}) or {}))
        return h.hexdigest()[:32]
    h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}".encode())
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its class and state
        code = getattr(type(fn).__call__, "__code__", None)
        _hash_value(h, getattr(fn, "__dict__", {}))
        h.update(type(fn).__qualname__.encode())
    if code is not None:
        _code_identity(h, code)
    _hash_value(h, list(getattr(fn, "__defaults__", None) or ()))
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            _hash_value(h, cell.cell_contents)
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    return h.hexdigest()[:32]


def _fingerprint(seq: Any) -> str:
    """One pass over a sequence: array records' buffers into one hash, the rest (and
    where each run of same-shaped arrays starts) into another, so every split is unambiguous.
    """
    np = sys.modules.get("numpy")
    data, shape = xxhash.xxh3_128(), xxhash.xxh3_128()
    if np is not None and isinstance(seq, np.ndarray) and not seq.dtype.hasobject:
        _hash_value(shape, seq)
        return shape.hexdigest()
    nd = np.ndarray if np is not None else None
    last: Any = None
    n = -1
    for n, rec in enumerate(seq):  # noqa: B007 (n + 1 is the count after the loop)
        if type(rec) is nd and not rec.dtype.hasobject:
            sig = (rec.dtype, rec.shape)
            if sig != last:
                shape.update(f"{n}:{rec.dtype.str}{rec.shape};".encode())
                last = sig
            try:
                data.update(rec)  # the array's own buffer: no copy
            except (BufferError, ValueError, TypeError):  # not C-contiguous
                data.update(rec.copy(order="C").reshape(-1).view("u1"))
        else:
            last = None
            shape.update(f"{n}:".encode())
            _hash_value(shape, rec)
    shape.update(f"len{n + 1}".encode())
    return xxhash.xxh3_128(shape.digest() + data.digest()).hexdigest()


_SAMPLE = 32  # records checked to reuse a remembered fingerprint
_MEMO_MAX = 64
_IMMUTABLE = (int, float, str, bytes, bool, tuple, frozenset, type(None))
_memo: dict[int, tuple[Any, int, bytes, str]] = {}  # id -> (anchor, len, sample, fingerprint)
_memo_lock = threading.Lock()


def _sample(seq: Any, n: int) -> tuple[bytes, list[Any]]:
    """Identity and content of up to _SAMPLE records spread over the sequence."""
    h = xxhash.xxh3_128()
    step = max(1, n // _SAMPLE)
    recs = []
    for i in sorted({*range(0, n, step), n - 1}) if n else ():
        rec = seq[i]
        h.update(b"%d:%d;" % (i, id(rec)))
        _hash_value(h, rec)
        recs.append(rec)
    return h.digest(), recs


def _anchor(seq: Any, recs: list[Any]) -> Any:
    """What proves a later object with the same id is this one: a weak reference, or (for
    lists) the sampled records themselves, held so their ids cannot be reused; None when
    neither works (small immutable records can be shared by unrelated lists)."""
    try:
        return weakref.ref(seq)
    except TypeError:
        pass
    if not recs or any(isinstance(r, _IMMUTABLE) for r in recs):
        return None
    return recs


def fingerprint(seq: Any) -> str:
    """The content hash of an array or sequence, reused while it is unchanged (cheap check:
    its length and a sample of its records, by identity and content)."""
    try:
        n = len(seq)
        sample, recs = _sample(seq, n)
    except (TypeError, IndexError, KeyError):  # not indexable: hash every time
        return _fingerprint(seq)
    with _memo_lock:
        hit = _memo.get(id(seq))
    if hit is not None and hit[1] == n and hit[2] == sample:
        anchor = hit[0]
        if not isinstance(anchor, weakref.ref) or anchor() is seq:
            return hit[3]
    fp = _fingerprint(seq)
    anchor = _anchor(seq, recs)
    if anchor is not None:
        with _memo_lock:
            if len(_memo) >= _MEMO_MAX:
                _memo.pop(next(iter(_memo)))
            _memo[id(seq)] = (anchor, n, sample, fp)
    return fp


def dataset_identity(dataset: Any) -> str:
    """A stable identity for a dataset, or UsageError when none can be derived."""
    for attr in ("cache_key", "fingerprint", "_fingerprint"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return f"{attr}:{value}"
    if isinstance(dataset, range):
        return f"range:{dataset!r}"
    if isinstance(dataset, (Sequence, bytes)) or hasattr(dataset, "__array_interface__"):
        return "content:" + fingerprint(dataset)[:32]
    text = _ADDR.sub("", repr(dataset))
    if iter(dataset) is dataset or text.startswith("<") and text.endswith(" object>"):
        raise UsageError(
            f"cannot derive a stable cache key for {type(dataset).__name__} (a one-shot "
            "iterator or an object without identity); give it a `cache_key` attribute or "
            "pass key=..."
        )
    return f"repr:{type(dataset).__qualname__}:{text}"
