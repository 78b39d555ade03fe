"""Model revisions beside other processes: a published manifest never lists a removed blob.

The race (found after issue 16): ``put_model`` finds a file's blob already stored and will
list it in its new manifest; meanwhile another process's ``remove_model`` of a revision that
listed the same blob sees no manifest listing it (the putter's is not published yet) and
removes it. Without serialisation the putter then publishes a manifest naming a blob that is
gone, and ``verify`` calls the revision incomplete. Two real processes race on one real
cache directory; LLAMACACHE_FAULT_TRIALS sets how many puts (small by default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from llamacache import CacheManager, ModelCache
from tests.cli.helpers import cli_json

TRIALS = int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "25"))
WORKER = Path(__file__).with_name("_model_race_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _model_dir(root: Path, files: int = 24) -> Path:
    """A model folder of many small files: each put looks up every blob, a wide window."""
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"part-{i:02d}.bin").write_bytes(os.urandom(2048) + bytes([i]))
    return root


def _run(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE, text=True
    )


def test_remove_model_never_takes_a_blob_a_concurrent_put_publishes(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "src")
    with CacheManager() as m:  # both models' blobs exist before the race starts
        ModelCache(m).put_model("a", src, revision="r")
    stop = tmp_path / "stop"
    remover = _run("remover", str(src), str(stop))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "remover-ready").exists() and remover.poll() is None:
            assert time.monotonic() < deadline, "the remover never finished a round"
            time.sleep(0.01)
        putter = _run("putter", str(src), str(TRIALS))
        out, _ = putter.communicate(timeout=600)
    finally:
        stop.touch()
        rounds, _ = remover.communicate(timeout=120)
    assert putter.returncode == 0 and remover.returncode == 0
    done = json.loads(rounds)["rounds"]
    print(f"puts {TRIALS}, remover rounds {done}")
    assert done >= 1
    assert json.loads(out) == {"dangling": 0}
    cli_json("verify", "-c", "model")  # exit 0: the last revision is complete
