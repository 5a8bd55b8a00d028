"""Inference on a fleet of ``alphacut worker`` processes, through Celery with Redis as broker
and result store (``ALPHACUT_INFERENCE_URL=redis://...``; why Celery: docs/design/scale-out.md).

Images never travel through the broker: a job names a stored image by its blob key, and the
bytes of an inline image (a Ximilar record) are first written to the shared blob store under
``inference/<job id>/``. The worker writes the encoded outputs there too and answers only
their keys and sizes; the API replica reads them and deletes the job's files.

Faults: tasks are acknowledged late and rejected back to the queue when the pool process
running them dies (``acks_late``, ``reject_on_worker_lost``), so another process runs the
job; each message expires at the request's deadline, so a redelivered job that nobody waits
for any more is dropped rather than run late. The replica waits at most until the deadline
(then 504) and stores a record only from a complete result.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import asdict
from typing import Any

import redis
from celery import Celery
from celery.backends.redis import RedisBackend
from kombu.exceptions import OperationalError

from alphacut.config import Settings
from alphacut.errors import (
    AlphacutError,
    ProcessingTimeoutError,
    RetryLaterError,
    ServiceBusyError,
)
from alphacut.service.inference import InferenceJob, InferenceResult, OutputSpec
from alphacut.storage.blobs import BlobNotFoundError, BlobStore

log = logging.getLogger(__name__)

QUEUE = "alphacut"
TASK = "alphacut.remove"
TEMP_PREFIX = "inference"
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
READINESS_CACHE_S = 5.0
# Each worker node keeps ``alphacut:alive:<boot id>`` in Redis (a new id at each start),
# renewed every second for 5 s: a replica whose job runs on a node whose key lapsed knows the
# node is gone (503 at once) rather than waiting to its deadline for a message that comes
# back only after that.
ALIVE_PREFIX = "alphacut:alive:"
ALIVE_TTL_S = 5
ALIVE_EVERY_S = 1.0
_PING_TIMEOUT_S = 1.0
# A result is polled every 5 ms at first, then less often, up to every 50 ms: under 3% of
# a 0.3 s job on average, and a GET on a local Redis costs ~0.1 ms.
_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.05


class PollingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, read by key only. The stock backend subscribes each
    sent task on one pub/sub connection shared by every thread, which is not thread-safe
    (celery/celery#3761, #6335); a replica waits on many jobs from many threads."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Subscribe to nothing: :meth:`CeleryInference.submit` polls the result's key."""


def celery_app(url: str, settings: Settings) -> Celery:
    """The Celery app both sides use: the API replica sends, ``alphacut worker`` runs."""
    app = Celery(
        "alphacut",
        broker=url,
        backend=f"{__name__}:PollingRedisBackend+{url}",
        set_as_current=False,
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        # Redelivery: acknowledge when done; a pool process killed mid-job puts it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One job per pool process at a time: a long job never holds others hostage.
        worker_prefetch_multiplier=1,
        # A message a lost worker *node* held comes back after this long: by then past
        # its expiry (the request's deadline), so it is dropped, never run twice at once.
        broker_transport_options={
            "visibility_timeout": int(settings.request_timeout_seconds) + 60,
        },
        result_expires=int(settings.request_timeout_seconds) + 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


# The job on the wire --------------------------------------------------------------------


def job_payload(job: InferenceJob, blob_key: str, deadline: float) -> dict[str, Any]:
    """``job`` as JSON data, its input as a blob key; ``deadline``: ``time.time()``."""
    return {
        "model": job.model,
        "outputs": [asdict(spec) for spec in job.outputs],
        "blob_key": blob_key,
        "refine": job.refine,
        "crop": job.crop,
        "crop_margin": job.crop_margin,
        "max_pixels": job.max_pixels,
        "pixels": job.pixels,
        "key_id": job.key_id,
        "deadline": deadline,
    }


def job_from_payload(payload: dict[str, Any]) -> tuple[InferenceJob, float]:
    job = InferenceJob(
        model=payload["model"],
        outputs=tuple(OutputSpec(**spec) for spec in payload["outputs"]),
        blob_key=payload["blob_key"],
        refine=payload["refine"],
        crop=payload["crop"],
        crop_margin=payload["crop_margin"],
        max_pixels=payload.get("max_pixels"),
        pixels=payload["pixels"],
        key_id=payload.get("key_id"),
    )
    return job, float(payload["deadline"])


def error_payload(exc: AlphacutError) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "status": exc.status,
        "code": exc.code,
        "message": exc.message,
        "retry_after": getattr(exc, "retry_after", None),
    }


def _error_classes() -> dict[str, type[AlphacutError]]:
    found: dict[str, type[AlphacutError]] = {}
    pending: list[type[AlphacutError]] = [AlphacutError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending += cls.__subclasses__()
    return found


def error_from_payload(payload: dict[str, Any], retry_after: int) -> AlphacutError:
    """The worker's error, as the same exception type (so the same status and body)."""
    cls = _error_classes().get(str(payload.get("type")))
    message = str(payload.get("message") or "inference failed")
    try:
        if cls is not None and issubclass(cls, RetryLaterError):
            return cls(message, int(payload.get("retry_after") or retry_after))
        if cls is not None:
            return cls(message)
    except TypeError:  # a class with another constructor: rebuilt generically below
        pass
    exc = AlphacutError(message)
    exc.status = int(payload.get("status") or 500)
    exc.code = str(payload.get("code") or "internal_error")
    return exc


def temp_folder(job_id: str) -> str:
    return f"{TEMP_PREFIX}/{job_id}"


def output_keys(job_id: str, outputs: tuple[OutputSpec, ...]) -> list[str]:
    """Where the worker writes a job's outputs: known to both sides, so that the replica
    deletes them even when it gave up waiting."""
    folder = temp_folder(job_id)
    return [f"{folder}/{index}.{EXTENSIONS[spec.format]}" for index, spec in enumerate(outputs)]


# The API replica's side ------------------------------------------------------------------


class CeleryInference:
    """The :class:`~alphacut.service.inference.Inference` port on a Celery fleet."""

    def __init__(self, settings: Settings, blobs: BlobStore, url: str) -> None:
        self.settings = settings
        self.blobs = blobs
        self.app = celery_app(url, settings)
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._readiness: tuple[float, str] = (0.0, "not checked yet")
        self._lock = threading.Lock()

    def start(self) -> None:
        """Nothing to load here: the workers load the models."""

    def shutdown(self) -> None:
        self._redis.close()

    def waiting(self) -> int:
        """Jobs waiting in the fleet's queue (Celery's Redis transport keeps it as a list)."""
        return int(self._redis.llen(QUEUE))

    def busy(self) -> bool:
        try:
            return self.waiting() >= self.settings.fleet_queue_limit
        except redis.RedisError:
            return True

    def readiness(self) -> str:
        """``ok`` when the broker answers and at least one worker answers ``ping``;
        cached for a few seconds (a ping waits up to a second for replies)."""
        checked, state = self._readiness
        if time.monotonic() - checked < READINESS_CACHE_S:
            return state
        with self._lock:
            checked, state = self._readiness
            if time.monotonic() - checked < READINESS_CACHE_S:
                return state
            state = self._check()
            self._readiness = (time.monotonic(), state)
            return state

    def _check(self) -> str:
        try:
            self._redis.ping()
        except redis.RedisError:
            return "inference broker unreachable"
        try:
            replies = self.app.control.ping(timeout=_PING_TIMEOUT_S)
        except Exception:  # kombu/redis errors of every kind: not ready, said once
            log.exception("inference workers could not be pinged")
            return "inference broker unreachable"
        return "ok" if replies else "no inference worker answers"

    def _busy_error(self) -> ServiceBusyError:
        retry = self.settings.retry_after_seconds
        return ServiceBusyError(f"the server is busy (fleet queue full); retry in {retry} s", retry)

    def submit(self, job: InferenceJob) -> InferenceResult:
        if (job.data is None) == (job.blob_key is None):
            raise ValueError("an inference job needs exactly one of data and blob_key")
        timeout = self.settings.request_timeout_seconds
        deadline = time.monotonic() + timeout
        # A job admitted with its batch (queue_wait) is not refused for the queue's length.
        if job.queue_wait is None and self.busy():
            raise self._busy_error()
        job_id = uuid.uuid4().hex
        folder = temp_folder(job_id)
        expected = output_keys(job_id, job.outputs)
        written = list(expected)  # deleted at the end, whatever happens
        try:
            blob_key = job.blob_key
            if job.data is not None:
                blob_key = f"{folder}/input.bin"
                self.blobs.put(blob_key, job.data)
                written.append(blob_key)
            assert blob_key is not None  # noqa: S101 - for the type checker
            payload = job_payload(job, blob_key, time.time() + timeout)
            try:
                self.app.send_task(
                    TASK, args=[payload], task_id=job_id, queue=QUEUE, expires=timeout
                )
            except (OperationalError, redis.RedisError) as exc:  # the broker is down: retry
                log.warning("could not send an inference job: %s", exc)
                raise self._busy_error() from None
            answer = self._wait(job_id, deadline)
            if "error" in answer:
                raise error_from_payload(answer["error"], self.settings.retry_after_seconds)
            outputs = tuple(self.blobs.get(key) for key in expected)
        except BlobNotFoundError:
            raise AlphacutError("an inference output was lost; retry") from None
        finally:
            for key in written:
                self.blobs.delete(key)
        return InferenceResult(
            outputs,
            int(answer["width"]),
            int(answer["height"]),
            str(answer["model"]),
            str(answer["refine"]),
            dict(answer.get("timings") or {}),
        )

    def _wait(self, job_id: str, deadline: float) -> dict[str, Any]:
        """The job's answer, polled from the result store until ``deadline``."""
        backend = self.app.backend
        interval = _POLL_FIRST_S
        next_alive_check = time.monotonic() + ALIVE_EVERY_S
        try:
            while True:
                meta = backend.get_task_meta(job_id)
                state = meta.get("status")
                if state == "STARTED" and time.monotonic() >= next_alive_check:
                    next_alive_check = time.monotonic() + ALIVE_EVERY_S
                    node = (meta.get("result") or {}).get("node")
                    if node and not self._redis.exists(ALIVE_PREFIX + str(node)):
                        log.warning("inference job %s was lost with worker %s", job_id, node)
                        raise ServiceBusyError(
                            "the inference worker running this image stopped; retry in "
                            f"{self.settings.retry_after_seconds} s",
                            self.settings.retry_after_seconds,
                        )
                if state == "SUCCESS":
                    answer: dict[str, Any] = meta["result"]
                    return answer
                if state == "FAILURE":
                    log.error("inference job %s failed on a worker: %r", job_id, meta["result"])
                    raise AlphacutError("an internal error occurred in an inference worker")
                if state == "REVOKED" or time.monotonic() >= deadline:
                    raise ProcessingTimeoutError(
                        "processing took longer than the limit of "
                        f"{self.settings.request_timeout_seconds:g} s"
                    )
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                interval = min(interval * 1.5, _POLL_MAX_S)
        except redis.RedisError:
            log.warning("lost the inference broker while waiting for job %s", job_id)
            raise self._busy_error() from None
        finally:
            with suppress(redis.RedisError):  # else the result expires by itself
                backend.forget(job_id)
