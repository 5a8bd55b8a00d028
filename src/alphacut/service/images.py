"""Images of the IMG Processing-compatible API: stored, transformed, published, deleted.

Integrity: an image's file is written completely (temp file, fsync, rename) before its row
is committed, and removed again if the commit fails; deleting removes the row first (so
the image is gone for every reader at once), then the file. Every operation makes a new
image and leaves its source untouched.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from alphacut.config import Settings
from alphacut.engine.compose import transparent
from alphacut.engine.decode import (
    PHOTO_FORMATS,
    WEB_FORMATS,
    DecodedImage,
    Limits,
    decode,
    probe_size,
    sniff,
)
from alphacut.engine.encode import encode_image
from alphacut.engine.formats import FORMATS, OutputFormat, parse_format
from alphacut.engine.metadata import strip_metadata
from alphacut.engine.operations import Operation, OperationContext
from alphacut.errors import InvalidInputError, NotFoundError, QuotaExceededError
from alphacut.service.fetcher import UrlFetcher
from alphacut.service.ids import new_image_id, new_public_token
from alphacut.service.memory import Cost, operation_cost
from alphacut.service.work import WorkQueue, checkpoint
from alphacut.storage.blobs import BlobNotFoundError, BlobStore, put_with_row
from alphacut.storage.database import Database, ImageRecord, Page, utcnow

# The IMG Processing API's quality for JPEG and (lossy) WebP when none is asked for.
DEFAULT_QUALITY = 90
# A HEIC or AVIF upload's JPEG: the original that later operations read (see _converted).
CONVERTED_QUALITY = 95


def said(image_id: str | None) -> str:
    """An id as a caller sent it, quoted for a message: at most 64 characters (every id
    alphacut makes is shorter), so a 404 never echoes a long string back."""
    text = str(image_id)
    return repr(text if len(text) <= 64 else text[:64] + "...")


class ImageService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        image_queue: WorkQueue,
        fetcher: UrlFetcher | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.image_queue = image_queue
        self.fetcher = fetcher or UrlFetcher(settings)
        self.limits = Limits(settings.max_input_bytes, settings.max_input_pixels, PHOTO_FORMATS)

    # Creation ---------------------------------------------------------------------------

    def create(self, key_id: str, name: str, data: bytes) -> ImageRecord:
        """Store uploaded bytes once they decode as a supported image: JPEG, PNG and WebP
        without their metadata (the pixels untouched), or as they are with ``keep_metadata``;
        HEIC and AVIF converted (:meth:`_converted`)."""
        fmt = sniff(data[:64], PHOTO_FORMATS)
        probed = probe_size(data, fmt)
        pixels = probed[0] * probed[1] if probed else 0
        # Over the pixel limit: the decoder refuses it from the header, naming the limit.
        costed = 0 < pixels <= self.limits.max_pixels
        if fmt not in WEB_FORMATS:
            cost = operation_cost("convert", pixels, pixels) if costed else None
            (width, height), stored, fmt = self.image_queue.run(
                lambda: self._converted(data), cost=cost
            )
            return self.store(key_id, name, fmt, width, height, stored)

        def work() -> tuple[tuple[int, int], bytes]:
            decoded = decode(data, self.limits)
            if self.settings.keep_metadata:
                return decoded.image.size, data
            return decoded.image.size, strip_metadata(data, fmt, orientation=decoded.orientation)

        cost = operation_cost("decode", pixels, 0) if costed else None
        (width, height), stored = self.image_queue.run(work, cost=cost)
        return self.store(key_id, name, fmt, width, height, stored)

    def _converted(self, data: bytes) -> tuple[tuple[int, int], bytes, OutputFormat]:
        """A HEIC or AVIF photo as an original the images API can serve (its clients expect
        png, jpeg or webp): upright, in its colour profile, JPEG at quality 95 (a phone's
        photo is lossy already; 95 adds no visible loss to what later operations read) or
        PNG where it is transparent. Its other metadata is not kept, ``keep_metadata`` or not:
        a re-encoded file has no original bytes to keep."""
        decoded = decode(data, self.limits)
        image = decoded.image
        transparent_pixels = (
            image.mode == "RGBA" and int(np.asarray(image.getchannel("A")).min()) < 255
        )
        fmt: OutputFormat = "png" if transparent_pixels else "jpeg"
        if fmt == "jpeg" and image.mode == "RGBA":
            image = image.convert("RGB")
        quality = CONVERTED_QUALITY if fmt == "jpeg" else None
        return image.size, self._encode(image, fmt, quality, decoded.icc_profile), fmt

    def create_from_url(self, key_id: str, name: str, url: str) -> ImageRecord:
        data = self.fetcher.fetch(url, self.settings.max_upload_bytes)
        return self.create(key_id, name, data)

    def store(
        self,
        key_id: str,
        name: str,
        fmt: str,
        width: int,
        height: int,
        data: bytes,
        *,
        confidence: float | None = None,
    ) -> ImageRecord:
        """A new image of the key's from encoded ``data`` (checked against its quota);
        ``confidence``: a cut-out's estimated IoU, kept with it."""
        image_id = new_image_id()
        record = ImageRecord(
            id=image_id,
            key_id=key_id,
            name=name,
            format=fmt,
            width=width,
            height=height,
            size=len(data),
            blob_key=f"images/{image_id[6:8]}/{image_id}.{FORMATS[parse_format(fmt)].extension}",
            public_token=None,
            created_at=utcnow(),
            confidence=confidence,
        )
        self._check_quota(key_id, len(data))
        # 507 on a full disk or under the threshold
        put_with_row(self.blobs, record.blob_key, data, lambda: self.db.add_image(record))
        return record

    def _check_quota(self, key_id: str, size: int) -> None:
        """``ALPHACUT_MAX_STORED_BYTES_PER_KEY``: a soft limit (two writes racing may both
        pass it, by one image each)."""
        quota = self.settings.max_stored_bytes_per_key
        if quota is None:
            return
        used = self.db.stored_bytes(key_id)
        if used + size > quota:
            raise QuotaExceededError(
                f"storage quota exceeded: this key stores {used:,} bytes of images and may "
                f"store {quota:,}; this image needs {size:,} more. Delete images to make room"
            )

    # Access -----------------------------------------------------------------------------

    def get(self, key_id: str, image_id: str) -> ImageRecord:
        record = self.db.image(key_id, image_id)
        if record is None:
            raise NotFoundError(f"image {said(image_id)} not found")
        return record

    def read(self, record: ImageRecord) -> bytes:
        """The image's bytes; 404 if it was deleted since ``record`` was read (work queued on
        an image that is then deleted ends here)."""
        try:
            return self.blobs.get(record.blob_key)
        except BlobNotFoundError:
            raise NotFoundError(f"image {said(record.id)} not found: it was deleted") from None

    def page(self, key_id: str, take: int, from_id: str | None) -> Page:
        page = self.db.page(key_id, take, from_id)
        if page is None:
            raise InvalidInputError(f"from: {said(from_id)} is not the id of one of your images")
        return page

    def delete(self, key_id: str, image_id: str) -> None:
        record = self.db.delete_image(key_id, image_id)
        if record is None:
            raise NotFoundError(f"image {said(image_id)} not found")
        self.blobs.delete(record.blob_key)

    def publish(self, key_id: str, image_id: str) -> ImageRecord:
        """Idempotent and atomic: every publish of an image answers the same live URL."""
        published = self.db.publish(key_id, image_id, new_public_token())
        if published is None:
            raise NotFoundError(f"image {said(image_id)} not found")
        return published

    def unpublish(self, key_id: str, image_id: str) -> ImageRecord:
        record = self.db.unpublish(key_id, image_id)
        if record is None:
            raise NotFoundError(f"image {said(image_id)} not found")
        return record

    def published(self, token: str) -> ImageRecord:
        record = self.db.image_by_token(token) if token else None
        if record is None:
            raise NotFoundError("no published image at this address")
        return record

    # Operations -------------------------------------------------------------------------

    def load(self, record: ImageRecord) -> DecodedImage:
        return decode(self.read(record), self.limits)

    def apply(
        self,
        key_id: str,
        image_id: str,
        name: str | None,
        operation: Operation,
        *,
        output_format: OutputFormat | Literal["auto"] | None = None,
        quality: int | None = None,
    ) -> ImageRecord:
        """Decode the source, run ``operation`` on a worker and store the result as a new
        image, in ``output_format`` (default: the source's format; ``auto``: PNG where the
        result has transparency, else JPEG, as remove.bg's ``format=auto``). The job is costed
        from the source's size and what the operation says it makes before anything is
        decoded (see :mod:`alphacut.service.memory`)."""
        source = self.get(key_id, image_id)
        wanted = output_format or parse_format(source.format)
        fmt: OutputFormat = "png" if wanted == "auto" else wanted
        size = (source.width, source.height)
        limit = self.settings.max_input_pixels
        out = operation.out_size(size, limit)
        cost = operation_cost(
            operation.name, size[0] * size[1], out[0] * out[1], operation.extra_bytes(size, limit)
        )
        cost = Cost(cost.bytes, cost.seconds * operation.steps())
        context = OperationContext(
            fmt, limit, load=lambda other: self._other(key_id, other), step=checkpoint
        )

        def work() -> tuple[bytes, OutputFormat, tuple[int, int]]:
            decoded = self.load(source)
            checkpoint()
            image = operation.apply(decoded.image, context)
            checkpoint()
            made = fmt
            if wanted == "auto" and not transparent(image):
                made = "jpeg"
            return self._encode(image, made, quality, decoded.icc_profile), made, image.size

        data, made, (width, height) = self.image_queue.run(work, cost=cost)
        return self.store(key_id, name or source.name, made, width, height, data)

    def _other(self, key_id: str, image_id: str) -> Image.Image:
        """Another image of the key's, decoded (a watermark), when the operation runs."""
        try:
            record = self.get(key_id, image_id)
        except NotFoundError:
            raise NotFoundError(f"image {image_id!r} not found: it was deleted") from None
        return self.load(record).image

    def _encode(
        self, image: Image.Image, fmt: OutputFormat, quality: int | None, icc: bytes | None
    ) -> bytes:
        return encode_image(
            image,
            fmt,
            quality=DEFAULT_QUALITY if quality is None and fmt != "png" else quality,
            icc_profile=icc,
            png_level=self.settings.png_compress_level,
            threads=self.settings.image_threads,
        )
