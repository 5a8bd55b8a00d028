"""One JSON shape for every 4xx and 5xx, mapped in one place.

``{"type": <URL naming the kind of error>, "error": <HTTP reason>, "status": <code>,
"message": <for people>, "errors": [<one line per invalid field>], "code": <machine code>}``:
the shape of the IMG Processing API's errors (``type`` is a URL there too), plus ``code``,
alphacut's short stable name of the same error for scripts.
Unexpected exceptions become a 500 with a generic message; the traceback goes to the log,
never to the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api.server import redact
from alphacut.config import Settings
from alphacut.errors import AlphacutError, RetryLaterError

log = logging.getLogger("alphacut.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    501: "not_implemented",
    503: "server_busy",
    507: "insufficient_storage",
}


# The IMG Processing API names each kind of error by a page of its documentation, and its
# client (img-processing/node-sdk) shows that URL as the error's `type`; the same problem
# kinds keep its names ("not-found", "validation-error"), alphacut's own get theirs.
ERROR_TYPE_BASE = "https://docs.img-processing.com/errors/"
_HOSTED_NAMES = {"invalid_input": "validation-error", "validation_error": "validation-error"}


def error_type(code: str) -> str:
    """The ``type`` URL of an error code: ``not_found`` -> ``.../errors/not-found``."""
    return ERROR_TYPE_BASE + _HOSTED_NAMES.get(code, code.replace("_", "-"))


def error_body(
    status: int, message: str, code: str | None = None, errors: list[str] | None = None
) -> dict[str, Any]:
    code = code or _CODES.get(status, "error")
    body: dict[str, Any] = {
        "type": error_type(code),
        "error": HTTPStatus(status).phrase,
        "status": status,
        "message": message,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


# Routes of the Ximilar-compatible API answer errors in Ximilar's shape.
XIMILAR_PATHS = ("/removebg/",)


def ximilar_error_body(status: int, message: str) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    return {"status": {"code": status, "text": phrase, "error_description": message}}


# Routes of the remove.bg-compatible API answer errors in remove.bg's shape and statuses: a
# missing or wrong key is 403, an input it cannot take (too large, not an image, corrupt) 400.
REMOVEBG_PATHS = ("/v1.0/",)
_REMOVEBG_STATUSES = {401: 403, 413: 400, 415: 400, 422: 400}
_REMOVEBG_CODES = {
    401: "auth_failed",
    413: "file_too_large",
    429: "rate_limit_exceeded",
    "invalid_input": "invalid_parameters",
    "validation_error": "invalid_parameters",
}

_REMOVEBG_TITLES = {
    "auth_failed": "Missing or invalid API key",
    "missing_api_key": "Missing API key",
    "file_too_large": "File too large",
    "invalid_parameters": "Invalid parameters",
    "rate_limit_exceeded": "Rate limit exceeded",
    # remove.bg's own words (its error for a photo without a foreground)
    "unknown_foreground": "Could not identify foreground in image. For details and "
    "recommendations see https://www.remove.bg/supported-images.",
}


def status_for(path: str, status: int) -> int:
    """The HTTP status ``path`` answers for an error of ``status``."""
    if path.startswith(REMOVEBG_PATHS):
        return _REMOVEBG_STATUSES.get(status, status)
    return status


def removebg_error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """``{"errors": [{"title", "code", "detail"}]}``: remove.bg's error body."""
    name = _REMOVEBG_CODES.get(status) or _REMOVEBG_CODES.get(code or "", code)
    name = name or _CODES.get(status, "error")
    # What the clients show (errors[0].title); a key that was not sent says so there too.
    title = _REMOVEBG_TITLES.get(code or "", "") if status == 401 else ""
    title = title or _REMOVEBG_TITLES.get(name, message)
    return {"errors": [{"title": title, "code": name, "detail": message}]}


def error_body_for(
    path: str, status: int, message: str, code: str | None = None, errors: list[str] | None = None
) -> dict[str, Any]:
    if path.startswith(REMOVEBG_PATHS):
        return removebg_error_body(status, message, code)
    if path.startswith(XIMILAR_PATHS):
        return ximilar_error_body(status, message)
    return error_body(status, message, code, errors)


def error_response(
    path: str,
    status: int,
    message: str,
    code: str | None = None,
    errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body_for(path, status, message, code, errors)
    return JSONResponse(body, status_for(path, status), headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_messages(errors: list[dict[str, Any]]) -> list[str]:
    lines = []
    for error in errors:
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"{_field(tuple(error.get('loc', ())))}: {message}")
    return lines


def _retry_after_default(request: Request) -> int:
    """``ALPHACUT_RETRY_AFTER_SECONDS``, for a 429 or 503 whose cause gave no time of its own
    (a model that failed to load, a database not migrated); its default before the app's
    services exist (start-up)."""
    services = getattr(request.app.state, "services", None)
    if services is not None:
        return int(services.settings.retry_after_seconds)
    return int(Settings.model_fields["retry_after_seconds"].default)


def answer_headers(request: Request, status: int, headers: dict[str, str] | None) -> dict[str, str]:
    """The headers of an error answer: ``Retry-After`` on every 429 and 503 (each dialect,
    every route), and on remove.bg's routes the key's ``X-RateLimit-*``, which remove.bg
    sends with its errors as with its results."""
    answer = dict(headers or {})
    if request.url.path.startswith(REMOVEBG_PATHS):
        answer |= dict(getattr(request.state, "rate_limit_headers", None) or {})
    if status in (429, 503) and not any(name.lower() == "retry-after" for name in answer):
        answer["Retry-After"] = str(_retry_after_default(request))
    return answer


async def _alphacut_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AlphacutError):  # pragma: no cover - registered for this type
        raise exc
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RetryLaterError) else None
    if exc.status >= 500 and not isinstance(exc, RetryLaterError):
        log.error("%s: %s", exc.code, exc.message)
    headers = answer_headers(request, exc.status, headers)
    return error_response(request.url.path, exc.status, exc.message, exc.code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    lines = validation_messages(list(exc.errors()))
    message = "the request is invalid: " + "; ".join(lines)
    headers = answer_headers(request, 400, None)
    return error_response(request.url.path, 400, message, "validation_error", lines, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = answer_headers(request, exc.status_code, dict(exc.headers or {}))
    return error_response(request.url.path, exc.status_code, message, headers=headers)


class CatchAllMiddleware:
    """Any exception no handler claimed becomes the generic JSON 500, here, so that it never
    reaches the server (which would log it again and drop the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            path = redact(str(scope.get("path")))  # a /p/ or /results/ token is a credential
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            if started:
                raise
            message = "an internal error occurred; it has been logged"
            response = error_response(scope["path"], 500, message)
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AlphacutError, _alphacut_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAllMiddleware)
