"""Request-scoped helpers: the services, the caller's key, and the response conventions."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.from_thread
import anyio.to_thread
from fastapi import Depends, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from alphacut.api.limits import (
    KeyRateLimitedError,
    RateLimiter,
    check_json_shape,
    is_json,
    parse_json,
)
from alphacut.api.schemas import ImageObject
from alphacut.config import Settings
from alphacut.errors import AlphacutError, MissingApiKeyError, UnauthorizedError
from alphacut.models.store import ModelStore
from alphacut.service.cutout import CutoutResult, CutoutService
from alphacut.service.health import Readiness
from alphacut.service.images import ImageService
from alphacut.service.inference.port import Inference
from alphacut.service.keys import KeyService
from alphacut.service.results import ResultStore
from alphacut.storage.database import ApiKey, ImageRecord

USAGE_HEADER = "X-Image-Processing-Usage"
api_key_header = APIKeyHeader(
    name="x-api-key", auto_error=False, description="An alphacut API key (test_... or live_...)."
)


@dataclass
class Services:
    settings: Settings
    keys: KeyService
    images: ImageService
    cutouts: CutoutService
    results: ResultStore
    inference: Inference
    readiness: Readiness
    store: ModelStore
    rate_limiter: RateLimiter


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


def admit(request: Request, svc: Services, secret: str | None, missing: str) -> ApiKey:
    """The key whose secret was sent: 401 :class:`MissingApiKeyError` (``missing`` says how
    to send one, in the dialect's own header) when none was sent, 401 when it is unknown or
    revoked (one message for both, which tells nothing about which keys exist); 429 past the
    key's rate limit. Every admitted request is counted. Every API authenticates through
    here; where the key stands against its rate limit is kept on the request
    (``rate_limit_headers``, for the dialect that sends it, remove.bg's)."""
    if not secret:
        raise MissingApiKeyError(missing)
    key = svc.keys.authenticate(secret)
    if key is None:
        raise UnauthorizedError("invalid or revoked API key")
    request.state.key = key
    try:
        state = svc.rate_limiter.check(key.id)
    except KeyRateLimitedError as exc:
        request.state.rate_limit_headers = exc.state.headers()
        raise
    if state is not None:
        request.state.rate_limit_headers = state.headers()
    svc.keys.record(key.id, requests=1)
    return key


def rate_limit_headers(request: Request) -> dict[str, str]:
    """``X-RateLimit-Limit``/``-Remaining``/``-Reset`` of the request's key, as
    :func:`admit` left them (none without a rate limit or before a key was admitted)."""
    return dict(getattr(request.state, "rate_limit_headers", None) or {})


def start_clock(request: Request, settings: Settings) -> None:
    """Mark when a request's time limit (``ALPHACUT_REQUEST_TIMEOUT_SECONDS``) ends: from
    the moment its key is admitted, before its body is read."""
    request.state.deadline = time.monotonic() + settings.request_timeout_seconds


def deadline_of(request: Request, settings: Settings) -> float:
    """The ``time.monotonic()`` by which the request must be answered."""
    deadline: float | None = getattr(request.state, "deadline", None)
    return deadline if deadline is not None else time.monotonic() + settings.request_timeout_seconds


def authenticated_key(
    request: Request, svc: ServicesDep, api_key: Annotated[str | None, Security(api_key_header)]
) -> ApiKey:
    """The caller's key from ``x-api-key`` (see :func:`admit`)."""
    return admit(request, svc, api_key, "no API key was sent: send it in the x-api-key header")


KeyDep = Annotated[ApiKey, Depends(authenticated_key)]


class EmptyJsonBodyError(AlphacutError):
    status = 400
    code = "empty_body"


class NotJsonError(AlphacutError):
    status = 415
    code = "unsupported_media_type"


async def json_body_rules(request: Request) -> None:
    """An empty body sent as ``application/json`` is refused, as the IMG Processing API
    refuses it; a non-empty body must be JSON."""
    _check_json_body(request, await request.body())


def _check_json_body(request: Request, body: bytes) -> None:
    json_type = is_json(request.headers.get("content-type", ""))
    if json_type and not body.strip():
        raise EmptyJsonBodyError(
            "the request has Content-Type application/json but an empty body; "
            "send a JSON object, for example {}"
        )
    if body.strip() and not json_type:
        raise NotJsonError("send the request body as JSON (Content-Type: application/json)")


async def read_json(request: Request, settings: Settings) -> Any:
    """The request's JSON body (None when there is none), read once the caller's key has
    been checked (so that an unknown caller costs no read), within the route's byte limit
    (:class:`alphacut.api.limits.BodyLimitMiddleware`), and parsed on a worker thread with
    the depth and value bounds of :func:`alphacut.api.limits.parse_json`."""
    body = await request.body()
    _check_json_body(request, body)
    if not body.strip():
        return None
    return await anyio.to_thread.run_sync(
        parse_json, body, settings.max_json_depth, settings.max_json_values
    )


class BoundedJsonRoute(APIRoute):
    """A route whose JSON body is checked against ``ALPHACUT_MAX_JSON_DEPTH`` and
    ``_VALUES`` on a worker thread before FastAPI parses it (which it does on the event
    loop, before any dependency, for a route with a body model)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if is_json(request.headers.get("content-type", "")):
                body = await request.body()  # kept by the request for FastAPI
                settings = services(request).settings
                await anyio.to_thread.run_sync(
                    check_json_shape, body, settings.max_json_depth, settings.max_json_values
                )
            return await handler(request)

        return bounded


_FORWARDED_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def base_url(request: Request, settings: Settings) -> str:
    """The base of absolute links: ``ALPHACUT_PUBLIC_URL``; else, behind a proxy trusted by
    ``ALPHACUT_TRUST_FORWARDED_HEADERS``, the first ``X-Forwarded-Proto``/``-Host`` (as
    nginx and most balancers set them; a malformed host is ignored); else the request's."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/"
    if settings.trust_forwarded_headers:
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if host and _FORWARDED_HOST.fullmatch(host):
            scheme = proto if proto in ("http", "https") else request.url.scheme
            return f"{scheme}://{host}/"
        if proto in ("http", "https"):
            return str(request.base_url.replace(scheme=proto)).rstrip("/") + "/"
    return str(request.base_url).rstrip("/") + "/"


def image_object(record: ImageRecord, base: str, doubtful_below: float) -> ImageObject:
    """The Image object of ``record``; ``doubtful_below``: the threshold under which a
    cut-out's confidence marks it doubtful."""
    created = record.created_at
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z"
    return ImageObject(
        id=record.id,
        name=record.name,
        url=f"{base}p/{record.public_token}" if record.public_token else None,
        width=record.width,
        height=record.height,
        format=record.format,
        size=record.size,
        created_at=stamp,
        confidence=record.confidence,
        doubtful=(None if record.confidence is None else record.confidence < doubtful_below),
    )


def client_gone(request: Request) -> bool:
    """Whether the client of a request handled on a worker thread has disconnected."""
    try:
        return bool(anyio.from_thread.run(request.is_disconnected))
    except RuntimeError:  # not on a worker thread of the event loop (called from async code)
        return False


def created(
    request: Request,
    svc: Services,
    key: ApiKey,
    record: ImageRecord,
    images: int = 1,
    *,
    billed: bool = False,
) -> JSONResponse:
    """201 with the new Image object and the usage header; counts ``images`` processed images
    for the key (unless ``billed`` already, as the cut-out use case does), but not when the
    client has already gone (it timed out or gave up: nobody receives the answer; the image
    stays stored and listed, like any other)."""
    if not billed:
        svc.keys.bill(key.id, images, lambda: not client_gone(request))
    body = image_object(record, base_url(request, svc.settings), svc.settings.doubtful_below)
    return JSONResponse(body.model_dump(), status_code=201, headers={USAGE_HEADER: str(images)})


def confidence_headers(result: CutoutResult) -> dict[str, str]:
    """alphacut's ``X-Confidence`` (the cut-out's estimated IoU) and ``X-Doubtful`` headers,
    on the answers that are an image (remove.bg's and rembg's dialects)."""
    if result.confidence is None:
        return {}
    return {
        "X-Confidence": f"{result.confidence:.4f}",
        "X-Doubtful": "true" if result.doubtful else "false",
    }
