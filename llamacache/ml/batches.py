"""Batches: collate records into arrays where they are arrays, and pack them without pickle.

A batch of equal-shaped arrays is one array (numpy records stacked with numpy, torch tensors
with ``torch.stack`` when torch is installed); dicts and tuples of records are collated field
by field; anything else stays a list. ``pack`` turns a collated batch into bytes: a JSON tree
plus raw array buffers (dtype + shape in the tree), so numpy data never goes through pickle.
Only leaves that are neither arrays, bytes nor JSON scalars (rare: sets, custom objects) are
pickled, as the engine does for such values.
"""

from __future__ import annotations

import json
import pickle
import struct
import sys
from typing import Any

MAGIC = b"LCB1"
_SCALARS = (str, int, float, bool, type(None))


def _is_array(x: Any) -> bool:
    import numpy as np

    return type(x) is np.ndarray and not x.dtype.hasobject and x.dtype.fields is None


def _same_arrays(items: list[Any]) -> bool:
    if not items or not all(_is_array(x) for x in items):
        return False
    first = items[0]
    return all(x.shape == first.shape and x.dtype == first.dtype for x in items)


def _same_tensors(items: list[Any]) -> bool:
    """Equal-shaped CPU/GPU tensors of one dtype and device (only when torch is imported)."""
    torch = sys.modules.get("torch")
    if torch is None or not items or not all(isinstance(x, torch.Tensor) for x in items):
        return False
    first = items[0]
    return all(
        x.shape == first.shape and x.dtype == first.dtype and x.device == first.device
        for x in items
    )


def _collate_field(items: list[Any]) -> Any:
    if _same_arrays(items):
        import numpy as np

        return np.stack(items)
    if _same_tensors(items):
        return sys.modules["torch"].stack(items)
    return list(items)


def collate(records: list[Any]) -> Any:
    """Records -> one batch: stacked array or tensor, dict/tuple of fields, or a plain list."""
    if _same_arrays(records) or _same_tensors(records):
        return _collate_field(records)
    first = records[0]
    if (
        type(first) is dict
        and all(type(r) is dict and list(r) == list(first) for r in records)
        and all(isinstance(k, str) for k in first)
    ):
        return {k: _collate_field([r[k] for r in records]) for k in first}
    if type(first) is tuple and all(type(r) is tuple and len(r) == len(first) for r in records):
        return tuple(_collate_field([r[i] for r in records]) for i in range(len(first)))
    return list(records)


def uncollate(batch: Any) -> list[Any]:
    """The records of a batch (array rows are read-only views)."""
    if isinstance(batch, dict):
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        return [{k: batch[k][i] for k in keys} for i in range(n)]
    if isinstance(batch, tuple):
        n = len(batch[0]) if batch else 0
        return [tuple(f[i] for f in batch) for i in range(n)]
    return list(batch)


def batch_len(batch: Any) -> int:
    """Records in a collated batch."""
    if isinstance(batch, dict):
        return len(next(iter(batch.values()))) if batch else 0
    if isinstance(batch, tuple):
        return len(batch[0]) if batch else 0
    return len(batch)


def _leaf(value: Any, bufs: list[Any], specs: list[list[Any]]) -> dict[str, Any]:
    if _is_array(value):
        import numpy as np

        arr = np.ascontiguousarray(value)
        specs.append([arr.dtype.str, list(arr.shape), arr.nbytes])
        bufs.append(memoryview(arr.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
        return {"t": "nd", "i": len(bufs) - 1}
    if isinstance(value, list):
        if all(type(v) in _SCALARS for v in value):
            return {"t": "json", "v": value}
        if all(type(v) is bytes for v in value):
            specs.append(["bytes", [len(v) for v in value], sum(len(v) for v in value)])
            bufs.append(b"".join(value))
            return {"t": "bytes", "i": len(bufs) - 1}
    data = pickle.dumps(value, protocol=5)
    specs.append(["pickle", [], len(data)])
    bufs.append(data)
    return {"t": "pickle", "i": len(bufs) - 1}


def pack(batch: Any) -> bytes:
    """A collated (non-array) batch as bytes: MAGIC, u32 header length, JSON, 8-aligned buffers."""
    bufs: list[Any] = []
    specs: list[list[Any]] = []
    if isinstance(batch, dict):
        tree: dict[str, Any] = {"t": "dict", "k": list(batch)}
        tree["v"] = [_leaf(v, bufs, specs) for v in batch.values()]
    elif isinstance(batch, tuple):
        tree = {"t": "tuple", "v": [_leaf(v, bufs, specs) for v in batch]}
    else:
        tree = {"t": "list", "v": [_leaf(batch, bufs, specs)]}
    head = json.dumps({"tree": tree, "bufs": specs}).encode("utf-8")
    head += b" " * (-(len(MAGIC) + 4 + len(head)) % 8)
    parts: list[Any] = [MAGIC, struct.pack("<I", len(head)), head]
    for b in bufs:
        parts += [b, b"\0" * (-len(b) % 8)]
    return b"".join(parts)


def unpack(data: bytes) -> Any:
    """Undo ``pack``; arrays are read-only views of ``data``. ValueError if it is not ours."""
    import numpy as np

    if data[:4] != MAGIC:
        raise ValueError("not a packed batch")
    (n,) = struct.unpack_from("<I", data, 4)
    meta = json.loads(data[8 : 8 + n])
    pos = 8 + n
    bufs: list[Any] = []
    for kind, shape, size in meta["bufs"]:
        if kind == "bytes":
            out, p = [], pos
            for ln in shape:
                out.append(data[p : p + ln])
                p += ln
            bufs.append(out)
        elif kind == "pickle":
            bufs.append(pickle.loads(data[pos : pos + size]))
        else:
            dt = np.dtype(kind)
            arr = np.frombuffer(data, dt, size // dt.itemsize if dt.itemsize else 0, pos)
            bufs.append(arr.reshape(shape))
        pos += size + (-size % 8)

    def leaf(node: dict[str, Any]) -> Any:
        return node["v"] if node["t"] == "json" else bufs[node["i"]]

    tree = meta["tree"]
    if tree["t"] == "dict":
        return {k: leaf(v) for k, v in zip(tree["k"], tree["v"], strict=True)}
    if tree["t"] == "tuple":
        return tuple(leaf(v) for v in tree["v"])
    return leaf(tree["v"][0])
