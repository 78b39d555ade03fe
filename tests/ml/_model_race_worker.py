"""A process of the put_model / remove_model race (tests/ml/test_model_races.py).

``putter SRC TRIALS``: stores model ``a`` from SRC ``TRIALS`` times; after each put, while
its manifest is published, counts the files it lists whose blob the cache no longer holds,
and prints that count. ``remover SRC STOP``: stores model ``b`` (the same files, so the same
blobs) and removes it again, until the file STOP exists (``remover-ready`` beside STOP
says the first round is done).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llamacache import CacheManager, ModelCache


def putter(src: Path, trials: int) -> None:
    dangling = 0
    with CacheManager() as m:
        mc = ModelCache(m)
        for _ in range(trials):
            mc.put_model("a", src, revision="r")
            info = mc.info("a", "r")  # the published manifest, read back
            dangling += sum(not mc.cache.disk.contains(info.key(f)) for f in info.files)
    print(json.dumps({"dangling": dangling}))


def remover(src: Path, stop: Path) -> None:
    rounds = 0
    with CacheManager() as m:
        mc = ModelCache(m)
        while not stop.exists():
            mc.put_model("b", src)
            mc.remove_model("b")
            rounds += 1
            if rounds == 1:
                (stop.parent / "remover-ready").touch()
    print(json.dumps({"rounds": rounds}))


if __name__ == "__main__":
    role, src, arg = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if role == "putter":
        putter(src, int(arg))
    else:
        remover(src, Path(arg))
