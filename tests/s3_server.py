"""A real S3 HTTP server on localhost for the tests: moto in server mode, as a child process
that a test can kill (SIGKILL, like a store that vanishes) and start again on the same port;
and a proxy in front of it that counts what a client fetched.

moto keeps its buckets in memory: a restarted server is empty, and the test creates the bucket
again, as a store that comes back would have it.
"""

from __future__ import annotations

import http.client
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

#: Why the S3 tests skip, or None when moto's server and boto3 are installed.
MISSING = (
    None
    if importlib.util.find_spec("moto") is not None
    and importlib.util.find_spec("flask") is not None
    and importlib.util.find_spec("boto3") is not None
    else "needs moto[server] and boto3 (pip install -e '.[dev]')"
)

#: Fake credentials and settings that keep boto3 away from any real AWS configuration.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "finemon-test",
    "AWS_SECRET_ACCESS_KEY": "finemon-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/finemon-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/finemon-test-aws-credentials",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the fake credentials for the server at ``endpoint``."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1:``port``; its output goes to ``log_path``."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **AWS_ENV},
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.log_path.read_text()
                    raise RuntimeError(f"moto server did not start: {log}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-request."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> Any:
        return s3_client(self.endpoint)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of ``bucket``: key -> bytes."""
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out


def use_fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for this process and the finemon processes it starts (skips the test
    when moto or boto3 is missing)."""
    if MISSING:
        pytest.skip(MISSING)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def running_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """For a fixture: a moto server with the bucket ``fleet``, killed afterwards."""
    use_fake_aws(monkeypatch)
    server = MotoServer(tmp_path / "moto.log")
    server.start()
    server.create_bucket("fleet")
    try:
        yield server
    finally:
        server.kill()


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """One request that went through a :class:`CountingProxy`."""

    method: str
    path: str  # URL-decoded, without the query string
    query: str
    range: str | None  # the Range header, e.g. ``bytes=100-199``
    response_bytes: int  # of the response's body


class CountingProxy:
    """A plain HTTP proxy in front of a :class:`MotoServer` that records every request and the
    bytes of every response body: what a client really fetched from the store, over the wire.
    Point the client's endpoint at :attr:`endpoint`."""

    def __init__(self, upstream: MotoServer) -> None:
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=60)
                try:
                    connection.request(self.command, self.path, body, dict(self.headers.items()))
                    reply = connection.getresponse()
                    data = reply.read()
                finally:
                    connection.close()
                path, _, query = self.path.partition("?")
                with proxy._lock:
                    proxy.requests.append(
                        ProxiedRequest(
                            self.command, unquote(path), query, self.headers.get("Range"), len(data)
                        )
                    )
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self) -> list[ProxiedRequest]:
        """The GETs of objects (LISTs left out), in the order they came."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and "list-type" not in r.query]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class CountingMotoServer:
    """moto's S3 in this process, on a free port of 127.0.0.1, counting what it serves: the
    requests by method, the object GETs (and those with a ``Range``), and the bytes of every
    response body. :meth:`counted` resets and reads the counters around a block."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: dict[str, int] = {}
        self.object_gets = 0
        self.ranged_gets = 0
        self.objects_fetched: set[str] = set()
        self.response_bytes = 0
        #: Refuse every write (PUT, POST, DELETE) with 403 AccessDenied, as read-only
        #: credentials get; the counters still count them.
        self.read_only = False
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _count(self, app: Any) -> Any:
        def counted(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
            method = str(environ.get("REQUEST_METHOD", ""))
            path = str(environ.get("PATH_INFO", ""))
            is_object = method == "GET" and path.strip("/").count("/") >= 1
            with self._lock:
                self.requests[method] = self.requests.get(method, 0) + 1
                if is_object:
                    self.object_gets += 1
                    self.objects_fetched.add(path)
                    if environ.get("HTTP_RANGE"):
                        self.ranged_gets += 1
            if self.read_only and method in ("PUT", "POST", "DELETE"):
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                yield DENIED
                return
            if method == "POST" and "uploadId=" in str(environ.get("QUERY_STRING", "")):
                yield from self._complete_upload(app, environ, start_response)
                return
            for chunk in app(environ, start_response):
                with self._lock:
                    self.response_bytes += len(chunk)
                yield chunk

        return counted

    def _complete_upload(
        self, app: Any, environ: dict[str, Any], start_response: Any
    ) -> Iterator[bytes]:
        """A CompleteMultipartUpload's response, its root element named as S3 names it: moto
        5.2.1 says ``CompleteMultipartUploadResponse`` (getmoto/moto#10055), which pyarrow
        takes for an error embedded in a 200 (boto3 does not look). pyarrow writes every
        object as a multipart upload, however small."""
        started: list[Any] = []
        body = b"".join(
            app(environ, lambda status, headers, *rest: started.append((status, headers)))
        )
        body = body.replace(b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult")
        status, headers = started[0]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        with self._lock:
            self.response_bytes += len(body)
        yield body

    def start(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        # werkzeug's line per request is not the benchmark's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = self._count(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        with self._lock:
            self.requests = {}
            self.object_gets = self.ranged_gets = self.response_bytes = 0
            self.objects_fetched = set()

    def client(self) -> Any:
        return s3_client(self.endpoint)
