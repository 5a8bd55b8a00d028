"""What runs around the app (alphacut.api.server): the request-head deadline, redaction of
credentials in logs, and the web page's key for each running server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from alphacut.api.server import PageKey, redact
from alphacut.service.keys import KeyService
from alphacut.storage.database import Database
from servers import Server

HEAD = b"GET /healthz HTTP/1.1\r\nHost: a\r\n"


@pytest.fixture(scope="module")
def impatient(make_server: Callable[..., Server]) -> Server:
    return make_server(header_timeout_seconds=1)


@pytest.mark.parametrize(
    ("sent", "drip", "answer"),
    [
        (b"", False, b""),  # connects and says nothing
        (HEAD, True, b"HTTP/1.1 408 "),  # a request head, one byte at a time, never finished
        (HEAD + b"\r\n" + HEAD, True, b"HTTP/1.1 200 OK"),  # the same, on a kept-alive connection
    ],
    ids=["silent", "dripping-head", "dripping-after-a-request"],
)
def test_a_slow_request_head_is_cut_off(
    impatient: Server, sent: bytes, drip: bool, answer: bytes
) -> None:
    """The header timeout is 1 s here; a byte every 0.2 s does not extend it, and other
    requests are answered meanwhile."""
    port = int(impatient.url.rsplit(":", 1)[1])
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as slow:
        slow.sendall(sent)
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 15:
            try:
                chunk = slow.recv(65536)
                received += chunk
                closed = not chunk
            except TimeoutError:
                try:
                    if drip:
                        slow.sendall(b"x")
                except OSError:
                    closed = True
            except OSError:
                closed = True
            if time.monotonic() - started < 0.5:
                assert httpx.get(f"{impatient.url}/healthz", timeout=5).status_code == 200
        elapsed = time.monotonic() - started
    assert closed, f"still open after {elapsed:.1f} s"
    assert elapsed < 10
    assert received.startswith(answer)
    if drip:
        assert b"408 Request Timeout" in received


def test_a_prompt_client_keeps_its_connection(impatient: Server) -> None:
    with httpx.Client(base_url=impatient.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/p/Abc_-d9XyZ0123456789abcdefghijklmnopqrstuv", "/p/Abc_…"),
        ("/results/0123456789abcdef0123456789abcdef0123456789abcdef.png", "/results/0123…"),
        ("/results/0123456789abcdef.png?x=1", "/results/0123…?x=1"),
        (
            '127.0.0.1:5 - "GET /p/secretsecret HTTP/1.1" 404',
            '127.0.0.1:5 - "GET /p/secr… HTTP/1.1" 404',
        ),
        ("/p/abc", "/p/abc"),  # too short to be a token: nothing to hide
        ("/v1/images/image_abc/publish", "/v1/images/image_abc/publish"),
        ("/docs", "/docs"),
    ],
)
def test_tokens_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def _keys(data_dir: Path) -> KeyService:
    db = Database(f"sqlite:///{data_dir / 'alphacut.db'}")
    db.migrate()
    return KeyService(db)


def test_each_server_has_its_own_page_key(tmp_path: Path) -> None:
    """Servers on two ports may share a data directory: starting one leaves the other's key
    alone; stopping one revokes its own."""
    keys = _keys(tmp_path)
    first = PageKey.start(keys, tmp_path, "127.0.0.1:8000")
    second = PageKey.start(keys, tmp_path, "127.0.0.1:8001")
    assert keys.authenticate(first.secret) and keys.authenticate(second.secret)
    second.close()
    assert keys.authenticate(second.secret) is None
    assert keys.authenticate(first.secret) is not None
    first.close()
    assert keys.authenticate(first.secret) is None
    assert list((tmp_path / "run").iterdir()) == []


def test_a_dead_servers_page_key_is_revoked_at_the_next_start(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    crashed = PageKey.start(keys, tmp_path, "127.0.0.1:8000")
    assert crashed._fd is not None
    os.close(crashed._fd)  # as the kernel does when the process dies: the lock is let go
    legacy, _ = keys.create("local web page", "test")  # handed out over HTTP by older versions
    chosen, _ = keys.create("web page for the office", "test")  # an operator's own key
    running = PageKey.start(keys, tmp_path, "127.0.0.1:8000")
    assert keys.authenticate(crashed.secret) is None
    assert keys.authenticate(legacy) is None
    assert keys.authenticate(chosen) is not None
    assert keys.authenticate(running.secret) is not None
    running.close()
