"""The one place the stores are built from settings (the server, the workers, `alphacut
doctor`): the blob store and the service's database, each with its waits bounded."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from alphacut.config import Settings
from alphacut.errors import AlphacutError
from alphacut.storage.blobs import BlobStore, LocalBlobStore
from alphacut.storage.database import Database, DatabaseTimeouts


class BlobUrlError(AlphacutError):
    """``ALPHACUT_BLOB_URL`` (or a setting that depends on it) cannot be used."""


def open_blob_store(settings: Settings) -> BlobStore:
    """The store ``ALPHACUT_BLOB_URL`` names: ``file:///path``, ``s3://bucket/prefix``, or
    (unset) local files under ``DATA_DIR/blobs``. Only local disks have a free-space
    threshold (``ALPHACUT_MIN_FREE_BYTES``); presigned URLs need S3."""
    url = settings.blob_url
    parts = urlsplit(url or "")
    if url and parts.scheme == "s3":
        if not parts.netloc:
            raise BlobUrlError("ALPHACUT_BLOB_URL names no bucket (s3://bucket/prefix)")
        from alphacut.storage.s3 import S3BlobStore, S3Timeouts  # boto3 only where S3 is used

        timeouts = S3Timeouts(
            connect_seconds=settings.blob_connect_timeout_seconds,
            read_seconds=settings.blob_read_timeout_seconds,
            max_attempts=settings.blob_max_attempts,
            retry_after_seconds=settings.retry_after_seconds,
        )
        return S3BlobStore(
            parts.netloc,
            unquote(parts.path),
            timeouts=timeouts,
            presign_endpoint_url=settings.blob_presigned_endpoint_url,
        )
    if url and (parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path):
        raise BlobUrlError(
            f"ALPHACUT_BLOB_URL ({parts.scheme or 'no'} scheme) is not file:///absolute/path or "
            "s3://bucket/prefix (the URL is not repeated: it may hold a password)"
        )
    if settings.blob_presigned_urls:
        raise BlobUrlError("ALPHACUT_BLOB_PRESIGNED_URLS needs an s3:// ALPHACUT_BLOB_URL")
    if settings.blob_presigned_endpoint_url:
        raise BlobUrlError("ALPHACUT_BLOB_PRESIGNED_ENDPOINT_URL needs an s3:// ALPHACUT_BLOB_URL")
    root = Path(unquote(parts.path)) if url else settings.data_dir / "blobs"
    return LocalBlobStore(root, min_free_bytes=settings.min_free_bytes)


def open_database(settings: Settings) -> Database:
    """The service's database, every wait for it bounded by the settings (a backend that
    does not answer: 503 + Retry-After, docs/operations.md)."""
    timeouts = DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
        read_seconds=settings.database_read_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        retry_after_seconds=settings.retry_after_seconds,
    )
    return Database(settings.resolved_database_url, timeouts)
