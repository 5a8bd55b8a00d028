"""The remove.bg API: ``POST /v1.0/removebg`` and ``GET /v1.0/account``.

Authentication is the ``X-Api-Key`` header with the same keys, isolation, usage counting and
rate limits as the other two APIs. The parameters and the pixel work live in
:mod:`alphacut.service.removebg_compat`; errors are remove.bg's ``{"errors": [{"title",
"code", "detail"}]}`` with its statuses (:mod:`alphacut.api.errors`: 403 for a missing or
wrong key, 400 for an input it cannot take).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from alphacut.api.deps import ServicesDep, admit, client_gone, deadline_of, start_clock
from alphacut.api.limits import is_json, media_type, parse_json
from alphacut.api.openapi import errors
from alphacut.errors import ImageTooLargeError, InvalidInputError
from alphacut.models.registry import ALIASES, CATALOGUE
from alphacut.service.removebg_compat import (
    CHANNELS,
    FORMATS,
    REFINES,
    SHADOW_TYPES,
    SIZES,
    TYPE_LEVELS,
    TYPES,
    Inputs,
    RemoveBgCompat,
    parse_options,
)
from alphacut.storage.database import ApiKey

router = APIRouter(tags=["remove.bg"])
_FILES = ("image_file", "bg_image_file")


def removebg_key(
    request: Request,
    svc: ServicesDep,
    x_api_key: Annotated[
        str | None, Header(description="An alphacut API key (remove.bg's X-Api-Key).")
    ] = None,
) -> ApiKey:
    key = admit(svc, x_api_key, "missing API key: send it in the X-Api-Key header")
    request.state.key = key
    start_clock(request, svc.settings)
    return key


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


_BOOL_JSON = {"type": "boolean"}
_BOOL_FORM = {"type": "string", "enum": ["true", "false"]}


def _params(boolean: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_file_b64": _string("The photo as base64 (plain or a data: URI)."),
        "image_url": _string("http(s) URL of the photo (fetched with the SSRF rules)."),
        "size": _string(
            "Shrink the input before removal (never enlarged): preview/small/regular 0.25 MP, "
            "medium 1.5 MP, hd 4 MP, full/4k 25 MP, 50MP; auto: the input's size.",
            enum=list(SIZES),
            default="auto",
        ),
        "type": _string(
            "Accepted; alphacut always finds the subject itself (remove.bg's auto).",
            enum=list(TYPES),
            default="auto",
        ),
        "type_level": _string("Accepted, no effect.", enum=list(TYPE_LEVELS), default="none"),
        "format": _string(
            "auto: PNG when the result has transparency, else JPEG. zip: color.jpg + alpha.png.",
            enum=list(FORMATS),
            default="auto",
        ),
        "roi": _string("x1 y1 x2 y2 in px or %: only the subject inside is kept."),
        "crop": boolean,
        "crop_margin": _string("1, 2 or 4 margins in px or % (at most 50% or 500 px a side)."),
        "scale": _string("original, or 10% to 100% of the canvas."),
        "position": _string("original, center, or one or two of 0%-100%."),
        "channels": _string("rgba: the cut-out; alpha: the greyscale mask.", enum=list(CHANNELS)),
        "add_shadow": boolean,
        "shadow_type": _string("Accepted; one soft drop shadow.", enum=list(SHADOW_TYPES)),
        "shadow_opacity": {"type": "integer", "minimum": 0, "maximum": 100}
        if boolean is _BOOL_JSON
        else _string("0 to 100"),
        "semitransparency": boolean,
        "bg_color": _string("Hex (81d4fa, fff, 81d4fa77) or a CSS colour name."),
        "bg_image_url": _string("http(s) URL of a background image (covers the canvas)."),
        "model": _string(
            "alphacut extension: fast, precise or a model installed on this server.",
            enum=[*ALIASES, *CATALOGUE],
        ),
        "refine": _string("alphacut extension: the refinement.", enum=list(REFINES)),
    }


_JSON_BODY = {"type": "object", "properties": _params(_BOOL_JSON), "additionalProperties": True}
_FORM_BODY = {"type": "object", "properties": _params(_BOOL_FORM), "additionalProperties": True}
_MULTIPART_BODY = {
    "type": "object",
    "properties": {
        "image_file": {"type": "string", "format": "binary"},
        "bg_image_file": {"type": "string", "format": "binary"},
        **_params(_BOOL_FORM),
    },
    "additionalProperties": True,
}
_INT = {"schema": {"type": "integer"}}
_RESULT_HEADERS = {
    "X-Width": {"description": "Width of the result.", **_INT},
    "X-Height": {"description": "Height of the result.", **_INT},
    "X-Credits-Charged": {
        "description": "Always 0: alphacut has no credits.",
        "schema": {"type": "number"},
    },
    "X-Type": {"description": "`type` as sent, `other` for auto.", "schema": {"type": "string"}},
    "X-Foreground-Top": {"description": "Top of the subject in the result.", **_INT},
    "X-Foreground-Left": {"description": "Left of the subject in the result.", **_INT},
    "X-Foreground-Width": {"description": "Width of the subject.", **_INT},
    "X-Foreground-Height": {"description": "Height of the subject.", **_INT},
}
_RESULT_JSON = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "required": ["result_b64"],
            "properties": {
                "result_b64": {"type": "string"},
                "foreground_top": {"type": "integer"},
                "foreground_left": {"type": "integer"},
                "foreground_width": {"type": "integer"},
                "foreground_height": {"type": "integer"},
            },
        }
    },
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ACCOUNT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "attributes": {
                    "type": "object",
                    "properties": {
                        "credits": {
                            "type": "object",
                            "properties": {
                                name: {"type": "number"}
                                for name in ("total", "subscription", "payg", "enterprise")
                            },
                        },
                        "api": {
                            "type": "object",
                            "properties": {
                                "free_calls": {"type": "integer"},
                                "sizes": {"type": "string"},
                            },
                        },
                        "usage": {
                            "type": "object",
                            "description": "alphacut extension: this key's last 30 days.",
                            "properties": {
                                "requests": {"type": "integer"},
                                "images": {"type": "integer"},
                            },
                        },
                    },
                }
            },
        }
    },
}


async def _fields(request: Request, svc: ServicesDep) -> tuple[dict[str, Any], Inputs, bool]:
    """The request's fields, its images, and whether it came as JSON."""
    content_type = media_type(request.headers.get("content-type", ""))
    files: dict[str, bytes] = {}
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        limit = svc.settings.max_upload_bytes
        fields: dict[str, Any] = {}
        # Read inside the block: the uploads' spooled files are closed when it ends.
        async with request.form(max_part_size=2 * limit) as form:  # malformed: Starlette's 400
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read(limit + 1)
                    if len(data) > limit:
                        raise ImageTooLargeError(f"{name} is larger than {limit:,} bytes")
                    if name in _FILES:
                        files[name] = data
                else:
                    fields[name] = value
        json_body = False
    elif is_json(content_type):
        settings = svc.settings
        raw = await request.body()
        body = None
        if raw.strip():  # off the event loop, within the depth and value bounds
            body = await run_in_threadpool(
                parse_json, raw, settings.max_json_depth, settings.max_json_values
            )
        if not isinstance(body, dict):
            raise InvalidInputError("the request body must be a JSON object")
        fields, json_body = body, True
    elif not (await request.body()):
        fields, json_body = {}, False
    else:
        raise InvalidInputError(
            "send multipart/form-data, application/x-www-form-urlencoded or application/json"
        )
    for name in ("image_url", "bg_image_url"):
        url = fields.get(name)
        if url is not None and not isinstance(url, str):
            raise InvalidInputError(f"invalid value for {name}: send a URL")
    inputs = Inputs(
        image_file=files.get("image_file"),
        image_file_b64=fields.get("image_file_b64"),
        image_url=(fields.get("image_url") or "").strip() or None,
        bg_image_file=files.get("bg_image_file"),
        bg_image_url=(fields.get("bg_image_url") or "").strip() or None,
    )
    return fields, inputs, json_body


@router.post(
    "/v1.0/removebg",
    summary="Remove the background of an image (remove.bg-compatible)",
    description=(
        "remove.bg's `POST /v1.0/removebg`: send the photo as `image_file` (multipart), "
        "`image_file_b64` or `image_url`, as multipart/form-data, url-encoded or JSON. "
        "Answers the image (or, with `Accept: application/json`, `data.result_b64`) with "
        "remove.bg's headers. alphacut has no credits: `X-Credits-Charged` is 0, and `size` "
        "only bounds the resolution. `model` and `refine` are alphacut extensions."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "The result (format per `format`; JSON with Accept: application/json).",
            "headers": _RESULT_HEADERS,
            "content": {
                "image/png": _BINARY,
                "image/jpeg": _BINARY,
                "image/webp": _BINARY,
                "application/zip": _BINARY,
                "application/json": {"schema": _RESULT_JSON},
            },
        },
        **errors(403, 503, 504),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": _MULTIPART_BODY},
                "application/x-www-form-urlencoded": {"schema": _FORM_BODY},
                "application/json": {"schema": _JSON_BODY},
            },
        }
    },
)
async def remove_background(
    request: Request,
    svc: ServicesDep,
    key: Annotated[ApiKey, Depends(removebg_key)],
) -> Response:
    fields, inputs, json_body = await _fields(request, svc)
    options = parse_options(fields, json_body=json_body)
    compat = RemoveBgCompat(svc.settings, svc.inference, svc.images.image_queue, svc.images.fetcher)
    deadline = deadline_of(request, svc.settings)

    def work() -> Any:
        result = compat.run(options, inputs, deadline, key_id=key.id)
        if not client_gone(request):  # nobody gets the answer: not billed
            svc.keys.record(key.id, requests=0, images=1)
        return result

    result = await run_in_threadpool(work)
    top, left, width, height = result.foreground
    headers = {
        "X-Width": str(result.width),
        "X-Height": str(result.height),
        "X-Credits-Charged": "0",
        "X-Type": result.type,
        "X-Foreground-Top": str(top),
        "X-Foreground-Left": str(left),
        "X-Foreground-Width": str(width),
        "X-Foreground-Height": str(height),
    }
    if "application/json" in request.headers.get("accept", "").lower():
        data = {
            "result_b64": base64.b64encode(result.data).decode("ascii"),
            "foreground_top": top,
            "foreground_left": left,
            "foreground_width": width,
            "foreground_height": height,
        }
        return JSONResponse({"data": data}, headers=headers)
    return Response(result.data, media_type=result.media_type, headers=headers)


@router.get(
    "/v1.0/account",
    summary="Account: credits and usage (remove.bg-compatible)",
    description=(
        "remove.bg's account shape. alphacut has no credits: every credit balance is 0 and "
        "nothing is ever charged (`X-Credits-Charged: 0`); `api.free_calls` is the key's rate "
        "limit per minute (0: unlimited), `api.sizes` is `all`; `usage` (an extension) counts "
        "this key's requests and images over the last 30 days."
    ),
    responses={200: {"content": {"application/json": {"schema": _ACCOUNT}}}, **errors(403)},
)
def account(svc: ServicesDep, key: Annotated[ApiKey, Depends(removebg_key)]) -> JSONResponse:
    requests, images = svc.keys.key_usage(key.id, 30)
    credits = {"total": 0, "subscription": 0, "payg": 0, "enterprise": 0}
    attributes = {
        "credits": credits,
        "api": {"free_calls": svc.settings.rate_limit_per_minute or 0, "sizes": "all"},
        "usage": {"requests": requests, "images": images},
    }
    return JSONResponse({"data": {"attributes": attributes}})
