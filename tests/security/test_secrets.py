"""Secrets never printed: every credential form in a Redis URL, in every output."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacache.config.redaction import redact_text, redact_url
from tests.cli.helpers import cli, run
from tests.redis_server import free_port

SECRET = "hunter2"
FORMS = [
    f"redis://bob:{SECRET}@127.0.0.1:{{port}}/0",
    f"redis://:{SECRET}@127.0.0.1:{{port}}/0",
    f"redis://{SECRET}@127.0.0.1:{{port}}/0",
    f"redis://127.0.0.1:{{port}}/0?password={SECRET}",
    f"redis://127.0.0.1:{{port}}/0?username=bob&password={SECRET}",
    f"rediss://bob:p@ss/w{SECRET}@127.0.0.1:{{port}}/0?ssl_keyfile=/k.pem",
    f"unix://bob:{SECRET}@/run/redis.sock?db=0",
    f"unix:///run/redis.sock?db=0&password={SECRET}",
    f"redis+sentinel://bob:{SECRET}@127.0.0.1:{{port}},127.0.0.1:{{port}}/mymaster/0",
    f"redis+sentinel://:{SECRET}@127.0.0.1:{{port}}/mymaster",
    f"redis+sentinel://127.0.0.1:{{port}}/mymaster?sentinel_password={SECRET}",
]


@pytest.mark.parametrize("form", FORMS)
def test_redact_url_hides_every_credential_form(form: str) -> None:
    url = form.format(port=6379)
    assert SECRET not in redact_url(url)
    assert SECRET not in redact_text(f"error talking to {url}: refused")


def test_tls_paths_and_user_names_stay_readable() -> None:
    out = redact_url("rediss://bob:pw@h:1/0?ssl_keyfile=/etc/k.pem&password=pw")
    assert out == "rediss://bob:***@h:1/0?ssl_keyfile=/etc/k.pem&password=***"
    assert redact_url("redis://[::1") == "redis://[::1"
    out = redact_url("redis+sentinel://bob:pw@h:1,h2:2/mymaster/0?sentinel_password=pw")
    assert out == "redis+sentinel://bob:***@h:1,h2:2/mymaster/0?sentinel_password=***"


@pytest.mark.parametrize("form", FORMS[::4])
def test_no_output_prints_the_password(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """config show / validate (text, JSON), inspect (text, JSON), a get whose server is down
    (the unreachable warning), and --debug: nothing shows the secret."""
    url = form.format(port=free_port())  # nothing listens: warnings and errors happen
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", url)
    for args in (
        ("config", "show"),
        ("--json", "config", "show"),
        ("config", "validate"),
        ("put", "k", "v"),
        ("get", "k"),
        ("inspect",),
        ("--json", "inspect"),
        ("--debug", "inspect"),
        ("--debug", "verify", "--tier", "network"),
    ):
        done = cli(*args)
        text = done.stdout + done.stderr
        assert SECRET not in text, (args, text)
    done = run("--debug", "get", "absent")  # a real process: logging writes to its stderr
    assert done.returncode == 1
    assert SECRET.encode() not in done.stdout + done.stderr


def test_malformed_url_is_a_config_error_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", f"redis://bob:{SECRET}@[::1")
    for args in (("get", "k"), ("--debug", "get", "k")):
        done = run(*args)
        assert done.returncode == 2, done.stderr
        assert SECRET.encode() not in done.stdout + done.stderr
    done = run("get", "k")
    assert done.stderr.count(b"\n") == 1 and b"not a valid URL" in done.stderr


def test_signing_keys_list_form_loads_and_shows_only_key_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llamacache.config import resolve
    from llamacache.engine.netformat import key_id

    cfg = tmp_path / "llamacache.toml"
    cfg.write_text(
        '[cache.network]\nurl = "redis://h:6379/0"\nsigning_key = "new-key"\n'
        'signing_keys = ["old-key"]\n'
    )
    settings = resolve(config_file=cfg)
    assert settings.network is not None
    assert settings.network.keys == (b"new-key", b"old-key")  # the first signs
    out = cli("--config", str(cfg), "--json", "config", "show")
    assert "old-key" not in out.stdout and "new-key" not in out.stdout
    assert key_id(b"old-key").hex() in out.stdout
    monkeypatch.setenv("LLAMACACHE_SIGNING_KEYS", "a-key, b-key")
    assert resolve(config_file=cfg).network.keys == (b"new-key", b"a-key", b"b-key")  # type: ignore[union-attr]
    cfg.write_text('[cache.network]\nurl = "redis://h/0"\nsigning_keys = [1]\n')
    monkeypatch.delenv("LLAMACACHE_SIGNING_KEYS")
    bad = cli("--config", str(cfg), "config", "validate")
    assert bad.exit_code == 2 and "signing_keys" in bad.stderr
