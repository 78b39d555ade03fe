"""A verify that checked nothing is not a pass: a sample of a small cache checks at least
one entry per cache (rounded up), and a run that checked 0 of N>0 entries (``--max-time 0``,
or a deadline hit before the first entry) exits 1 and says so. The CI-gate recipe
(``verify --sample 10% --max-time 10m``) can never pass silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamacache.cli._manual import EXIT_STATUS
from tests.cli.admin_helpers import fill
from tests.cli.helpers import cli, run


@pytest.mark.parametrize("percent", ["5%", "1%", "0.01"])
def test_small_sample_checks_at_least_one_entry(tmp_path: Path, percent: str) -> None:
    root = tmp_path / "root"
    fill(root, {f"k{i}": b"v" * 50 for i in range(12)})
    for _ in range(15):  # random choice: every draw must check one
        result = cli("--cache-dir", str(root), "--json", "verify", "--sample", percent)
        assert result.exit_code == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["ok"] is True
        assert [c["checked"] for c in body["caches"] if c["entries"]] == [1]


def test_sample_rounds_up(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {f"k{i}": b"v" * 50 for i in range(12)})
    for _ in range(10):
        out = cli("--cache-dir", str(root), "--json", "verify", "--sample", "10%").stdout
        checked = [c["checked"] for c in json.loads(out)["caches"] if c["entries"]]
        assert checked == [2]  # 1.2 -> 2


def test_max_time_zero_is_not_a_pass(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {f"k{i}": b"v" * 50 for i in range(12)})
    result = run("--cache-dir", str(root), "verify", "--max-time", "0")
    assert result.returncode == 1, result.stderr
    out = result.stdout.decode()
    assert "checked 0 of 12 entries" in out and "no entry was checked" in out
    assert "all good" not in out
    quiet = run("--cache-dir", str(root), "--quiet", "verify", "--max-time", "0")
    assert quiet.returncode == 1
    assert b"no entry was checked" in quiet.stderr
    body = json.loads(run("--cache-dir", str(root), "--json", "verify", "--max-time", "0").stdout)
    assert body["ok"] is False and body["checked_nothing"] is True


def test_empty_cache_with_max_time_zero_passes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill(root, {})
    result = cli("--cache-dir", str(root), "verify", "--max-time", "0")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_exit_table_names_a_verify_that_checked_nothing() -> None:
    table = dict(EXIT_STATUS)
    assert "checked no entry" in table[1]
