"""A real alphacut server on a free loopback port, for tests that speak real HTTP."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from alphacut.api import create_app
from alphacut.api.server import ServerConfig
from alphacut.config import Settings
from alphacut.service.keys import KeyService
from alphacut.storage.database import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    settings: Settings
    keys: KeyService
    _server: uvicorn.Server
    _thread: threading.Thread

    def new_key(self, stage: str = "test") -> str:
        secret, _key = self.keys.create("test", stage)  # type: ignore[arg-type]
        return secret

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"x-api-key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.keys.db.close()  # the test's own connections (PostgreSQL warns of open ones)


def start_server(settings: Settings, *, wait_for_models: bool = True) -> Server:
    """The app under the configuration `alphacut serve` uses (protocol, limits, logging),
    once its models are loaded (``wait_for_models``)."""
    port = free_port()
    app = create_app(settings)
    config = ServerConfig(
        app, settings, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    if wait_for_models:  # as a balancer would: no request before the models are loaded
        deadline = time.monotonic() + 180
        while httpx.get(f"{url}/readyz").json()["checks"].get("model") == "loading":
            if time.monotonic() > deadline:
                raise RuntimeError("the test server's models did not load")
            time.sleep(0.05)
    db = Database(settings.resolved_database_url)
    return Server(url, settings, KeyService(db), server, thread)


@contextmanager
def file_origin(files: dict[str, bytes]) -> Iterator[str]:
    """A plain HTTP origin on a free loopback port serving ``files`` (path -> bytes, 404
    otherwise), for the URL-fetching tests; yields its ``host:port``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
