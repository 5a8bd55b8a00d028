"""The fleet's broker asks for a password (issue 22, item 15): whoever can reach Redis can
have a worker process any stored image, so the Redis of `scripts/fleet` and of the tests
refuses a client without it (NOAUTH), the fleet works with it, and no log shows it."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from servers import Server


def _raw(host: str, port: int, *command: str) -> bytes:
    """One command in the wire protocol, no AUTH first; the first line of the answer."""
    frame = f"*{len(command)}\r\n" + "".join(f"${len(part)}\r\n{part}\r\n" for part in command)
    with socket.create_connection((host, port), timeout=5) as connection:
        connection.sendall(frame.encode())
        return connection.makefile("rb").readline()


def test_the_broker_refuses_a_client_without_its_password(fleet: Any) -> None:
    parts = urlsplit(fleet.url)
    assert parts.password, "the fleet's broker URL carries its password"
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    # A job pushed straight onto the queue, as an intruder would: refused.
    assert _raw(host, port, "LPUSH", "alphacut", "{}").startswith(b"-NOAUTH")
    assert _raw(host, port, "PING").startswith(b"-NOAUTH")
    assert _raw(host, port, "AUTH", "not-" + parts.password).startswith(b"-WRONGPASS")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=port, password="not-" + parts.password).ping()
    assert redis.Redis.from_url(fleet.url).ping()


def test_the_fleet_works_with_the_password_and_never_logs_it(
    fleet: Any, server: Server, photo: Path
) -> None:
    key = server.new_key()
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=120) as client:
        image = client.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": photo.read_bytes()}
        ).json()
        cut = client.post(f"/v1/images/{image['id']}/remove-background", json={"model": "fast"})
        assert cut.status_code == 201, cut.text
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
    password = urlsplit(fleet.url).password
    assert password and password not in ready.text
    logs = fleet.log_text()
    assert "w0@" in logs, "the workers' logs were read"  # the node names in Celery's banner
    assert password not in logs


@pytest.mark.skipif(
    "ALPHACUT_TEST_FLEET" not in os.environ,
    reason="needs a fleet from scripts/fleet up (make test-fleet)",
)
def test_the_script_fleet_keeps_its_state_private() -> None:
    state = Path(os.environ["ALPHACUT_TEST_FLEET"])
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
