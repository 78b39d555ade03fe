"""A model blob is named by its digest: bytes under another digest's name are never served.

Whoever can write the shared Redis (an unsigned tier) or the cache can put other content
under ``blobs/<checksum>/<digest>``; a manifest naming that digest must not map it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from llamacache.errors import CorruptEntryError
from llamacache.manager import CacheManager
from llamacache.ml.model import ModelCache
from llamacache.ml.revisions import blob_key, write_manifest


def test_a_blob_holding_other_content_than_its_name_is_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_DISK_PATH", str(tmp_path / "root"))
    good, evil = tmp_path / "good.safetensors", tmp_path / "evil.safetensors"
    save_file({"w": np.ones(64, dtype=np.float32)}, str(good))
    save_file({"w": np.full(64, 7, dtype=np.float32)}, str(evil))
    with CacheManager() as m, ModelCache(m) as mc:
        info = mc.put_model("org/m", good, revision="r")
        (f,) = info.files
        key = blob_key(f.checksum or "xxh3", f.digest, f.path)
        mc.cache.remove(key)
        mc.cache.put_file(key, evil)  # other bytes under the good digest's name
        write_manifest(mc.cache, "org/m", "r", {f.path: f})
        with pytest.raises(CorruptEntryError, match="digest it is named by"):
            mc.get_model("org/m", "r")
