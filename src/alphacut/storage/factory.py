"""The one place a blob store is built from settings (the server, `alphacut doctor`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from alphacut.config import Settings
from alphacut.errors import AlphacutError
from alphacut.storage.blobs import BlobStore, LocalBlobStore


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
            raise BlobUrlError(f"ALPHACUT_BLOB_URL {url!r} names no bucket (s3://bucket/prefix)")
        from alphacut.storage.s3 import S3BlobStore  # boto3 only where S3 is used

        return S3BlobStore(parts.netloc, unquote(parts.path))
    if url and (parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path):
        raise BlobUrlError(
            f"ALPHACUT_BLOB_URL {url!r} is not file:///absolute/path or s3://bucket/prefix"
        )
    if settings.blob_presigned_urls:
        raise BlobUrlError("ALPHACUT_BLOB_PRESIGNED_URLS needs an s3:// ALPHACUT_BLOB_URL")
    root = Path(unquote(parts.path)) if url else settings.data_dir / "blobs"
    return LocalBlobStore(root, min_free_bytes=settings.min_free_bytes)
