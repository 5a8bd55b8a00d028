"""Fixtures: one real server per test session (per distinct settings); every test gets its
own fresh API key, so tests cannot see each other's images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server


@pytest.fixture
def key(server: Server) -> str:
    return server.new_key()


@pytest.fixture
def api(server: Server, key: str) -> Iterator[httpx.Client]:
    with server.client(key) as client:
        yield client


@pytest.fixture
def upload(api: httpx.Client, photo: Path) -> Callable[..., dict[str, Any]]:
    """Upload a file (default: the car photo) and return its Image object."""

    def do(
        path: Path | None = None, name: str = "photo", data: bytes | None = None
    ) -> dict[str, Any]:
        content = data if data is not None else (path or photo).read_bytes()
        response = api.post(
            "/v1/images/upload", data={"name": name}, files={"image": ("x", content)}
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    return do
