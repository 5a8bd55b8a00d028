"""One JSON shape for every 4xx and 5xx, mapped in one place.

``{"type": <machine code>, "error": <HTTP reason>, "status": <code>, "message": <for people>,
"errors": [<one line per invalid field>]}``, the shape of the IMG Processing API's errors.
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


def error_body(
    status: int, message: str, code: str | None = None, errors: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": code or _CODES.get(status, "error"),
        "error": HTTPStatus(status).phrase,
        "status": status,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    return body


# Routes of the Ximilar-compatible API answer errors in Ximilar's shape.
XIMILAR_PATHS = ("/removebg/",)


def ximilar_error_body(status: int, message: str) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    return {"status": {"code": status, "text": phrase, "error_description": message}}


def error_body_for(
    path: str, status: int, message: str, code: str | None = None, errors: list[str] | None = None
) -> dict[str, Any]:
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
    return JSONResponse(body, status, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_messages(errors: list[dict[str, Any]]) -> list[str]:
    lines = []
    for error in errors:
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"{_field(tuple(error.get('loc', ())))}: {message}")
    return lines


async def _alphacut_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AlphacutError):  # pragma: no cover - registered for this type
        raise exc
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RetryLaterError) else None
    if exc.status >= 500 and not isinstance(exc, RetryLaterError):
        log.error("%s: %s", exc.code, exc.message)
    return error_response(request.url.path, exc.status, exc.message, exc.code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    lines = validation_messages(list(exc.errors()))
    message = "the request is invalid: " + "; ".join(lines)
    return error_response(request.url.path, 400, message, "validation_error", lines)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
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
