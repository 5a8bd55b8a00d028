"""Batches of the Ximilar Remove Background API: records in, records with output URLs out.

Each record brings its image as ``_url`` or ``_base64`` (plain, or a ``data:image/...;base64,``
URI) and any other fields, which come back unchanged (``_base64`` is not echoed: it would
double the response for nothing). Options (``binary_mask``, ``white_background``,
``image_format``, ``image_quality``) apply from the top level and can be overridden per
record. A record that fails (unreachable or refused URL, bad base64, not an image, too large)
gets its own 4xx ``_status`` and does not affect the others.

Records are processed concurrently: fetching, decoding and encoding overlap freely, while the
models run through the bounded inference queue, so a batch never takes more of the engine
than its capacity.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from alphacut.config import Settings
from alphacut.engine.encode import OutputFormat, parse_format
from alphacut.errors import (
    AlphacutError,
    ImageTooLargeError,
    InvalidInputError,
    ProcessingTimeoutError,
    ServiceBusyError,
)
from alphacut.models.registry import is_model_name, model_choices
from alphacut.service.fetcher import UrlFetcher
from alphacut.service.inference import Inference, InferenceJob, OutputSpec
from alphacut.service.results import ResultStore

log = logging.getLogger(__name__)
_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")
OPTION_NAMES = ("binary_mask", "white_background", "image_format", "image_quality")
DEFAULT_QUALITY = 85
_FORMATS = ("png", "jpg", "jpeg", "webp")


@dataclass(frozen=True)
class Options:
    binary_mask: bool = False
    white_background: bool = False
    image_format: OutputFormat | None = None  # None: "auto" (PNG cut-out, JPEG mask/white)
    image_quality: int = DEFAULT_QUALITY

    @classmethod
    def parse(cls, source: Mapping[str, Any], base: Options | None = None) -> Options:
        """Options from a request or record; ``base`` supplies what ``source`` leaves out."""
        base = base or cls()
        values: dict[str, Any] = {}
        for flag in ("binary_mask", "white_background"):
            if flag in source:
                if not isinstance(source[flag], bool):
                    raise InvalidInputError(f"{flag} must be true or false")
                values[flag] = source[flag]
        requested = source.get("image_format")
        if requested not in (None, "auto"):
            if not isinstance(requested, str) or requested.lower() not in _FORMATS:
                raise InvalidInputError("image_format must be png, jpg or webp")
            values["image_format"] = parse_format(requested)
        if "image_quality" in source:
            quality = source["image_quality"]
            if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
                raise InvalidInputError("image_quality must be an integer from 1 to 100")
            values["image_quality"] = quality
        merged = {name: getattr(base, name) for name in OPTION_NAMES} | values
        return cls(**merged)


def decode_base64(value: object, max_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidInputError("_base64 must be a string")
    if len(value) > (max_bytes * 4) // 3 + 200:
        raise ImageTooLargeError(f"the image is larger than the limit of {max_bytes:,} bytes")
    payload = _WHITESPACE.sub(b"", _DATA_URI.sub("", value, count=1).encode("ascii", "replace"))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("_base64 is not valid base64 data") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the image is larger than the limit of {max_bytes:,} bytes")
    return data


def _status(code: int, request_id: str, description: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"code": code, "text": HTTPStatus(code).phrase}
    if description:
        status["error_description"] = description
    status["request_id"] = request_id
    return status


@dataclass
class BatchResult:
    body: dict[str, Any]
    processed: int


class RemoveBgService:
    def __init__(
        self,
        settings: Settings,
        results: ResultStore,
        inference: Inference,
        fetcher: UrlFetcher | None = None,
    ) -> None:
        self.settings = settings
        self.results = results
        self.inference = inference
        self.fetcher = fetcher or UrlFetcher(settings)

    def check_request(self, body: Any) -> tuple[list[dict[str, Any]], Options]:
        """The records and top-level options, or :class:`InvalidInputError` (HTTP 400)."""
        if not isinstance(body, dict):
            raise InvalidInputError("the request body must be a JSON object with records")
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise InvalidInputError("records must be a non-empty list of objects")
        limit = self.settings.removebg_max_records
        if len(records) > limit:
            raise InvalidInputError(f"too many records: {len(records)}; at most {limit}")
        if not all(isinstance(record, dict) for record in records):
            raise InvalidInputError("every record must be a JSON object")
        return records, Options.parse(body)

    def run(
        self,
        key_id: str,
        model: str,
        body: Any,
        url_for: Callable[[str, str], str],
        *,
        deadline: float | None = None,
    ) -> BatchResult:
        """``deadline`` (``time.monotonic()``): when the batch must be answered (default:
        ``ALPHACUT_REQUEST_TIMEOUT_SECONDS`` from now). A record admitted with its batch waits
        for a model slot, but never past it: one that cannot start in time fails with 504."""
        started = time.perf_counter()
        if deadline is None:
            deadline = time.monotonic() + self.settings.request_timeout_seconds
        records, options = self.check_request(body)
        chosen = body.get("model") if isinstance(body, dict) else None
        if chosen is not None:  # alphacut's extension: any installed model, over the path's
            if not is_model_name(chosen):
                raise InvalidInputError(f"unknown model; choose one of: {model_choices()}")
            model = chosen
        if self.inference.busy():
            retry = self.settings.retry_after_seconds
            raise ServiceBusyError(f"the server is busy; retry in {retry} s", retry)
        request_id = str(uuid.uuid4())
        workers = min(len(records), max(2, 2 * self.settings.inference_workers))
        with ThreadPoolExecutor(workers, thread_name_prefix="alphacut-batch") as pool:
            answered = list(
                pool.map(
                    lambda record: self._record(
                        record, options, key_id, model, request_id, url_for, deadline
                    ),
                    records,
                )
            )
        processed = sum(1 for record in answered if record["_status"]["code"] == 200)
        body_out = {
            "records": answered,
            "status": {
                "code": 200,
                "text": "OK",
                "request_id": request_id,
                "proc_id": str(uuid.uuid4()),
            },
            "statistics": {"processing time": time.perf_counter() - started},
        }
        return BatchResult(body_out, processed)

    def _record(
        self,
        record: dict[str, Any],
        defaults: Options,
        key_id: str,
        model: str,
        request_id: str,
        url_for: Callable[[str, str], str],
        deadline: float,
    ) -> dict[str, Any]:
        answer = {name: value for name, value in record.items() if name != "_base64"}
        answer["_id"] = record.get("_id") or str(uuid.uuid4())
        try:
            options = Options.parse(record, defaults)
            names, specs = _outputs_for(options)
            data = self._image_bytes(record)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProcessingTimeoutError(
                    "the batch ran past the time limit before this record could start"
                )
            job = InferenceJob(
                model=model,
                data=data,
                outputs=specs,
                queue_wait=left,
                timeout=left,
                key_id=key_id,
            )
            try:
                result = self.inference.submit(job)
            except ServiceBusyError:
                if time.monotonic() < deadline:
                    raise
                raise ProcessingTimeoutError(  # waited for a slot until the deadline
                    "the batch ran past the time limit before this record could start"
                ) from None
            for name, spec, data in zip(names, specs, result.outputs, strict=True):
                answer[name] = self._save(key_id, data, spec.format, url_for)
            answer["_status"] = _status(200, request_id)
            answer["_width"], answer["_height"] = result.width, result.height
        except AlphacutError as exc:
            answer["_status"] = _status(exc.status, request_id, exc.message)
        except Exception:
            log.exception("record %s failed", answer["_id"])
            answer["_status"] = _status(500, request_id, "an internal error occurred")
        return answer

    def _image_bytes(self, record: Mapping[str, Any]) -> bytes:
        limit = self.settings.max_input_bytes
        if record.get("_base64") is not None:
            return decode_base64(record["_base64"], limit)
        url = record.get("_url")
        if isinstance(url, str) and url:
            return self.fetcher.fetch(url, limit)
        raise InvalidInputError("the record needs an image: _url or _base64")

    def _save(
        self, key_id: str, data: bytes, fmt: OutputFormat, url_for: Callable[[str, str], str]
    ) -> str:
        record = self.results.save(key_id, data, fmt)
        return url_for(record.token, record.blob_key.rsplit(".", 1)[1])


def _outputs_for(options: Options) -> tuple[tuple[str, ...], tuple[OutputSpec, ...]]:
    """The record's output URL fields and what each holds: the cut-out (PNG unless a format
    is asked for; a JPEG one is on white), then the 0/255 mask and the subject on white
    (JPEG unless a format is asked for)."""
    quality = options.image_quality
    cut_format = options.image_format or "png"
    names = ["_output_url"]
    specs = [OutputSpec("cutout", cut_format, quality)]
    other = options.image_format or "jpeg"
    if options.binary_mask:
        names.append("_output_url_mask")
        specs.append(OutputSpec("binary_mask", other, quality))
    if options.white_background:
        names.append("_output_url_whitebg")
        specs.append(OutputSpec("background", other, quality, background="#ffffff"))
    return tuple(names), tuple(specs)
