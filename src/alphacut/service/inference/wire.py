"""The inference job on the wire: what an API replica and an ``alphacut worker`` both speak.

The Celery app both sides build (JSON only, late acknowledgement), the queue and task names,
the liveness keys workers keep in Redis, and the job, its answer and its errors as JSON data.
Images never travel through the broker: a job names its input (and a background image) by
blob key in the shared blob store, and the worker writes the encoded outputs there, under
``inference/<job id>/``, at keys both sides know (:func:`output_keys`), so that the replica
deletes them even when it gave up waiting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend

from alphacut.config import Settings
from alphacut.engine.effects import Effects, Length
from alphacut.engine.formats import FORMATS
from alphacut.engine.hints import MAX_POINTS, Hints, box_from_json, point
from alphacut.engine.outputs import Encoded, OutputSpec
from alphacut.errors import AlphacutError, InvalidInputError, RetryLaterError
from alphacut.logs import valid_request_id
from alphacut.service.inference.port import InferenceJob, InferenceResult

QUEUE = "alphacut"
TASK = "alphacut.remove"
TEMP_PREFIX = "inference"
# Each worker node keeps ``alphacut:alive:<boot id>`` in Redis (a new id at each start),
# renewed every second for 5 s: a replica whose job runs on a node whose key lapsed knows the
# node is gone (503 at once) rather than waiting to its deadline for a message that comes
# back only after that.
ALIVE_PREFIX = "alphacut:alive:"
ALIVE_TTL_S = 5
ALIVE_EVERY_S = 1.0
# The most outputs one job may ask for (Ximilar's record asks for three at most).
MAX_OUTPUTS = 8


class PollingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, read by key only. The stock backend subscribes each
    sent task on one pub/sub connection shared by every thread, which is not thread-safe
    (celery/celery#3761, #6335); a replica waits on many jobs from many threads."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Subscribe to nothing: the replica polls the result's key."""


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


# Where a job's files are ---------------------------------------------------------------


def temp_folder(job_id: str) -> str:
    return f"{TEMP_PREFIX}/{job_id}"


def input_key(job_id: str) -> str:
    return f"{temp_folder(job_id)}/input.bin"


def background_key(job_id: str) -> str:
    return f"{temp_folder(job_id)}/background.bin"


def output_keys(job_id: str, outputs: tuple[OutputSpec, ...]) -> list[str]:
    """Where the worker writes a job's outputs: known to both sides, so that the replica
    deletes them even when it gave up waiting (``auto``'s format is known only once
    encoded: ``.img``)."""
    folder = temp_folder(job_id)
    return [f"{folder}/{index}.{_extension(spec)}" for index, spec in enumerate(outputs)]


def _extension(spec: OutputSpec) -> str:
    if spec.format in FORMATS:
        return FORMATS[spec.format].extension
    return "zip" if spec.format == "zip" else "img"


# The job ---------------------------------------------------------------------------------


def job_payload(
    job: InferenceJob, blob_key: str, deadline: float, background: str | None = None
) -> dict[str, Any]:
    """``job`` as JSON data, its input as a blob key (and its background image's, where it
    has one); ``deadline``: ``time.time()``."""
    effects = dataclasses.asdict(dataclasses.replace(job.effects, background_image=None))
    return {
        "model": job.model,
        "outputs": [dataclasses.asdict(spec) for spec in job.outputs],
        "blob_key": blob_key,
        "refine": job.refine,
        "effects": effects,
        "background_key": background,
        "max_pixels": job.max_pixels,
        "pixels": job.pixels,
        "key_id": job.key_id,
        "hints": {
            "box": list(job.hints.box) if job.hints.box is not None else None,
            "points": [[p.x, p.y, p.label] for p in job.hints.points],
        },
        "base_key": job.base_blob_key,
        "request_id": job.request_id,
        "deadline": deadline,
    }


def job_from_payload(
    payload: dict[str, Any], read: Callable[[str], bytes] | None = None
) -> tuple[InferenceJob, float]:
    """The job and its deadline (``time.time()``); ``read`` fetches a background image by
    its blob key. Every value is checked as it is made (``Effects``, ``OutputSpec``): what
    comes from the broker gets the same checks as what a dialect parsed."""
    if (
        not isinstance(payload.get("outputs"), list)
        or not 1 <= len(payload["outputs"]) <= MAX_OUTPUTS
    ):
        raise InvalidInputError(f"a job asks for 1 to {MAX_OUTPUTS} outputs")
    effects = _effects(payload.get("effects") or {})
    background = payload.get("background_key")
    if background is not None:
        if read is None:
            raise ValueError("this job has a background image: give a way to read it")
        effects = dataclasses.replace(effects, background_image=read(str(background)))
    job = InferenceJob(
        model=payload["model"],
        outputs=tuple(OutputSpec(**spec) for spec in payload["outputs"]),
        blob_key=payload["blob_key"],
        refine=payload["refine"],
        effects=effects,
        max_pixels=payload.get("max_pixels"),
        pixels=payload["pixels"],
        key_id=payload.get("key_id"),
        hints=_hints(payload.get("hints") or {}),
        base_blob_key=payload.get("base_key"),
        request_id=_request_id(payload.get("request_id")),
    )
    return job, float(payload["deadline"])


def _request_id(value: Any) -> str | None:
    """A job's request id, under the rule an HTTP request's ``X-Request-ID`` follows (it is
    written to the worker's log lines): none, or one well formed."""
    if value is None or valid_request_id(value):
        return value  # type: ignore[no-any-return]
    raise InvalidInputError("a job's request id must be 1 to 128 of A-Z a-z 0-9 . _ -")


def _hints(data: dict[str, Any]) -> Hints:
    """Hints from their JSON form, checked as a dialect checks them (sizes are checked
    against the photo where it is decoded)."""
    points = data.get("points") or []
    if not isinstance(points, list) or len(points) > MAX_POINTS:
        raise InvalidInputError(f"a job carries at most {MAX_POINTS} points")
    box = data.get("box")
    return Hints(
        box_from_json(box) if box is not None else None, tuple(point(*item) for item in points)
    )


def _lengths(values: Any) -> tuple[Length, ...]:
    return tuple(Length(float(value["value"]), bool(value["relative"])) for value in values)


def _effects(data: dict[str, Any]) -> Effects:
    """Effects from their JSON form (``dataclasses.asdict``: lengths became objects, tuples
    lists). Generic over the fields, so that a new effect crosses the wire unchanged."""
    values = {
        field.name: data[field.name] for field in dataclasses.fields(Effects) if field.name in data
    }
    values.pop("background_image", None)  # crosses as a blob key
    if values.get("roi") is not None:
        values["roi"] = _lengths(values["roi"])
    if "crop_margin" in values:
        values["crop_margin"] = _lengths(values["crop_margin"])
    if values.get("position") is not None:
        values["position"] = tuple(float(v) for v in values["position"])
    return Effects(**values)


# The answer ------------------------------------------------------------------------------


def result_payload(result: InferenceResult, keys: list[str]) -> dict[str, Any]:
    """A job's answer: where its outputs were written and what they are, and the rest of
    the result as JSON data."""
    return {
        "outputs": [
            {"key": key, "format": encoded.format}
            for key, encoded in zip(keys, result.outputs, strict=True)
        ],
        "width": result.width,
        "height": result.height,
        "model": result.model,
        "refine": result.refine,
        "subject": list(result.subject) if result.subject is not None else None,
        "timings": dict(result.timings),
        "confidence": result.confidence,
    }


def result_from_payload(answer: dict[str, Any], read: Callable[[str], bytes]) -> InferenceResult:
    """The result a worker answered, its outputs read back with ``read``."""
    subject = answer.get("subject")
    return InferenceResult(
        tuple(Encoded(read(str(out["key"])), out["format"]) for out in answer["outputs"]),
        int(answer["width"]),
        int(answer["height"]),
        str(answer["model"]),
        str(answer["refine"]),
        tuple(int(v) for v in subject) if subject is not None else None,  # type: ignore[arg-type]
        dict(answer.get("timings") or {}),
        _confidence(answer.get("confidence")),
    )


def _confidence(value: Any) -> float | None:
    """A worker's confidence, checked: a number in [0, 1] or none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a confidence must be a number, not {type(value).__name__}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"a confidence must lie in [0, 1], not {number}")
    return number


# Errors ----------------------------------------------------------------------------------


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
