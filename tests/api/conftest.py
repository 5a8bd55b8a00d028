"""Fixtures: one real server per test session (per distinct settings); every test gets its
own fresh API key, so tests cannot see each other's images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alphacut.config import Settings
from servers import Server, start_server

ServerFactory = Callable[..., Server]


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    started: list[Server] = []

    def make(**overrides: object) -> Server:
        data_dir = tmp_path_factory.mktemp("alphacut-data")
        server = start_server(Settings(data_dir=data_dir, **overrides))  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(make_server: ServerFactory) -> Server:
    return make_server()


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
