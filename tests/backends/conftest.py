"""One storage suite, two backends: every test taking ``backend`` runs on SQLite + local
files (the embedded default) and on a real PostgreSQL server + a real S3 API server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from alphacut.config import Settings
from alphacut.storage.blobs import BlobStore
from alphacut.storage.database import Database
from alphacut.storage.factory import open_blob_store
from fleetservers import S3, Postgres, postgres_server, redis_server, s3_server

BACKENDS = ["sqlite+local", "postgresql+s3"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's S3 server; the standard AWS_* settings point boto3 at it for the session (and
    for the `alphacut` subprocesses the tests start)."""
    with s3_server() as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.env().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@dataclass
class Backend:
    name: str
    data_dir: Path
    database_url: str
    blob_url: str | None
    opened: list[Database] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "blob_url": self.blob_url,
            **overrides,
        }
        return Settings(**values)

    def database(self) -> Database:
        db = Database(self.database_url)
        db.migrate()
        self.opened.append(db)  # closed after the test: no connection left to the GC
        return db

    def blobs(self) -> BlobStore:
        return open_blob_store(self.settings())

    def env(self) -> dict[str, str]:
        """The environment of an `alphacut` subprocess on this backend."""
        env = {**os.environ, "ALPHACUT_DATA_DIR": str(self.data_dir)}
        env["ALPHACUT_DATABASE_URL"] = self.database_url
        if self.blob_url:
            env["ALPHACUT_BLOB_URL"] = self.blob_url
        return env


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store (database and blobs) on each backend."""
    if request.param == "sqlite+local":
        made = Backend(request.param, tmp_path, f"sqlite:///{tmp_path / 'alphacut.db'}", None)
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        s3: S3 = request.getfixturevalue("s3")
        blob_url = f"s3://{s3.new_bucket()}/alphacut"
        made = Backend(request.param, tmp_path, postgres.new_database(), blob_url)
    yield made
    for db in made.opened:
        db.close()
