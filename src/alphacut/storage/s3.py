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

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from alphacut.storage.blobs import BlobNotFoundError, _is_key, check_key

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


class S3BlobStore:
    """Objects ``<prefix><key>`` in ``bucket``. Objects under the prefix that are not named
    like keys are unknown entries; ``quarantine`` moves them to ``<prefix>-quarantine/``
    (``alphacut-quarantine/`` when the store has the whole bucket), which is never scanned."""

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, page_size: int = 1000
    ) -> None:
        self.bucket = bucket
        self.page_size = page_size  # objects per LIST request (S3's most: 1000)
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        quarantine = self.prefix.rstrip("/") or "alphacut"
        self.quarantine_prefix = f"{quarantine}-quarantine/"
        self.client = client or boto3.client(
            "s3",
            config=Config(
                signature_version="s3v4",
                # Path-style requests work with every S3-compatible server (an IP endpoint
                # like moto's or MinIO's has no virtual hosts); AWS accepts them too.
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=64,  # the client is shared by every worker thread
            ),
        )

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFoundError(key) from None
            raise
        body: bytes = answer["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
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
        url: str = self.client.generate_presigned_url(
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
