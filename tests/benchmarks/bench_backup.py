"""backup / restore throughput against the naive baselines measured in the same run.

Run: ``python tests/benchmarks/bench_backup.py [MB]`` (not collected by pytest).

* backup vs ``tar | zstd`` of the cache directory (tarfile + zstandard at the same
  level): what the per-entry, engine-level read with digest checks costs over copying
  the files blindly (which could catch a half-written SQLite file or value file);
* restore (verify everything, then insert through the engine, fsync per file) vs
  extracting that plain tarball (no checks, no fsync).

Prints seconds and ratios; compare ratios, not absolute numbers (shared VMs are noisy).
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard

from llamacache.cli.app import State
from llamacache.ops import backup as backup_ops
from llamacache.ops import restore as restore_ops


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main(megabytes: int = 64) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = State(cache_dir=base / "src").manager()
        cache = src.cache("default")
        small = 2000  # small inline entries
        large = max(1, megabytes // 4)  # 4 MB file-backed entries
        for i in range(small):
            cache.put(f"s{i}", os.urandom(512))
        blob = base / "blob"
        for i in range(large):
            blob.write_bytes(os.urandom(4 * 1024 * 1024))
            cache.put_file(f"l{i}", blob)
        cache.flush()
        print(f"cache: {small} x 512 B inline + {large} x 4 MiB files")

        archive = base / "b.tar.zst"
        t_backup = timed(lambda: backup_ops.backup(src, archive))

        plain = base / "plain.tar.zst"

        def tar_zstd() -> None:
            level = backup_ops.ZSTD_LEVEL
            with (
                open(plain, "wb") as raw,
                zstandard.ZstdCompressor(level=level).stream_writer(raw) as zw,
                tarfile.open(fileobj=zw, mode="w|") as tar,
            ):
                tar.add(base / "src", arcname="src")

        t_tar = timed(tar_zstd)
        print(
            f"backup   {t_backup:7.2f}s   tar|zstd {t_tar:7.2f}s   ratio {t_backup / t_tar:5.2f}x"
        )

        dest = State(cache_dir=base / "dest").manager()
        t_restore = timed(
            lambda: restore_ops.restore(dest, archive, mode="replace", allow_pickle=True)
        )

        def untar() -> None:
            out = base / "untar"
            with open(plain, "rb") as raw:
                reader = zstandard.ZstdDecompressor().stream_reader(raw)
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    tar.extractall(out, filter="data")
            shutil.rmtree(out)

        t_untar = timed(untar)
        ratio = t_restore / t_untar
        print(f"restore  {t_restore:7.2f}s   untar    {t_untar:7.2f}s   ratio {ratio:5.2f}x")
        src.close()
        dest.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 64)
