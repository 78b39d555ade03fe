"""The safetensors format, read and written without the package: header parsing, validation.

Layout: 8-byte little-endian header length N, N bytes of JSON (``{name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}}``), then the data section; offsets are
relative to the data section. We parse it ourselves so a cached file can be memory-mapped
tensor by tensor (zero copy) and so ``verify`` can call a structurally broken file corrupt
even when no checksum was recorded for it.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from llamacache.errors import SafetensorsError as SafetensorsError  # its old home

MAX_HEADER = 100 * 1024 * 1024  # the safetensors package refuses larger headers too
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
# numpy dtype string (little-endian) for each safetensors dtype; BF16/F8 have no numpy type
# and come back as same-width unsigned views unless ml_dtypes is installed.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "F8_E5M2": "|u1",
    "F8_E4M3": "|u1",
    "I16": "<i2",
    "U16": "<u2",
    "F16": "<f2",
    "BF16": "<u2",
    "I32": "<i4",
    "U32": "<u4",
    "F32": "<f4",
    "I64": "<i8",
    "U64": "<u8",
    "F64": "<f8",
}
_ML_DTYPES = {"BF16": "bfloat16", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn"}
_FROM_NUMPY: dict[str, str] = {
    "b": "BOOL",
    "u1": "U8",
    "i1": "I8",
    "i2": "I16",
    "u2": "U16",
    "f2": "F16",
    "i4": "I32",
    "u4": "U32",
    "f4": "F32",
    "i8": "I64",
    "u8": "U64",
    "f8": "F64",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors dtype, e.g. "F16"
    shape: tuple[int, ...]
    begin: int  # absolute offset in the file
    end: int


@dataclass(frozen=True)
class Header:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int  # 8 + header length
    data_len: int


def _check_entry(name: str, entry: Any) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(entry, Mapping):
        raise SafetensorsError(f"tensor {name!r}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise SafetensorsError(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise SafetensorsError(f"tensor {name!r}: shape {shape!r} is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(f"tensor {name!r}: bad data_offsets {offsets!r}")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise SafetensorsError(
            f"tensor {name!r}: {offsets[1] - offsets[0]} bytes for {dtype}{shape} "
            f"(expected {expected})"
        )
    return dtype, tuple(shape), offsets[0], offsets[1]


def parse_header(head: bytes, file_size: int) -> Header:
    """Parse and check a header given the file's first bytes (at least 8 + N) and its size.

    Raises SafetensorsError on any inconsistency: a bad length, bad JSON, an unknown
    dtype, offsets outside the data section, gaps or overlaps, or a size mismatch.
    """
    if file_size < 8 or len(head) < 8:
        raise SafetensorsError(f"file is {file_size} bytes, too short for a header")
    (n,) = struct.unpack_from("<Q", head)
    if n < 2 or n > MAX_HEADER or 8 + n > file_size:
        raise SafetensorsError(f"header length {n} is impossible for a {file_size}-byte file")
    if len(head) < 8 + n:
        raise SafetensorsError("header is truncated")
    try:
        raw = json.loads(head[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"header is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = raw.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsError("__metadata__ is not an object")
    data_start = 8 + n
    data_len = file_size - data_start
    tensors: dict[str, TensorInfo] = {}
    for name, entry in raw.items():
        dtype, shape, begin, end = _check_entry(name, entry)
        tensors[name] = TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
    pos = data_start
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != pos:
            what = "overlaps the previous tensor" if t.begin < pos else "leaves a gap"
            raise SafetensorsError(f"tensor {t.name!r}: data at {t.begin} {what}")
        pos = t.end
    if pos != file_size:
        raise SafetensorsError(
            f"data section ends at {pos - data_start} but the file holds {data_len} data bytes"
        )
    return Header(tensors, {str(k): str(v) for k, v in metadata.items()}, data_start, data_len)


def read_header(f: BinaryIO, file_size: int) -> Header:
    """Read and parse the header of an open file (reads only the header bytes)."""
    f.seek(0)
    first = f.read(8)
    if len(first) == 8:
        (n,) = struct.unpack("<Q", first)
        if 2 <= n <= min(MAX_HEADER, file_size - 8):
            first += f.read(n)
    return parse_header(first, file_size)


def validate(path: Path) -> str | None:
    """None when ``path`` is a structurally valid safetensors file, else the reason."""
    try:
        with open(path, "rb") as f:
            read_header(f, os.fstat(f.fileno()).st_size)
    except SafetensorsError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None


def numpy_dtype(dtype: str) -> Any:
    """The numpy dtype for a safetensors dtype: ml_dtypes' bfloat16/float8 when installed,
    else a same-width unsigned integer view (uint16 for BF16) that keeps the bits."""
    import numpy as np

    special = _ML_DTYPES.get(dtype)
    if special is not None:
        try:
            import ml_dtypes  # type: ignore[import-not-found,unused-ignore]

            return np.dtype(getattr(ml_dtypes, special))
        except (ImportError, AttributeError):
            pass
    return np.dtype(NUMPY_DTYPES[dtype])


def safetensors_dtype(arr: Any) -> str:
    """The safetensors dtype of a numpy array (ml_dtypes bfloat16/float8 understood)."""
    name = arr.dtype.name
    for st, ml in _ML_DTYPES.items():
        if name == ml:
            return st
    code = "b" if arr.dtype.kind == "b" else f"{arr.dtype.kind}{arr.dtype.itemsize}"
    if code not in _FROM_NUMPY:
        raise SafetensorsError(f"dtype {arr.dtype} cannot be stored in safetensors")
    return _FROM_NUMPY[code]


def encode_header(
    tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> tuple[bytes, list[Any]]:
    """The header bytes (length prefix included, padded to 8) and the arrays in data order.

    Arrays are made little-endian and C-contiguous; the caller streams their bytes after
    the header, so a model is never assembled in one buffer.
    """
    import numpy as np

    entries: dict[str, Any] = {}
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    ordered: list[Any] = []
    pos = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        dtype = safetensors_dtype(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        entries[name] = {
            "dtype": dtype,
            "shape": list(arr.shape),
            "data_offsets": [pos, pos + arr.nbytes],
        }
        pos += arr.nbytes
        ordered.append(arr)
    body = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    body += b" " * (-(8 + len(body)) % 8)
    return struct.pack("<Q", len(body)) + body, ordered


class TensorStream:
    """A read-only binary stream of a safetensors file built from arrays (for ``put_file``)."""

    def __init__(self, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None):
        header, arrays = encode_header(tensors, metadata)
        self._parts: list[memoryview] = [memoryview(header)]
        self._parts += [memoryview(a.reshape(-1).view("u1")) for a in arrays if a.nbytes]
        self.size = sum(len(p) for p in self._parts)
        self._i = 0
        self._off = 0

    def readinto(self, buf: Any) -> int:
        out = memoryview(buf).cast("B")
        n = 0
        while n < len(out) and self._i < len(self._parts):
            part = self._parts[self._i]
            take = min(len(out) - n, len(part) - self._off)
            out[n : n + take] = part[self._off : self._off + take]
            n += take
            self._off += take
            if self._off == len(part):
                self._i, self._off = self._i + 1, 0
        return n
