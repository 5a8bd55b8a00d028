"""One cut-out, whatever the API: the single use case behind every dialect that removes a
background.

A dialect (``api/images.py``, ``api/ximilar.py``, ``api/removebg.py``, ``api/rembg.py``) parses
its wire format into plain :class:`CutoutRequest` data and shapes the :class:`CutoutResult`
into its answer; everything between is here, once:

- **the source**: bytes sent inline or uploaded, a URL (fetched with the SSRF rules, within
  ``ALPHACUT_MAX_INPUT_BYTES``), or a stored image of the caller's; a background image the
  same way, decoded before the removal so that a bad one costs no removal;
- **admission**, one policy for every API: a request is admitted at its first step, refused
  at once with 503 + ``Retry-After`` when the engine is full (a batch: when inference is busy
  as it starts); once admitted, all of its work (a batch's later records, a model's later
  passes, the finishing) waits for engine capacity, but never past the request's deadline
  (``ALPHACUT_REQUEST_TIMEOUT_SECONDS``, then 504). URL fetches are the exception: their
  slots guard against slow origins, so a fetch that finds them all taken is a 503 at once;
  no fetch runs past the deadline;
- **inference**: one data-only job through the :class:`~.inference.port.Inference` port,
  which runs the effects and encodes the outputs where the cut-out is made;
- **keeping the outputs** where the API wants them: in the answer, as short-lived result
  files (Ximilar's output URLs), or as a new stored image (IMG Processing);
- **billing**: the images are counted to the key once answered, not when the client has gone.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

from alphacut import logs
from alphacut.config import Settings
from alphacut.engine.compose import Box
from alphacut.engine.decode import PHOTO_FORMATS, Limits, decode, probe_pixels
from alphacut.engine.effects import Effects
from alphacut.engine.hints import Hints
from alphacut.engine.outputs import Encoded, OutputSpec
from alphacut.errors import (
    AlphacutError,
    ImageTooLargeError,
    InvalidInputError,
    ProcessingTimeoutError,
    ServiceBusyError,
)
from alphacut.service import metrics
from alphacut.service.fetcher import UrlFetcher
from alphacut.service.images import ImageService
from alphacut.service.inference.port import Inference, InferenceJob
from alphacut.service.keys import KeyService
from alphacut.service.memory import operation_cost
from alphacut.service.results import ResultStore
from alphacut.service.work import WorkQueue
from alphacut.storage.database import ImageRecord, ResultRecord

log = logging.getLogger(__name__)
Keep = Literal["answer", "results", "image"]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Source:
    """Where an image comes from: exactly one of its bytes, a URL to fetch, or a stored
    image of the caller's."""

    data: bytes | None = field(default=None, repr=False)
    url: str | None = None
    image: ImageRecord | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.data, self.url, self.image)) != 1:
            raise ValueError("a source is exactly one of data, url and image")


@dataclass(frozen=True)
class CutoutRequest:
    """What a dialect asks for, as plain data."""

    key_id: str
    source: Source
    model: str | None = None  # None: ALPHACUT_DEFAULT_MODEL
    refine: str | None = None  # None: ALPHACUT_REFINE
    max_pixels: int | None = None  # shrink the input to at most this before the removal
    effects: Effects = field(default_factory=Effects)
    background: Source | None = None  # a photo to put the subject on (bytes or a URL)
    outputs: tuple[OutputSpec, ...] = (OutputSpec(),)
    keep: Keep = "answer"  # also keep the outputs as result files, or the first as an image
    name: str | None = None  # the new image's name (keep="image"; default: the source's)
    billed: int = 1  # images counted to the key once answered
    hints: Hints = field(default_factory=Hints)  # a box and clicks, in the source's pixels
    base: ImageRecord | None = None  # a stored cut-out of the source for the hints to correct


@dataclass(frozen=True)
class CutoutResult:
    outputs: tuple[Encoded, ...]
    width: int
    height: int
    model: str
    refine: str
    subject: Box | None  # the subject's box in the result (before any background)
    results: tuple[ResultRecord, ...] = ()  # keep="results": one per output
    image: ImageRecord | None = None  # keep="image"
    confidence: float | None = None  # estimated IoU, 0..1 (alphacut.engine.confidence)
    doubtful: bool = False  # confidence under ALPHACUT_DOUBTFUL_BELOW: worth a person's look


class CutoutService:
    def __init__(
        self,
        settings: Settings,
        inference: Inference,
        fetcher: UrlFetcher,
        image_queue: WorkQueue,
        images: ImageService,
        results: ResultStore,
        keys: KeyService,
    ) -> None:
        self.settings = settings
        self.inference = inference
        self.fetcher = fetcher
        self.image_queue = image_queue
        self.images = images
        self.results = results
        self.keys = keys
        # The photos and backgrounds each dialect takes: the web formats, HEIC and AVIF.
        self.limits = Limits(settings.max_input_bytes, settings.max_input_pixels, PHOTO_FORMATS)

    def run(
        self,
        request: CutoutRequest,
        *,
        deadline: float | None = None,
        answered: Callable[[], bool] = _always,
    ) -> CutoutResult:
        """One cut-out, admitted at its first step (503 at once when the engine is full),
        by ``deadline`` (``time.monotonic()``; default: the request limit from now) or a 504;
        billed unless ``answered()`` says the client has gone."""
        deadline = self._deadline(deadline)
        self.admit()  # before any fetch: a busy engine costs the request nothing
        result = self._one(request, deadline, admitted=False)
        self.keys.bill(request.key_id, request.billed, answered)
        return result

    def run_batch(
        self,
        requests: Sequence[CutoutRequest | AlphacutError],
        *,
        deadline: float | None = None,
        answered: Callable[[], bool] = _always,
    ) -> list[CutoutResult | AlphacutError]:
        """Several cut-outs of one request (a Ximilar batch), each its own success or error
        (an item that is already an error, say a record that could not be read, stays one).
        The batch is admitted as it starts (503 when inference is busy); its items then run
        concurrently and wait for capacity until ``deadline``. The successes are billed
        together, unless the client has gone."""
        deadline = self._deadline(deadline)
        self.admit()
        workers = min(len(requests), max(2, 2 * self.settings.inference_slots))

        def item(request: CutoutRequest | AlphacutError) -> CutoutResult | AlphacutError:
            if isinstance(request, AlphacutError):
                return request
            try:
                return self._one(request, deadline, admitted=True)
            except AlphacutError as exc:
                return exc
            except Exception:  # one item's bug: its own 500, the others go on
                log.exception("a cut-out of a batch failed")
                return AlphacutError("an internal error occurred")

        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="alphacut-batch") as pool:
            # Each item in a copy of this context: its lines and its job carry the request's id.
            running = [pool.submit(contextvars.copy_context().run, item, r) for r in requests]
            done = [future.result() for future in running]
        billed = [
            request
            for request, result in zip(requests, done, strict=True)
            if isinstance(request, CutoutRequest) and isinstance(result, CutoutResult)
        ]
        if billed:
            self.keys.bill(billed[0].key_id, sum(r.billed for r in billed), answered)
        return done

    def admit(self) -> None:
        """Refuse at once (503 + ``Retry-After``) when inference is busy."""
        if self.inference.busy():
            metrics.refused("inference_busy")
            retry = self.settings.retry_after_seconds
            raise ServiceBusyError(f"the server is busy; retry in {retry} s", retry)

    # One cut-out -----------------------------------------------------------------------

    def _deadline(self, deadline: float | None) -> float:
        if deadline is None:
            return time.monotonic() + self.settings.request_timeout_seconds
        return deadline

    def _one(self, request: CutoutRequest, deadline: float, *, admitted: bool) -> CutoutResult:
        try:
            return self._cut(request, deadline, admitted)
        except ServiceBusyError:
            if time.monotonic() >= deadline:  # a wait for capacity that ended at the deadline
                raise ProcessingTimeoutError(
                    "the request ran past the server's time limit while it waited for capacity"
                ) from None
            raise

    def _cut(self, request: CutoutRequest, deadline: float, admitted: bool) -> CutoutResult:
        blob_key, data, pixels = self._source(request.source, deadline, admitted)
        effects = request.effects
        if request.background is not None:
            image = self._background(request.background, deadline, admitted)
            effects = replace(effects, background_image=image)
        left = _left(deadline, admitted)
        job = InferenceJob(
            model=request.model or self.settings.default_model,
            outputs=request.outputs,
            blob_key=blob_key,
            data=data,
            refine=request.refine,
            effects=effects,
            max_pixels=request.max_pixels,
            pixels=pixels,
            queue_wait=left if admitted else None,
            timeout=left,
            key_id=request.key_id,
            hints=request.hints,
            base_blob_key=request.base.blob_key if request.base is not None else None,
            request_id=logs.current_request_id(),
        )
        removed = self.inference.submit(job)
        logs.add_timings(removed.timings)
        confidence = removed.confidence
        result = CutoutResult(
            removed.outputs,
            removed.width,
            removed.height,
            removed.model,
            removed.refine,
            removed.subject,
            confidence=confidence,
            doubtful=confidence is not None and confidence < self.settings.doubtful_below,
        )
        return self._keep(request, result)

    def _source(
        self, source: Source, deadline: float, admitted: bool
    ) -> tuple[str | None, bytes | None, int | None]:
        """(blob key, bytes, pixels) of an image to cut out: a stored image by its key, the
        rest as bytes within the input limit."""
        if source.image is not None:
            record = source.image
            return record.blob_key, None, record.width * record.height
        return None, self._bytes(source, deadline, admitted), None

    def _bytes(self, source: Source, deadline: float, admitted: bool) -> bytes:
        limit = self.settings.max_input_bytes
        if source.url is not None:
            # No fetch runs past the deadline. A fetch slot is never waited for, even by
            # admitted work: the slots guard against origins that answer slowly on purpose,
            # and waiting would let them hold request threads too (503 at once instead).
            return self.fetcher.fetch(source.url, limit, within=_left(deadline, admitted))
        assert source.data is not None  # noqa: S101 - a Source has one of them
        if len(source.data) > limit:
            raise ImageTooLargeError.over_bytes(len(source.data), limit)
        return source.data

    def _background(self, source: Source, deadline: float, admitted: bool) -> bytes:
        """A background image's bytes, decoded once now to prove it is one (415/422/413
        before any removal). It is decoded again where the effects run: kept decoded through
        the removal, it would be memory outside the budget the removal was admitted under."""
        if source.image is not None:
            raise InvalidInputError("a background must be sent with the request")
        data = self._bytes(source, deadline, admitted)
        pixels = probe_pixels(data) or 0
        self.image_queue.run(
            lambda: decode(data, self.limits),
            wait=_left(deadline, True) if admitted else None,
            cost=operation_cost("decode", pixels, 0),
            deadline=deadline,
        )
        return data

    def _keep(self, request: CutoutRequest, result: CutoutResult) -> CutoutResult:
        if request.keep == "answer":
            return result
        with metrics.timed("storage"):
            return self._store(request, result)

    def _store(self, request: CutoutRequest, result: CutoutResult) -> CutoutResult:
        if request.keep == "results":
            kept = tuple(
                self.results.save(request.key_id, out.data, out.format) for out in result.outputs
            )
            return replace(result, results=kept)
        if request.keep == "image":
            source = request.source.image
            name = request.name or (source.name if source is not None else "cutout")
            out = result.outputs[0]
            image = self.images.store(
                request.key_id,
                name,
                out.format,
                result.width,
                result.height,
                out.data,
                confidence=result.confidence,
            )
            return replace(result, image=image)
        return result


def _left(deadline: float, admitted: bool) -> float:
    """Seconds to ``deadline``; 504 when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        what = "this image could start" if admitted else "the removal could start"
        raise ProcessingTimeoutError(f"the request ran past the time limit before {what}")
    return left
