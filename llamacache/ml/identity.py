"""Stable identities for datasets and preprocessing functions (the parts of a dataset key).

A dataset is known by its ``cache_key``/``fingerprint`` attribute, else by a content hash of
an array or sequence; a function by its qualified name, bytecode, constants, defaults and
closure, so editing ``preprocess_fn`` changes the key. Memory addresses never take part: a
key must be the same in the next process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from llamacache.errors import UsageError

_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def _hash_value(h: Any, value: Any) -> None:
    """Feed a record into a hash: arrays by dtype/shape/bytes, containers recursively."""
    import sys

    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes() if not value.dtype.hasobject else b"")
        if value.dtype.hasobject:
            h.update(repr(value.tolist()).encode())
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


def dataset_identity(dataset: Any) -> str:
    """A stable identity for a dataset, or UsageError when none can be derived."""
    for attr in ("cache_key", "fingerprint", "_fingerprint"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return f"{attr}:{value}"
    h = hashlib.sha256()
    if isinstance(dataset, (Sequence, bytes)) or hasattr(dataset, "__array_interface__"):
        _hash_value(h, dataset if not isinstance(dataset, range) else repr(dataset))
        return "content:" + h.hexdigest()[:32]
    text = _ADDR.sub("", repr(dataset))
    if iter(dataset) is dataset or text.startswith("<") and text.endswith(" object>"):
        raise UsageError(
            f"cannot derive a stable cache key for {type(dataset).__name__} (a one-shot "
            "iterator or an object without identity); give it a `cache_key` attribute or "
            "pass key=..."
        )
    return f"repr:{type(dataset).__qualname__}:{text}"
