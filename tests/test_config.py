"""Settings refused at start-up: waits on a backend that cannot fit in a request's limit, a
presigned URL lifetime past an hour, a public endpoint that is not a URL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alphacut.config import Settings

PG = "postgresql+psycopg://alphacut@127.0.0.1:5432/alphacut"
S3 = "s3://bucket/prefix"


def test_the_defaults_bound_every_backend_wait_inside_a_request() -> None:
    settings = Settings()
    database = (
        settings.database_pool_timeout_seconds
        + settings.database_connect_timeout_seconds
        + settings.database_read_timeout_seconds
    )
    store = settings.blob_max_attempts * (
        settings.blob_connect_timeout_seconds + settings.blob_read_timeout_seconds
    )
    assert database < settings.request_timeout_seconds / 4
    assert store < settings.request_timeout_seconds / 4
    assert settings.readiness_timeout_seconds <= 2
    assert settings.blob_presigned_seconds == 60


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"database_statement_timeout_seconds": 10, "database_read_timeout_seconds": 10},
         "must exceed database_statement_timeout_seconds"),
        ({"request_timeout_seconds": 15, "database_url": PG},
         "must be under request_timeout_seconds"),
        ({"blob_max_attempts": 10, "blob_read_timeout_seconds": 20, "blob_url": S3},
         "blob_max_attempts x"),
        ({"database_connect_timeout_seconds": 1}, "greater than or equal to 2"),
        ({"blob_presigned_seconds": 3601}, "less than or equal to 3600"),
        ({"blob_presigned_endpoint_url": "files.example.com"}, "not an http(s):// URL"),
        ({"blob_presigned_endpoint_url": "https://cdn.example.com/?x=1"}, "no query"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Settings(**values)


def test_an_empty_public_endpoint_means_none() -> None:
    assert Settings(blob_presigned_endpoint_url="").blob_presigned_endpoint_url is None


def test_a_short_request_limit_is_fine_where_no_server_is_waited_on() -> None:
    """SQLite and local files have no backend timeouts to fit (a one-second limit is what
    the deadline tests use); PostgreSQL's and S3's must fit."""
    assert Settings(request_timeout_seconds=1).request_timeout_seconds == 1
    with pytest.raises(ValidationError, match="must be under request_timeout_seconds"):
        Settings(request_timeout_seconds=1, database_url=PG)
    with pytest.raises(ValidationError, match="blob_max_attempts x"):
        Settings(request_timeout_seconds=1, blob_url=S3)


def test_a_blob_url_that_cannot_work_is_refused_without_repeating_it() -> None:
    from alphacut.errors import AlphacutError
    from alphacut.storage.factory import open_blob_store

    for url in ("https://AKIA:hunter2@minio.internal/bucket", "s3://"):
        with pytest.raises(AlphacutError) as refused:
            open_blob_store(Settings(blob_url=url))
        assert "hunter2" not in refused.value.message and "AKIA" not in refused.value.message
