"""ModelCache on real directories with real safetensors files: mmap, paths, revisions."""

from __future__ import annotations

import gc
import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import safetensors.numpy as stn

from llamacache import CacheIOError, CacheManager, CorruptEntryError, ModelCache
from llamacache.engine import framing
from llamacache.errors import UsageError
from llamacache.ml import NotCachedError
from llamacache.ml.model import manifest_key


@pytest.fixture
def models() -> Any:
    with CacheManager() as manager:
        yield ModelCache(manager)


def _weights(n: int = 4, rows: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        f"layer{i}.w": (rng.standard_normal((rows, 128)) * 0.02).astype(np.float16)
        for i in range(n)
    }


def _model_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    stn.save_file(_weights(), str(root / "model-00001-of-00002.safetensors"))
    stn.save_file(
        {"head": np.ones((4, 4), np.float32)}, str(root / "model-00002-of-00002.safetensors")
    )
    (root / "config.json").write_text(json.dumps({"hidden": 128}))
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return root


def _mmap_in_base_chain(arr: np.ndarray) -> mmap.mmap | None:
    obj: Any = arr
    for _ in range(10):
        if isinstance(obj, mmap.mmap):
            return obj
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
        if obj is None:
            return None
    return None


def test_no_argument_constructor_uses_the_resolved_config(cache_root: Path) -> None:
    mc = ModelCache()
    try:
        mc.put_model("tiny", {"x": np.zeros(3, np.float32)})
        assert (cache_root / "model").is_dir()
    finally:
        mc.close()


def test_dict_round_trip_is_mmapped_zero_copy(models: ModelCache) -> None:
    weights = _weights()
    info = models.put_model("llama-7b", weights)
    assert [f.path for f in info.files] == ["model.safetensors"]
    got = models.get_model("llama-7b")
    path = models.cache.get_path(models.entry_key("llama-7b", "main", "model.safetensors"))
    assert path is not None
    maps = Path("/proc/self/maps").read_text()
    assert str(path) in maps  # the cache file itself is mapped into this process
    for name, arr in weights.items():
        np.testing.assert_array_equal(got[name], arr)
        assert not got[name].flags.writeable
        mm = _mmap_in_base_chain(got[name])
        assert mm is not None and len(mm) == path.stat().st_size


def test_loading_does_not_grow_rss_by_the_file_size(models: ModelCache, tmp_path: Path) -> None:
    big = {f"t{i}": np.full((1024, 1024), i, np.float16) for i in range(24)}  # 48 MiB
    src = tmp_path / "big.safetensors"
    stn.save_file(big, str(src))
    del big
    models.put_model("big", src)
    gc.collect()
    before = psutil.Process().memory_info().rss
    got = models.get_model("big")
    grown = psutil.Process().memory_info().rss - before
    assert len(got) == 24
    assert grown < 8 * 1024 * 1024, grown
    assert float(got["t5"][100, 100]) == 5.0  # and the data is right where it is touched


def test_without_mmap_tensors_are_read_and_verified(models: ModelCache) -> None:
    weights = _weights()
    models.put_model("m", weights)
    got = models.get_model("m", mmap=False)
    for name, arr in weights.items():
        np.testing.assert_array_equal(got[name], arr)
        assert _mmap_in_base_chain(got[name]) is None
    path = models.cache.get_path(models.entry_key("m", "main", "model.safetensors"))
    assert path is not None
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same structure, wrong bytes: only the digest can tell
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptEntryError, match="checksum"):
        models.get_model("m", mmap=False)


def test_directory_put_is_byte_for_byte_and_model_path_is_a_view(
    models: ModelCache, tmp_path: Path
) -> None:
    src = _model_dir(tmp_path / "src")
    info = models.put_model("org/model", src, revision="abc123")
    assert {f.path for f in info.files} == {
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer/vocab.txt",
    }
    view = models.model_path("org/model", "abc123")
    for f in info.files:
        assert (view / f.path).read_bytes() == (src / f.path).read_bytes()
        assert (view / f.path).is_symlink()
    tensors = models.get_model("org/model", "abc123")
    assert set(tensors) == {*(_weights()), "head"}
    # the view drops files that left the revision, and their bytes leave the cache
    vocab = models.entry_key("org/model", "abc123", "tokenizer/vocab.txt")
    assert vocab in models.cache
    (src / "tokenizer" / "vocab.txt").unlink()
    models.put_model("org/model", src, revision="abc123")
    view = models.model_path("org/model", "abc123")
    assert not (view / "tokenizer").exists()
    assert vocab not in models.cache


def test_revisions_newest_first_and_removal(models: ModelCache) -> None:
    for rev in ("r1", "r2", "r3"):
        models.put_model("m", {"x": np.zeros(2, np.float32)}, revision=rev)
    assert models.revisions("m") == ["r3", "r2", "r1"]
    blob = models.entry_key("m", "r2", "model.safetensors")
    assert models.remove_model("m", "r2") == 1  # the manifest: r1 and r3 share the bytes
    assert models.revisions("m") == ["r3", "r1"]
    with pytest.raises(NotCachedError):
        models.get_model("m", "r2")
    assert models.remove_model("m") == 3  # two manifests, then the blob they shared
    assert blob not in models.cache and len(models.cache) == 0


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_interrupted_put_never_looks_complete(models: ModelCache, tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "src")
    models.put_model("m", src)
    assert models.revisions("m") == ["main"]
    # a second put that fails half-way (reading /proc/self/mem at offset 0 is EIO, a real
    # I/O error) leaves the revision without a manifest: never served as complete
    os.symlink("/proc/self/mem", src / "zz-unreadable.bin")
    with pytest.raises(CacheIOError):
        models.put_model("m", src)
    assert manifest_key("m", "main") not in models.cache
    assert models.revisions("m") == []
    with pytest.raises(NotCachedError):
        models.get_model("m")


def test_corrupted_header_is_detected_on_read(models: ModelCache) -> None:
    models.put_model("m", _weights())
    path = models.cache.get_path(models.entry_key("m", "main", "model.safetensors"))
    assert path is not None
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, 0, 10**12)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptEntryError, match="safetensors"):
        models.get_model("m")


def test_fp16_weights_stay_raw_so_they_can_be_mapped(models: ModelCache) -> None:
    weights = (np.random.default_rng(2).standard_normal(1 << 18) * 0.02).astype(np.float16)
    models.cache.put("w", weights)  # through the codec chooser, compression = auto
    tag = models.cache.disk.locate("w")
    assert tag is not None and framing.parse_meta(tag[0]).codec == "none"
    models.put_model("m", {"w": weights})
    tag = models.cache.disk.locate(models.entry_key("m", "main", "model.safetensors"))
    assert tag is not None and framing.parse_meta(tag[0]).is_raw


@pytest.mark.parametrize(
    ("name", "revision"),
    [("../etc", None), ("a@b", None), ("", None), ("ok", "a/b"), ("ok", ".."), ("/abs", None)],
)
def test_bad_names_are_refused(models: ModelCache, name: str, revision: str | None) -> None:
    with pytest.raises(UsageError):
        models.put_model(name, {"x": np.zeros(1, np.float32)}, revision=revision)


def test_a_model_larger_than_the_cache_is_refused(models: ModelCache, tmp_path: Path) -> None:
    from llamacache.config import resolve

    settings = resolve(read_files=False, overrides={"caches.model.size": "1MB"})
    with CacheManager(settings) as small:
        mc = ModelCache(small)
        with pytest.raises(UsageError, match="raise caches.model.size"):
            mc.put_model("m", {"x": np.zeros(1 << 20, np.float32)})
        assert len(mc.cache) == 0


def test_missing_file_after_eviction_is_a_clear_miss(models: ModelCache) -> None:
    models.put_model("m", _weights())
    models.cache.remove(models.entry_key("m", "main", "model.safetensors"))
    with pytest.raises(NotCachedError, match="evicted"):
        models.get_model("m")
    assert os.environ.get("HOME")


def test_bf16_comes_back_as_its_bits(models: ModelCache, tmp_path: Path) -> None:
    bits = np.array([0x3F80, 0x4000, 0xBF80], dtype="<u2")  # 1.0, 2.0, -1.0 in bfloat16
    body = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    body += b" " * (-(8 + len(body)) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body + bits.tobytes())
    models.put_model("bf", path)
    for use_mmap in (True, False):
        x = models.get_model("bf", mmap=use_mmap)["x"]
        assert x.dtype.itemsize == 2
        np.testing.assert_array_equal(x.view("<u2"), bits)


def test_invalid_safetensors_is_refused_and_nothing_stored(
    models: ModelCache, tmp_path: Path
) -> None:
    src = _model_dir(tmp_path / "src")
    bad = src / "model-00002-of-00002.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(UsageError, match="model-00002-of-00002.safetensors: not a valid"):
        models.put_model("m", src)
    with pytest.raises(UsageError, match="not a valid safetensors file"):
        models.put_model("m", bad)
    assert list(models.cache.keys()) == []
    (src / "notes.bin").write_bytes(b"anything")  # other names are stored as they are
    bad.unlink()
    assert "notes.bin" in {f.path for f in models.put_model("m", src).files}
