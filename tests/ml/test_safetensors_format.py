"""Our safetensors reader/writer against the real package, and the structural validator."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as stn

from llamacache.formats import VALIDATORS
from llamacache.formats import safetensors as st


def _write(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    stn.save_file(tensors, str(path))
    return path


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((8, 16)).astype(np.float16),
        "b": np.arange(7, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 3), np.float32),
    }


def test_valid_file_written_by_the_package_passes(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.safetensors", _tensors())
    assert st.validate(path) is None
    assert VALIDATORS["safetensors"] is st.validate


def test_our_stream_writer_is_read_by_the_package(tmp_path: Path) -> None:
    tensors = _tensors()
    stream = st.TensorStream(tensors, {"format": "np"})
    out = bytearray()
    buf = bytearray(5)  # tiny reads exercise the part boundaries
    while n := stream.readinto(buf):
        out += buf[:n]
    assert len(out) == stream.size
    path = tmp_path / "ours.safetensors"
    path.write_bytes(bytes(out))
    back = stn.load_file(str(path))
    assert set(back) == set(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(back[name], arr)
    assert st.validate(path) is None


def _corrupt(path: Path, mutate: str) -> None:
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + n])
    if mutate == "length":
        struct.pack_into("<Q", data, 0, len(data) * 2)
    elif mutate == "json":
        data[8] = ord("#")
    elif mutate == "truncate":
        del data[-3:]
    else:
        if mutate == "dtype":
            header["w"]["dtype"] = "F17"
        elif mutate == "offsets":
            header["w"]["data_offsets"][1] += 2
        elif mutate == "shape":
            header["w"]["shape"] = [8, 15]
        body = json.dumps(header, separators=(",", ":")).encode()
        body += b" " * (n - len(body)) if len(body) <= n else b""
        assert len(body) == n
        data[8 : 8 + n] = body
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("mutate", ["length", "json", "truncate", "dtype", "offsets", "shape"])
def test_structural_damage_is_named(tmp_path: Path, mutate: str) -> None:
    path = _write(tmp_path / "m.safetensors", _tensors())
    _corrupt(path, mutate)
    reason = st.validate(path)
    assert reason is not None and reason


def test_gap_between_tensors_is_refused() -> None:
    header = {
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [3, 5]},
    }
    body = json.dumps(header).encode()
    blob = struct.pack("<Q", len(body)) + body + b"\0" * 5
    with pytest.raises(st.SafetensorsError, match="gap"):
        st.parse_header(blob, len(blob))
