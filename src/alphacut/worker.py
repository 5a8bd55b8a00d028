"""``alphacut worker``: a Celery worker that runs removals for API replicas elsewhere.

Each pool process builds one :class:`~alphacut.service.inference.LocalInference` when it
starts and loads the models named in ``ALPHACUT_LOAD_MODELS`` before it takes a job; a job
reads its input from the shared blob store, and the encoded outputs go back there under
``inference/<job id>/`` (see :mod:`alphacut.service.inference.wire`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import redis
from celery import Celery, bootsteps
from celery.signals import setup_logging, worker_process_init, worker_process_shutdown

from alphacut import logs
from alphacut.config import Settings
from alphacut.errors import (
    AlphacutError,
    InvalidInputError,
    NotFoundError,
    ProcessingTimeoutError,
)
from alphacut.service.inference import reports
from alphacut.service.inference.local import LocalInference
from alphacut.service.inference.port import InferenceJob
from alphacut.service.inference.wire import (
    ALIVE_EVERY_S,
    ALIVE_PREFIX,
    ALIVE_TTL_S,
    QUEUE,
    TASK,
    celery_app,
    error_payload,
    job_from_payload,
    output_keys,
    result_payload,
)
from alphacut.service.memory import MemoryBudget, default_budget_bytes
from alphacut.service.metrics import (
    multiprocess_dir,
    process_exit,
    serve_worker_metrics,
    timed,
    worker_job,
    worker_process_ready,
)
from alphacut.service.work import WorkQueue
from alphacut.storage.blobs import BlobNotFoundError, BlobStore
from alphacut.storage.factory import open_blob_store

log = logging.getLogger(__name__)


class _Process:
    """What one pool process holds: its settings (set before the pool forks), its blob
    store and its inference, made in the process itself (onnxruntime sessions are not
    shared across a fork)."""

    settings: Settings | None = None
    boot = uuid.uuid4().hex  # this node's start: made in the main process, before the forks
    blobs: BlobStore | None = None
    inference: LocalInference | None = None
    broker: redis.Redis | None = None  # for the runtimes this process reports
    reported: dict[str, str] | None = None


def _start_process(**_: Any) -> None:
    settings = _Process.settings
    if settings is None:
        return
    blobs = open_blob_store(settings)
    budget = MemoryBudget(
        settings.memory_budget_bytes or default_budget_bytes(),
        settings.memory_wait_seconds,
        settings.retry_after_seconds,
    )
    timeout = settings.request_timeout_seconds
    retry = settings.retry_after_seconds
    # One job at a time per process (prefetch 1): its queues never refuse it.
    image_queue = WorkQueue("image", settings.image_workers, 4, retry, timeout, budget)
    inference_queue = WorkQueue("inference", settings.streams, 4, retry, timeout, budget)
    inference = LocalInference(
        settings, blobs, image_queue, inference_queue, budget, settings.model_store()
    )
    started = time.perf_counter()
    inference.load()
    worker_process_ready()
    log.info(
        "worker process %d ready (%s) in %.1f s",
        os.getpid(),
        inference.readiness(),
        time.perf_counter() - started,
    )
    _Process.blobs, _Process.inference = blobs, inference
    if settings.inference_url:
        _Process.broker = redis.Redis.from_url(
            settings.inference_url, socket_timeout=2, socket_connect_timeout=2
        )
        _report_runtimes(inference)


def _report_runtimes(inference: LocalInference) -> None:
    """Tell the node's report which models this process loaded, on what, when that
    changed (at start, and after a job that loaded another model)."""
    runtimes = inference.runtimes()
    if _Process.broker is None or runtimes == _Process.reported:
        return
    try:
        reports.publish_runtimes(_Process.broker, _Process.boot, runtimes)
        _Process.reported = runtimes
    except (redis.RedisError, reports.BadReportError) as exc:
        log.warning("could not report this process's model runtimes: %s", exc)


def _stop_process(**_: Any) -> None:
    process_exit()  # this process's queues and memory leave the node's sums


def run_job(job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One job, in a pool process: its answer (output keys and sizes, or an error)."""
    inference, blobs = _Process.inference, _Process.blobs
    if inference is None or blobs is None:
        raise RuntimeError("the worker process was not initialised")
    try:
        job, deadline = job_from_payload(payload, blobs.get)
    except BlobNotFoundError:  # the replica gave up and deleted the job's files
        gone = NotFoundError("the job's background image was deleted before it could be used")
        return {"error": error_payload(gone)}
    except AlphacutError as exc:  # a value out of range: refused as a dialect would
        return {"error": error_payload(exc)}
    except (KeyError, TypeError, ValueError) as exc:  # not a job this version writes
        log.warning("a malformed job was refused: %s", type(exc).__name__)
        return {"error": error_payload(InvalidInputError("the inference job is malformed"))}
    # The job's lines carry its request's id (one id finds the request on the replica too).
    with logs.bound(job.request_id or logs.new_request_id(), job.key_id) as context:
        started = time.perf_counter()
        answer = _run(inference, blobs, job_id, job, deadline)
        _report_runtimes(inference)
        error = answer.get("error")
        log.info(
            "job %s for %s: %s in %.0f ms",
            job_id,
            job.model,
            error["code"] if error else "done",
            (time.perf_counter() - started) * 1000,
            extra={
                "job_id": job_id,
                "model": job.model,
                "status": error["status"] if error else 200,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "stages_ms": {k: round(v * 1000, 1) for k, v in context.timings.items()} or None,
            },
        )
        return answer


def _run(
    inference: LocalInference, blobs: BlobStore, job_id: str, job: InferenceJob, deadline: float
) -> dict[str, Any]:
    late = ProcessingTimeoutError("processing took longer than the request's limit")
    left = deadline - time.time()
    if left <= 0:
        return {"error": error_payload(late)}
    try:  # stops at its next step once the replica has stopped waiting
        result = inference.submit(replace(job, timeout=left))
    except AlphacutError as exc:
        return {"error": error_payload(exc)}
    logs.add_timings(result.timings)
    keys = output_keys(job_id, job.outputs)
    with timed("storage"):
        for key, encoded in zip(keys, result.outputs, strict=True):
            blobs.put(key, encoded.data)
    if time.time() > deadline:  # nobody reads these any more
        for key in keys:
            blobs.delete(key)
        return {"error": error_payload(late)}
    return result_payload(result, keys)


class Alive(bootsteps.StartStopStep):  # type: ignore[misc]
    """Keeps this node's ``alphacut:alive:<node>`` key in Redis, from the node's own event
    loop (no thread beside the pool's forks); a node killed outright lets it lapse."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.entry: Any = None
        self.client: redis.Redis | None = None

    def start(self, parent: Any) -> None:
        self.client = redis.Redis.from_url(
            parent.app.conf.broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        key = ALIVE_PREFIX + _Process.boot
        self.beat(key)
        self.entry = parent.timer.call_repeatedly(ALIVE_EVERY_S, self.beat, (key,))

    def beat(self, key: str) -> None:
        if self.client is not None:
            try:
                self.client.set(key, "1", ex=ALIVE_TTL_S)
            except redis.RedisError:
                log.warning("could not renew %s in Redis", key)

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()
        if self.client is not None:
            self.client.close()


class Report(bootsteps.StartStopStep):  # type: ignore[misc]
    """Keeps this node's report in Redis (:mod:`~alphacut.service.inference.reports`): the
    models installed here and the runtimes its pool processes loaded them on, rewritten
    every few seconds from the node's event loop, lapsing with the node."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.entry: Any = None
        self.client: redis.Redis | None = None

    def start(self, parent: Any) -> None:
        self.client = redis.Redis.from_url(
            parent.app.conf.broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        self.write()
        self.entry = parent.timer.call_repeatedly(reports.REPORT_EVERY_S, self.write)

    def write(self) -> None:
        settings = _Process.settings
        if self.client is None or settings is None:
            return
        # Verified once per file (a hash, cached by size, mtime and inode), then a stat.
        installed = [spec.name for spec in settings.model_store().installed()]
        try:
            reports.publish(self.client, _Process.boot, installed)
        except redis.RedisError:
            log.warning("could not write this node's report to Redis")

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()
        if self.client is not None:
            with contextlib.suppress(redis.RedisError):  # else it lapses by itself
                reports.withdraw(self.client, _Process.boot)
            self.client.close()


def create_worker_app(settings: Settings) -> Celery:
    if not settings.inference_url:
        raise AlphacutError("ALPHACUT_INFERENCE_URL is not set: the worker needs the broker")
    app = celery_app(settings.inference_url, settings)

    @app.task(name=TASK, bind=True)  # type: ignore[untyped-decorator]
    def remove(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        # Where the job runs, for the replica waiting on it (and Celery's tools).
        where = {"pid": os.getpid(), "hostname": self.request.hostname, "node": _Process.boot}
        self.update_state(state="STARTED", meta=where)
        answer = run_job(str(self.request.id), payload)
        worker_job(answer["error"]["code"] if "error" in answer else "ok")
        return answer

    app.steps["consumer"].add(Alive)
    app.steps["consumer"].add(Report)
    _Process.settings = settings
    worker_process_init.connect(_start_process, weak=False)
    worker_process_shutdown.connect(_stop_process, weak=False)

    def keep_logging(**_: Any) -> None:
        """Celery's logging set-up is skipped where a receiver answers: the process keeps
        alphacut's (``ALPHACUT_LOG_FORMAT``, every line with its job's request id)."""
        logs.configure(settings.log_format)

    setup_logging.connect(keep_logging, weak=False, dispatch_uid="alphacut.logs")
    return app


def run_worker(settings: Settings, concurrency: int, name: str | None = None) -> None:
    """Run a worker node with ``concurrency`` pool processes until it is stopped. With
    ``ALPHACUT_METRICS`` on, the node serves its pool's metrics, added up, on one port
    (``ALPHACUT_WORKER_METRICS_PORT``) from this process: raises :class:`AlphacutError`
    when it cannot listen there, before any job is taken."""
    with ExitStack() as stack:
        if settings.metrics != "off":  # before the pool forks: each process records in files
            stack.enter_context(multiprocess_dir())
            server = serve_worker_metrics(settings)
            if server is not None:
                stack.callback(server.close)
        app = create_worker_app(settings)
        hostname = name or f"alphacut-{os.getpid()}@{socket.gethostname()}"
        app.worker_main(
            [
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                f"--queues={QUEUE}",
                f"--hostname={hostname}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
