"""The service's database waits: PostgreSQL gets libpq's bounds (what the URL sets itself
wins), SQLite only the pool's. The stalls themselves are in tests/backends/test_stalls.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from alphacut.config import Settings
from alphacut.errors import BackendUnavailableError
from alphacut.storage.database import DatabaseTimeouts
from alphacut.storage.factory import open_database
from alphacut.storage.postgres import connect_args

TIMEOUTS = DatabaseTimeouts(
    connect_seconds=3, statement_seconds=1.5, read_seconds=4.0, pool_seconds=2.0,
    retry_after_seconds=7,
)  # fmt: skip


def test_postgres_gets_every_bound() -> None:
    args = connect_args(make_url("postgresql+psycopg://u@db/app"), TIMEOUTS)
    assert args == {
        "connect_timeout": 3,
        "options": "-c statement_timeout=1500",
        "keepalives": 1,
        "keepalives_idle": 2,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": 4000,
    }


def test_what_the_url_sets_wins() -> None:
    url = make_url(
        "postgresql+psycopg://u@db/app?connect_timeout=30&options=-c%20search_path%3Dx&keepalives=0"
    )
    args = connect_args(url, TIMEOUTS)
    assert "connect_timeout" not in args and "keepalives" not in args
    assert args["options"] == "-c search_path=x -c statement_timeout=1500"
    own = make_url("postgresql+psycopg://u@db/app?options=-c%20statement_timeout%3D0")
    assert "options" not in connect_args(own, TIMEOUTS)


def test_sqlite_gets_the_pool_wait_and_nothing_of_postgresql(tmp_path: Path) -> None:
    """A PostgreSQL option handed to sqlite3.connect would fail the first connection."""
    db = open_database(Settings(data_dir=tmp_path, database_pool_timeout_seconds=2.5))
    try:
        db.prepare()
        assert db.engine.pool.timeout() == 2.5  # type: ignore[attr-defined]
        with db.session() as session:
            assert session.scalar(text("pragma busy_timeout")) == 10000  # as before
    finally:
        db.close()


def test_a_database_that_cannot_be_reached_is_a_503(tmp_path: Path) -> None:
    """Nothing listens on port 9 (discard) of loopback: refused, at once."""
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://u@127.0.0.1:9/app",
        retry_after_seconds=7,
    )
    db = open_database(settings)
    try:
        with pytest.raises(BackendUnavailableError) as raised:
            db.ping()
    finally:
        db.close()
    assert raised.value.status == 503 and raised.value.retry_after == 7
    assert raised.value.code == "backend_unavailable"
