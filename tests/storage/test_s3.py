"""The S3 store without an S3 server: presigned URLs for a public endpoint, and what a store
that does not answer (or answers 5xx) becomes. The rest runs on moto in tests/backends."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from alphacut.config import Settings
from alphacut.errors import BackendUnavailableError
from alphacut.storage.blobs import BlobNotFoundError
from alphacut.storage.factory import BlobUrlError, open_blob_store
from alphacut.storage.s3 import S3BlobStore, S3Timeouts

INTERNAL = "http://10.20.30.40:9000"
KEY = "images/ab/image_abc.jpg"


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's standard settings, as a deployment sets them (signing needs no server)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAALPHACUTEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", INTERNAL)


def _store(**settings: object) -> S3BlobStore:
    store = open_blob_store(Settings(blob_url="s3://photos/pre", **settings))  # type: ignore[arg-type]
    assert isinstance(store, S3BlobStore)
    return store


def test_presigned_urls_name_the_public_endpoint_never_the_internal_one() -> None:
    store = _store(blob_presigned_endpoint_url="https://files.example.com")
    url = store.presigned_url(KEY, 60, "image/jpeg", "inline")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "files.example.com")
    assert parts.path == f"/photos/pre/{KEY}"
    assert "10.20.30.40" not in url
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["60"]
    # The store itself is still reached at the internal endpoint.
    assert store.client.meta.endpoint_url == INTERNAL


def test_without_a_public_endpoint_presigned_urls_name_the_store() -> None:
    assert _store().presigned_url(KEY, 60, "image/jpeg", "inline").startswith(f"{INTERNAL}/")


def test_a_public_endpoint_needs_an_s3_store() -> None:
    with pytest.raises(BlobUrlError, match="needs an s3://"):
        open_blob_store(Settings(blob_presigned_endpoint_url="https://files.example.com"))


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_store_that_never_answers_is_a_503_within_its_waits(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    timeouts = S3Timeouts(
        connect_seconds=1, read_seconds=0.5, max_attempts=2, retry_after_seconds=4
    )
    store = S3BlobStore("photos", timeouts=timeouts)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as raised:
        store.get(KEY)
    assert time.monotonic() - started < 3 * (2 * (1 + 0.5) + 2)
    assert raised.value.status == 503 and raised.value.retry_after == 4


def test_the_settings_reach_botocore() -> None:
    config = _store(
        blob_connect_timeout_seconds=2, blob_read_timeout_seconds=3, blob_max_attempts=4
    ).client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 3)
    assert config.retries["total_max_attempts"] == 4


@pytest.mark.parametrize(
    ("status", "code", "raises"),
    [
        (503, "SlowDown", BackendUnavailableError),
        (500, "InternalError", BackendUnavailableError),
        (404, "NoSuchKey", BlobNotFoundError),
        (403, "AccessDenied", ClientError),  # a setup error: 500, logged, not retried
    ],
)
def test_error_answers_of_the_store(status: int, code: str, raises: type[Exception]) -> None:
    store = _store(retry_after_seconds=4, blob_max_attempts=1)
    with Stubber(store.client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(raises):
            store.get(KEY)
