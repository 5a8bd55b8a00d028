"""Image files in a bucket of any S3-compatible store (AWS S3, MinIO, Ceph, R2, moto...).

The endpoint, region and credentials are boto3's own standard settings (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an
instance role...): alphacut adds none of its own, so whatever already configures the AWS CLI
configures alphacut too.

One PUT stores an object whole or not at all, so there are no temp files to clean up; files
are at most a few tens of MB, so alphacut never starts a multipart upload (and never has one
to abort). Free space is the store's business: no 507 from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from alphacut.errors import BackendUnavailableError
from alphacut.storage.blobs import BlobNotFoundError, _is_key, check_key

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


@dataclass(frozen=True)
class S3Timeouts:
    """Bounds on every request to the store (``ALPHACUT_BLOB_*``): connecting and each read,
    per try, and the tries (botocore's standard retry mode: transient errors and throttling,
    with a backoff under a second or two between tries). A store that does not answer within
    them: 503 + ``retry_after_seconds``."""

    connect_seconds: float
    read_seconds: float
    max_attempts: int
    retry_after_seconds: int


# For a store opened without settings (tests, scripts): botocore's own defaults, which wait
# minutes on a store that does not answer (60 s per read, 3 tries).
BOTOCORE_DEFAULTS = S3Timeouts(
    connect_seconds=60, read_seconds=60, max_attempts=3, retry_after_seconds=5
)


class S3BlobStore:
    """Objects ``<prefix><key>`` in ``bucket``. Objects under the prefix that are not named
    like keys are unknown entries; ``quarantine`` moves them to ``<prefix>-quarantine/``
    (``alphacut-quarantine/`` when the store has the whole bucket), which is never scanned."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        page_size: int = 1000,
        timeouts: S3Timeouts = BOTOCORE_DEFAULTS,
        presign_endpoint_url: str | None = None,
    ) -> None:
        """``presign_endpoint_url``: the base of presigned URLs (a public proxy or CDN in
        front of the store) instead of the endpoint alphacut itself talks to."""
        self.bucket = bucket
        self.page_size = page_size  # objects per LIST request (S3's most: 1000)
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        quarantine = self.prefix.rstrip("/") or "alphacut"
        self.quarantine_prefix = f"{quarantine}-quarantine/"
        self.timeouts = timeouts
        config = Config(
            signature_version="s3v4",
            # Path-style requests work with every S3-compatible server (an IP endpoint
            # like moto's or MinIO's has no virtual hosts); AWS accepts them too.
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "total_max_attempts": timeouts.max_attempts},
            connect_timeout=timeouts.connect_seconds,
            read_timeout=timeouts.read_seconds,
            max_pool_connections=64,  # the client is shared by every worker thread
        )
        self.client = client or boto3.client("s3", config=config)
        # Presigning is local (no request): a second client that only signs, for the public
        # endpoint, so that the internal one never appears in a URL handed out.
        self._signer = (
            boto3.client("s3", endpoint_url=presign_endpoint_url, config=config)
            if presign_endpoint_url
            else self.client
        )

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """A store that does not answer in time (after the tries), cannot be reached, or
        answers 5xx: :class:`BackendUnavailableError` (503 + Retry-After)."""
        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:  # timeouts, refused, dropped
            raise self._unavailable(exc) from exc
        except ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) < 500:
                raise
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> BackendUnavailableError:
        log.warning("the blob store did not answer: %s: %s", type(exc).__name__, exc)
        retry = self.timeouts.retry_after_seconds
        return BackendUnavailableError(
            f"the file store is not answering; retry in {retry} s", retry
        )

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        with self._answering():
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def get(self, key: str) -> bytes:
        name = self._name(key)
        with self._answering():
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _missing(exc):
                    raise BlobNotFoundError(key) from None
                raise
            body: bytes = answer["Body"].read()  # each read bounded too (not retried)
        return body

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._answering():
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def _head(self, key: str) -> dict[str, Any] | None:
        name = self._name(key)
        with self._answering():
            try:
                head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise
        return head

    def exists(self, key: str) -> bool:
        try:
            return self._head(key) is not None
        except ValueError:
            return False

    def _names(self) -> Iterator[tuple[str, datetime]]:
        """Every object under the prefix (relative name, last modified), page by page."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,
            PaginationConfig={"PageSize": self.page_size},
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.prefix) :]
                if self.prefix or not name.startswith(self.quarantine_prefix):
                    yield name, item["LastModified"]

    def stored_keys(self) -> Iterator[str]:
        return (name for name, _ in self._names() if _is_key(name))

    def age(self, key: str) -> float:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(key)
        modified: datetime = head["LastModified"]
        return (datetime.now(UTC) - modified).total_seconds()

    def remove_temp_files(self, older_than: float, *, dry_run: bool = False) -> int:
        return 0  # a PUT is atomic: an interrupted one leaves nothing behind

    def unknown_entries(self) -> list[str]:
        return sorted(name for name, _ in self._names() if not _is_key(name))

    def quarantine(self, entry: str) -> str:
        source = self.prefix + entry
        target = self.quarantine_prefix + entry
        for n in range(1, 1000):
            if not self._object_exists(target):
                break
            target = f"{self.quarantine_prefix}{entry}.{n}"
        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
            )
            self.client.delete_object(Bucket=self.bucket, Key=source)
        except ClientError as exc:  # the doctor reports it as "could not be moved"
            raise OSError(str(exc.response.get("Error", {}).get("Code", "error"))) from exc
        return f"s3://{self.bucket}/{target}"

    def _object_exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def free_bytes(self) -> int | None:
        return None

    def check(self) -> str | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            return f"bucket not reachable ({code})"
        except BotoCoreError as exc:
            return f"store not reachable ({type(exc).__name__})"
        return None

    def presigned_url(self, key: str, seconds: int, media_type: str, disposition: str) -> str:
        url: str = self._signer.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._name(key),
                "ResponseContentType": media_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=seconds,
        )
        return url
