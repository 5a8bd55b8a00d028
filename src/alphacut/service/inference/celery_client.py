"""Inference on a fleet of ``alphacut worker`` processes, through Celery with Redis as broker
and result store (``ALPHACUT_INFERENCE_URL=redis://...``; why Celery: docs/design/scale-out.md).
This is the API replica's side; both sides speak :mod:`.wire`.

Images never travel through the broker: a job names a stored image by its blob key, and the
bytes of an inline image (a Ximilar record) or of a background image are first written to the
shared blob store under ``inference/<job id>/``. The worker writes the encoded outputs there
too and answers only their keys; the API replica reads them and deletes the job's files.

Faults: tasks are acknowledged late and rejected back to the queue when the pool process
running them dies (``acks_late``, ``reject_on_worker_lost``), so another process runs the
job; each message expires at the request's deadline, so a redelivered job that nobody waits
for any more is dropped rather than run late. The replica waits at most until the deadline
(then 504) and stores a record only from a complete result.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from contextlib import suppress
from typing import Any

import redis
from kombu.exceptions import OperationalError

from alphacut.config import Settings
from alphacut.errors import AlphacutError, ProcessingTimeoutError, ServiceBusyError
from alphacut.service import metrics
from alphacut.service.inference import reports
from alphacut.service.inference.port import FleetState, InferenceJob, InferenceResult
from alphacut.service.inference.wire import (
    ALIVE_EVERY_S,
    ALIVE_PREFIX,
    QUEUE,
    TASK,
    background_key,
    celery_app,
    error_from_payload,
    input_key,
    job_payload,
    output_keys,
    result_from_payload,
)
from alphacut.storage.blobs import BlobNotFoundError, BlobStore

log = logging.getLogger(__name__)

READINESS_CACHE_S = 5.0
MAX_NODES_COUNTED = 10_000  # a scrape reads at most this many liveness keys
_PING_TIMEOUT_S = 1.0
# A result is polled every 5 ms at first, then less often, up to every 50 ms: under 3% of
# a 0.3 s job on average, and a GET on a local Redis costs ~0.1 ms.
_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.05


# The API replica's side ------------------------------------------------------------------


class CeleryInference:
    """The :class:`~alphacut.service.inference.Inference` port on a Celery fleet."""

    def __init__(self, settings: Settings, blobs: BlobStore, url: str) -> None:
        self.settings = settings
        self.blobs = blobs
        self.app = celery_app(url, settings)
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._readiness: tuple[float, str] = (0.0, "not checked yet")
        self._reports_read: tuple[float, list[reports.WorkerReport]] = (-math.inf, [])
        self._reports_lock = threading.Lock()  # not the readiness lock: a ping waits a second
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

    def fleet(self) -> FleetState | None:
        """Jobs waiting, and worker nodes whose liveness key is current (counted up to
        :data:`MAX_NODES_COUNTED`); None when the broker does not answer."""
        try:
            alive = 0
            for _key in self._redis.scan_iter(match=ALIVE_PREFIX + "*", count=100):
                alive += 1
                if alive >= MAX_NODES_COUNTED:
                    break
            return FleetState(self.waiting(), alive)
        except redis.RedisError:
            return None

    def runtimes(self) -> dict[str, str]:
        return reports.runtimes_of(self._reports())

    def installed(self) -> set[str] | None:
        return reports.installed_on_all(self._reports())

    def _reports(self) -> list[reports.WorkerReport]:
        """The live workers' reports, read at most every few seconds (a busy
        ``/v1/models`` costs Redis one scan per :data:`READINESS_CACHE_S`)."""
        with self._reports_lock:
            read, found = self._reports_read
            if time.monotonic() - read < READINESS_CACHE_S:
                return found
            try:
                found = reports.collect(self._redis)
            except redis.RedisError:
                found = []
            self._reports_read = (time.monotonic(), found)
            return found

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
        metrics.refused("fleet")
        retry = self.settings.retry_after_seconds
        return ServiceBusyError(f"the server is busy (fleet queue full); retry in {retry} s", retry)

    def submit(self, job: InferenceJob) -> InferenceResult:
        if (job.data is None) == (job.blob_key is None):
            raise ValueError("an inference job needs exactly one of data and blob_key")
        limit = self.settings.request_timeout_seconds
        timeout = limit if job.timeout is None else min(job.timeout, limit)
        deadline = time.monotonic() + timeout
        # A job admitted with its request (queue_wait) is not refused for the queue's length.
        if job.queue_wait is None and self.busy():
            raise self._busy_error()
        job_id = uuid.uuid4().hex
        written = output_keys(job_id, job.outputs)  # deleted at the end, whatever happens
        try:
            blob_key = job.blob_key
            if job.data is not None:
                blob_key = input_key(job_id)
                written.append(blob_key)
                with metrics.timed("storage"):
                    self.blobs.put(blob_key, job.data)
            background = None
            if job.effects.background_image is not None:
                background = background_key(job_id)
                written.append(background)
                self.blobs.put(background, job.effects.background_image)
            assert blob_key is not None  # noqa: S101 - for the type checker
            payload = job_payload(job, blob_key, time.time() + timeout, background)
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
            with metrics.timed("storage"):
                return result_from_payload(answer, self.blobs.get)
        except BlobNotFoundError:
            raise AlphacutError("an inference output was lost; retry") from None
        finally:
            for key in written:
                self.blobs.delete(key)

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
