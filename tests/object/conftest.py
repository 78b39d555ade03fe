"""An S3-compatible endpoint for the object tier tests.

moto's S3 server (``moto[server]``, ``ThreadedMotoServer``) is a stand-in for a real S3
endpoint: it speaks the S3 HTTP protocol (SigV4, multipart uploads, ranged GETs) that the
client uses against AWS, MinIO, R2 or Ceph, on a loopback port. Set LLAMACACHE_TEST_S3_URL
(``s3://bucket/prefix``, plus AWS_ENDPOINT_URL, AWS_REGION and credentials in AWS_*) to run
the same tests against a real endpoint; tests that need to watch or stop the server skip then.

Nothing here may reach outside loopback: the fixture sets dummy credentials (so the client
never asks instance metadata at 169.254.169.254), AWS_EC2_METADATA_DISABLED, and an explicit
loopback endpoint.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

pytest.importorskip("obstore")
moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")

from llamacache.config.settings import ObjectSettings  # noqa: E402

BUCKET = "llamacache-test"
SECRET = "s3cr3t-TEST-value-never-printed"
ACCESS = "AKIALLAMACACHETEST"
REAL_URL = os.environ.get("LLAMACACHE_TEST_S3_URL")


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path contains ``match`` with an S3 error."""

    match: str
    count: int
    status: str = "503 Slow Down"
    code: str = "SlowDown"


class _Recording:
    """WSGI middleware: records (method, path) of every request the server gets, and answers
    with the S3 errors queued in ``faults`` (throttling, expired credentials)."""

    def __init__(self, app: Any, log: list[tuple[str, str]], faults: list[Fault]) -> None:
        self.app, self.log, self.faults = app, log, faults

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        self.log.append((environ["REQUEST_METHOD"], path))
        signed = re.search(r"Credential=([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        if signed:
            self.log.append(("SIGNED-BY", signed.group(1)))
        where = path + "?" + urllib.parse.unquote(environ.get("QUERY_STRING", ""))
        for fault in self.faults:
            if fault.count > 0 and fault.match in where:
                fault.count -= 1
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                    f"<Message>{fault.code}</Message></Error>"
                ).encode()
                start(fault.status, [("Content-Type", "application/xml")])
                return [body]
        return self.app(environ, start)


class RecordingMotoServer(moto_server.ThreadedMotoServer):  # type: ignore[misc,name-defined]
    """moto's threaded server with a request log (to prove read-only clients never write)."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []

    def _server_entry(self) -> None:
        from moto.moto_server.threaded_moto_server import (  # type: ignore[attr-defined]
            MotoRequestHandler,
        )
        from moto.server import (  # type: ignore[attr-defined]
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = _Recording(
            DomainDispatcherApplication(create_backend_app), self.requests, self.faults
        )
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


@dataclass
class S3:
    """One test's place in the store: settings for machines A and B, and the server."""

    settings: ObjectSettings
    server: RecordingMotoServer | None  # None against a real endpoint
    extra: dict[str, str] = field(default_factory=dict)

    def with_(self, **kw: Any) -> ObjectSettings:
        return replace(self.settings, **kw)

    def requests(self) -> list[tuple[str, str]]:
        prefix = self.settings.url.removeprefix("s3://").split("/", 1)[1]
        assert self.server is not None
        return [(m, p) for m, p in self.server.requests if prefix in p]


_lock = threading.Lock()
_server: RecordingMotoServer | None = None


def _shared_server() -> RecordingMotoServer:
    global _server
    with _lock:
        if _server is None:
            _server = RecordingMotoServer()
            _server.start()
            req = urllib.request.Request(f"{_server.endpoint}/{BUCKET}", method="PUT")
            urllib.request.urlopen(req, timeout=10).close()  # moto: unsigned is fine
        return _server


def loopback_store_env(prefix: str) -> dict[str, str]:
    """Environment variables pointing llamacache (and the client) at the loopback server
    with a fresh prefix (for subprocesses, e.g. the docs' examples)."""
    server = _shared_server()
    return {
        "LLAMACACHE_OBJECT_URL": f"s3://{BUCKET}/{prefix}",
        "LLAMACACHE_OBJECT_ENDPOINT": server.endpoint,
        "LLAMACACHE_OBJECT_REGION": "us-east-1",
        "LLAMACACHE_OBJECT_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """A fresh prefix in the bucket, with loopback-only credentials in the environment."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    if REAL_URL:
        url = REAL_URL.rstrip("/") + "/" + prefix
        settings = ObjectSettings(
            url=url,
            endpoint=os.environ.get("AWS_ENDPOINT_URL"),
            region=os.environ.get("AWS_REGION"),
            path_style=bool(os.environ.get("AWS_ENDPOINT_URL")),
            part_size=1024 * 1024,
            threshold=1024 * 1024,
        )
        yield S3(settings, None)
        return
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    server = _shared_server()
    settings = ObjectSettings(
        url=f"s3://{BUCKET}/{prefix}",
        endpoint=server.endpoint,
        region="us-east-1",
        path_style=True,
        part_size=1024 * 1024,
        threshold=1024 * 1024,
        connect_timeout=1.0,
        reply_timeout=5.0,
    )
    yield S3(settings, server)


@pytest.fixture
def local_s3(s3: S3) -> S3:
    """``s3`` on moto only: for tests that watch or stop the server."""
    if s3.server is None:
        pytest.skip("needs the loopback stand-in server (LLAMACACHE_TEST_S3_URL is set)")
    return s3
