"""`config show` says a signing key is set and where from, never what it is (nor a URL password)."""

from __future__ import annotations

import pytest

from tests.cli.helpers import cli, cli_json


def test_config_show_hides_the_signing_key_and_url_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLAMACACHE_SIGNING_KEY", "supersecret")
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", "redis://user:pw@cache-host:6379/0")
    out = cli("config", "show")
    assert out.exit_code == 0
    assert "supersecret" not in out.stdout and ":pw@" not in out.stdout
    assert "redis://user:***@cache-host:6379/0" in out.stdout
    body = cli_json("config", "show")
    assert "supersecret" not in str(body) and ":pw@" not in str(body)
