"""The name `warm` shows for a model file (``MODEL@REVISION/PATH``) is one `get -c model`
reads: the file comes back byte-exact, resolved through the revision's manifest to the
blob `ls -c model` lists, which `get` reads as well."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import safetensors.numpy as stn

from tests.cli.helpers import run


def test_the_key_warm_shows_is_one_get_reads(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    warmed = run("warm", str(src))
    assert warmed.returncode == 0, warmed.stderr
    assert b"model@main/model.bin" in warmed.stdout
    shown = [i["key"] for i in json.loads(run("--json", "warm", str(src)).stdout)["items"]]
    assert shown == ["model@main/model.bin"]
    got = run("get", "-c", "model", "model@main/model.bin")  # piped: byte-exact
    assert got.returncode == 0, got.stderr
    assert got.stdout == data
    out = tmp_path / "back.bin"
    assert run("get", "-c", "model", "model@main/model.bin", "--out", str(out)).returncode == 0
    assert out.read_bytes() == data
    listed = run("ls", "-c", "model", "-q").stdout.decode().split()
    blob = next(k for k in listed if k.startswith("blobs/"))
    assert run("get", "-c", "model", blob).stdout == data
    body = json.loads(run("--json", "get", "-c", "model", "model@main/model.bin").stdout)
    assert body["found"] is True and body["key"] == "model@main/model.bin"
    assert body["bytes"] == len(data)


def test_a_folder_model_file_and_a_miss(tmp_path: Path) -> None:
    model = tmp_path / "tiny"
    model.mkdir()
    stn.save_file({"w": np.ones((8, 8), np.float32)}, str(model / "model.safetensors"))
    (model / "config.json").write_text('{"hidden": 8}')
    assert run("warm", str(model)).returncode == 0
    got = run("get", "-c", "model", "tiny@main/config.json")
    assert got.returncode == 0 and got.stdout == b'{"hidden": 8}'
    weights = run("get", "-c", "model", "tiny@main/model.safetensors")
    assert weights.stdout == (model / "model.safetensors").read_bytes()
    for missing in ("tiny@main/nope.json", "tiny@v2/config.json", "other@main/config.json"):
        miss = run("get", "-c", "model", missing)
        assert miss.returncode == 1, missing
        assert f"miss: {missing!r}".encode() in miss.stderr
