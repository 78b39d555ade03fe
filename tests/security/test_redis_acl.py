"""The read-only client set-up that docs/security.md recommends, on a real redis-server."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.network.helpers import net_settings, tiered
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

# exactly the lines in docs/security.md
_COMMON = "~llamacache:* &__redis__:invalidate +@read"
_LISTEN = "+ping +info +client|id +client|tracking +subscribe"
READER = f"reader on >rpw {_COMMON} {_LISTEN}"
WRITER = f"writer on >wpw {_COMMON} +@write {_LISTEN} +scan +unlink"


def test_read_only_clients_read_and_cannot_write(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert f"ACL SETUSER {READER}" in docs and f"ACL SETUSER {WRITER}" in docs
    server = private_redis.start()
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", *READER.split())
    admin.execute_command("ACL", "SETUSER", *WRITER.split())
    host = f"127.0.0.1:{server.port}/0"
    writer = tiered(
        tmp_path / "w", net_settings(f"redis://writer:wpw@{host}", "llamacache:", signing_key="k")
    )
    reader = tiered(
        tmp_path / "r",
        net_settings(
            f"redis://reader:rpw@{host}", "llamacache:", signing_key="k", mode="read-only"
        ),
    )
    writer.put("weights", b"shared bytes")
    assert reader.get("weights") == b"shared bytes"
    reader.put("mine", b"local only")  # read-only mode: kept locally, never sent
    assert writer.get("mine", "miss") == "miss"
    raw = redis.Redis.from_url(f"redis://reader:rpw@{host}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.set("llamacache:default:e:s:planted", b"x")
    writer.close()
    reader.close()
