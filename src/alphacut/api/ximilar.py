"""The Ximilar Remove Background API: ``POST /removebg/{fast|precise}/removebg``.

Authentication is ``Authorization: Token <key>`` (``x-api-key`` works too) with the same
keys, isolation, usage counting and rate limits as the images API. Output URLs point at
``/results/<token>.<ext>``: unguessable, no key needed, valid for 24 hours (a setting), with
nothing that lists them. ``POST /authorization/v2/authorize`` answers the token check the
official Python client makes when it is constructed.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from alphacut.api.deps import (
    ServicesDep,
    admit,
    base_url,
    client_gone,
    deadline_of,
    read_json,
    start_clock,
)
from alphacut.api.openapi import errors
from alphacut.api.public import PRESIGNED_REDIRECT, presigned_redirect
from alphacut.engine.encode import MEDIA_TYPES, parse_format
from alphacut.errors import NotFoundError, UnauthorizedError
from alphacut.models.registry import ALIASES, CATALOGUE
from alphacut.storage.database import ApiKey, utcnow

router = APIRouter(tags=["removebg"])
_TOKEN_SCHEMES = ("token", "jwt", "bearer")

_FORMAT_SCHEMA: dict[str, Any] = {
    "enum": ["png", "jpg", "jpeg", "webp", "auto", None],
    "description": "null or auto: PNG for the cut-out, JPEG for the mask and white background.",
}
_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An image (_url or _base64) and any fields of yours, returned unchanged.",
    "properties": {
        "_url": {"type": "string", "description": "http(s) URL of the image."},
        "_base64": {"type": "string", "description": "Base64, plain or as a data: URI."},
        "_id": {"type": "string", "description": "Your id; generated when absent."},
        "binary_mask": {"type": "boolean"},
        "white_background": {"type": "boolean"},
        "image_format": _FORMAT_SCHEMA,
        "image_quality": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "additionalProperties": True,
}
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "records": {"type": "array", "minItems": 1, "items": _RECORD_SCHEMA},
        "binary_mask": {"type": "boolean", "default": False},
        "white_background": {"type": "boolean", "default": False},
        "image_format": _FORMAT_SCHEMA,
        "image_quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 85},
        "model": {
            "type": "string",
            "enum": [*ALIASES, *CATALOGUE],
            "description": "alphacut extension: the model, over the path's fast/precise "
            "(any model installed on this server: alphacut models list).",
        },
    },
}
_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "text", "request_id"],
    "properties": {
        "code": {"type": "integer"},
        "text": {"type": "string"},
        "error_description": {"type": "string"},
        "request_id": {"type": "string"},
        "proc_id": {"type": "string"},
    },
}
_URL = {"type": "string", "format": "uri"}
_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["records", "status", "statistics"],
    "properties": {
        "records": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "The record as sent (but _base64), with its own _status.",
                "required": ["_id", "_status"],
                "properties": {
                    "_id": {},
                    "_status": _STATUS_SCHEMA,
                    "_output_url": _URL,
                    "_output_url_mask": _URL,
                    "_output_url_whitebg": _URL,
                    "_width": {"type": "integer"},
                    "_height": {"type": "integer"},
                },
            },
        },
        "status": _STATUS_SCHEMA,
        "statistics": {"type": "object", "properties": {"processing time": {"type": "number"}}},
    },
}


def ximilar_key(
    request: Request,
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    secret = x_api_key
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() in _TOKEN_SCHEMES and value.strip():
            secret = value.strip()
    key = admit(svc, secret, "missing API key: send Authorization: Token <key>")
    start_clock(request, svc.settings)
    return key


XimilarKey = Annotated[ApiKey, Depends(ximilar_key)]


async def batch_body(request: Request, svc: ServicesDep, _key: XimilarKey) -> Any:
    """The batch, read and parsed only once the key is known (FastAPI would parse a ``Body``
    parameter on the event loop before any dependency)."""
    return await read_json(request, svc.settings)


@router.post(
    "/removebg/{model}/removebg",
    summary="Remove the background of 1..N records (Ximilar-compatible)",
    responses={
        200: {"content": {"application/json": {"schema": _RESPONSE_SCHEMA}}},
        **errors(503, 504),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
        }
    },
)
def removebg(
    request: Request,
    svc: ServicesDep,
    key: XimilarKey,
    model: Literal["fast", "precise"],
    body: Annotated[Any, Depends(batch_body)],
) -> JSONResponse:
    deadline = deadline_of(request, svc.settings)
    base = base_url(request, svc.settings)

    def url_for(token: str, extension: str) -> str:
        return f"{base}results/{token}.{extension}"

    result = svc.removebg.run(key.id, model, body, url_for, deadline=deadline)
    if result.processed and not client_gone(request):  # nobody gets the answer: not billed
        svc.keys.record(key.id, requests=0, images=result.processed)
    return JSONResponse(result.body)


@router.post("/authorization/v2/authorize", include_in_schema=False)
def authorize(
    request: Request,
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """What the official client calls to check a token before its first request."""
    try:
        key = ximilar_key(request, svc, authorization, x_api_key)
    except UnauthorizedError:
        return JSONResponse({"detail": "Invalid token."}, status_code=401)
    return JSONResponse({"user_id": key.id, "service": "remove-bg", "status": "OK"})


@router.get(
    "/results/{name}",
    response_class=Response,
    tags=["public"],
    summary="An output file (no key needed; 404 once expired)",
    responses={**errors(404, 503), **PRESIGNED_REDIRECT},
)
def result_file(svc: ServicesDep, name: str) -> Response:
    token, _, extension = name.partition(".")
    if svc.settings.blob_presigned_urls:  # never valid past the result's own expiry
        found = svc.results.find(token)
        if found.blob_key.rsplit(".", 1)[1] != extension:
            raise NotFoundError("no such result, or it has expired")
        left = math.ceil((found.expires_at - utcnow()).total_seconds())
        return presigned_redirect(svc, found.blob_key, found.format, "inline", left)
    record, data = svc.results.get(token)
    if record.blob_key.rsplit(".", 1)[1] != extension:
        raise NotFoundError("no such result, or it has expired")
    remaining = max(0, int((record.expires_at - utcnow()).total_seconds()))
    return Response(
        content=data,
        media_type=MEDIA_TYPES[parse_format(record.format)],
        headers={
            "Cache-Control": f"private, max-age={remaining}",
            "Expires": record.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
    )
