"""The OpenAPI document, with errors documented as the service really answers them.

FastAPI documents a 422 with its own body for every request that has parameters; alphacut
answers invalid requests with 400 in the shape of the API concerned (see
:mod:`alphacut.api.errors`). The document is rewritten once, in one place:

- FastAPI's generated 422 and its ``HTTPValidationError`` schemas go;
- every operation lists the errors it can answer: 400 when it takes input, 401 and 429 when it
  needs a key, 413 when it takes a body, 500 always, and what its route declares with
  :func:`errors` (404, 415, 503...);
- each 4xx/5xx carries the error schema of its API: ``Error`` for the images API and the
  rest, ``XimilarError`` under ``/removebg/``; 429 and 503 document ``Retry-After``.

The contract test (``tests/api/test_contract.py``) runs Schemathesis against this document.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api.errors import REMOVEBG_PATHS, XIMILAR_PATHS
from alphacut.api.query import OMITTED

_DESCRIPTIONS = {
    400: "Invalid request; `errors` names each invalid field.",
    401: "Missing, unknown or revoked API key.",
    403: "The key's storage quota (`ALPHACUT_MAX_STORED_BYTES_PER_KEY`) is used up; "
    "delete images to make room.",
    404: "Not found (or not this key's).",
    413: "Body, image or result over a size limit.",
    415: "Not a JPEG, PNG, WebP, HEIC or AVIF image.",
    422: "The image is corrupt or truncated, the result is larger than its format holds, or "
    "(code `unknown_foreground`) the photo holds no subject to cut out.",
    429: "Rate limit exceeded; retry after `Retry-After` seconds.",
    500: "Internal error (details are in the server log, never in the answer).",
    501: "Not offered by alphacut.",
    503: "Busy, or the database or file store not answering; retry after `Retry-After` seconds.",
    504: "The request ran past the server's time limit.",
    507: "The server is out of disk space, or under its free-space threshold "
    "(`ALPHACUT_MIN_FREE_BYTES`); reads and deletes still work.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_IMG_ERROR: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error of the images API (and of the other routes but /removebg/).",
    "required": ["type", "error", "status", "message", "code"],
    "properties": {
        "type": {
            "type": "string",
            "description": "URL naming the kind of error, as the IMG Processing API sends "
            "(e.g. https://docs.img-processing.com/errors/not-found).",
        },
        "code": {"type": "string", "description": "alphacut's stable machine-readable code."},
        "error": {"type": "string", "description": "The HTTP reason phrase."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "errors": {
            "type": "array",
            "items": {"type": "string"},
            "description": "One line per invalid field (validation errors only).",
        },
    },
}
_XIMILAR_ERROR: dict[str, Any] = {
    "title": "XimilarError",
    "type": "object",
    "description": "Every request-level error under /removebg/, in Ximilar's shape.",
    "required": ["status"],
    "properties": {
        "status": {
            "type": "object",
            "required": ["code", "text", "error_description"],
            "properties": {
                "code": {"type": "integer"},
                "text": {"type": "string"},
                "error_description": {"type": "string"},
            },
        }
    },
}
_REMOVEBG_ERROR: dict[str, Any] = {
    "title": "RemoveBgError",
    "type": "object",
    "description": "Every error under /v1.0/, in remove.bg's shape.",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["title", "code"],
                "properties": {
                    "title": {"type": "string"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        }
    },
}
# remove.bg's statuses: 403 for a missing or wrong key, 400 for an input it cannot take.
_REMOVEBG_DESCRIPTIONS = {
    400: "Invalid parameters, or an input it cannot take (too large, not an image, corrupt; "
    "`unknown_foreground`: no subject found in it).",
    403: "Missing, unknown or revoked API key (remove.bg's authentication error).",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for the error statuses particular to it."""
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def install(app: FastAPI) -> None:
    """Serve the rewritten document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# FastAPI names a form body after its route (Body_upload_v1_images_upload_post).
_RENAMED = {"Body_upload_v1_images_upload_post": "UploadForm"}
NOT_AVAILABLE = "Not available in alphacut"


def document(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = _IMG_ERROR
    schemas["XimilarError"] = _XIMILAR_ERROR
    schemas["RemoveBgError"] = _REMOVEBG_ERROR
    for old, new in _RENAMED.items():
        if old in schemas:
            schemas[new] = {**schemas.pop(old), "title": new}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                _document_errors(path, item[method])
                _mark_unavailable(item[method])
                if path.startswith("/v1/"):
                    _document_omitted_values(item[method])
    text = json.dumps(spec)
    for old, new in _RENAMED.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    return dict(json.loads(text))


def _document_omitted_values(operation: dict[str, Any]) -> None:
    """An optional query parameter may also be sent as empty, ``undefined`` or ``null``,
    meaning "not given" (:mod:`alphacut.api.query`)."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query" or parameter.get("required"):
            continue
        schema = parameter.get("schema", {})
        default = schema.pop("default", None)
        omitted = {"type": "string", "enum": sorted(OMITTED)}
        parameter["schema"] = {"anyOf": [schema, omitted]}
        if default is not None:
            parameter["schema"]["default"] = default
        parameter["description"] = (
            parameter.get("description", "") + " Empty, `undefined` or `null`: not given."
        ).strip()


def _mark_unavailable(operation: dict[str, Any]) -> None:
    """Routes of the hosted API that need models alphacut does not run answer 501: say so
    where a reader looks first, and mark them deprecated so that /docs greys them out."""
    if "501" in operation.get("responses", {}) and not any(
        status.startswith("2") for status in operation["responses"]
    ):
        operation["summary"] = f"{NOT_AVAILABLE}: {operation.get('summary', '')}".rstrip(": ")
        operation["description"] = (
            "Part of the IMG Processing API that alphacut does not offer: it runs background "
            "removal models only, so this route always answers 501."
        )
        operation["deprecated"] = True


def _document_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    generated = responses.get("422", {})
    if "HTTPValidationError" in str(generated.get("content", "")):
        del responses["422"]
    headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    statuses = {500}
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(400)
    if "requestBody" in operation:
        statuses.add(413)
    if operation.get("security") or headers & {"x-api-key", "authorization"}:
        statuses |= {401, 429, 503}  # 503: the key is looked up in the database
    if path.startswith(REMOVEBG_PATHS):  # remove.bg's statuses (api/errors.py status_for)
        statuses = (statuses - {401, 413}) | {403}
        for code, text in _REMOVEBG_DESCRIPTIONS.items():
            responses[str(code)] = {"description": text}
    for code in statuses:
        responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
    schema = "XimilarError" if path.startswith(XIMILAR_PATHS) else "Error"
    if path.startswith(REMOVEBG_PATHS):
        schema = "RemoveBgError"
    for status, response in responses.items():
        declared = any(media.get("schema") for media in response.get("content", {}).values())
        if int(status) < 400 or declared:  # a route's own body for it (/readyz's 503)
            continue
        response["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        }
        if status in ("429", "503"):
            response["headers"] = _RETRY_AFTER
    operation["responses"] = dict(sorted(responses.items()))


# The documentation pages ---------------------------------------------------------------
# /docs (Swagger UI), /redoc and Swagger UI's OAuth2 redirect are served on the origin whose
# web page keeps its key in localStorage, so they get a Content-Security-Policy as strict as
# the page's: their scripts and styles come from this server only (fastapi-offline serves
# them under /static-offline-docs), each inline <script>/<style> FastAPI writes is allowed by
# its hash (never 'unsafe-inline' for scripts), and they may talk to this origin only.
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)  # no attribute: inline


def _hash_source(text: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'"


def docs_policy(html: bytes) -> str:
    """The Content-Security-Policy of a documentation page, for its inline blocks."""
    sources: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for match in _INLINE.finditer(html):
        sources[match.group(1)].append(_hash_source(match.group(2)))
    scripts = " ".join(["'self'", *sources[b"script"]])
    # ReDoc and Swagger UI set styles from script (styled-components, React): those need
    # 'unsafe-inline' for styles; CSS cannot run code or reach another origin under this
    # policy (img-src, font-src and connect-src stay 'self').
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'; object-src 'none'"
    )


class DocsPolicy:
    """Adds :func:`docs_policy` to the answers of :data:`DOCS_PATHS` (small HTML pages,
    held whole to hash their inline scripts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PATHS:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = [
                (k, v) for k, v in start.get("headers", []) if k != b"content-security-policy"
            ]
            headers.append((b"content-security-policy", docs_policy(bytes(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, hold)
