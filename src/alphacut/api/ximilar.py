"""The Ximilar Remove Background API: ``POST /removebg/{fast|precise}/removebg``.

This module holds Ximilar's wire format only. Each record brings its image as ``_url`` or
``_base64`` (plain, or a ``data:image/...;base64,`` URI) and any other fields, which come back
unchanged (``_base64`` is not echoed: it would double the response for nothing; nor is a
field alphacut writes, ``_output_url*``, ``_status``, ``_width``, ``_height``, ``_confidence``,
``_doubtful``: a client's own
value there, say a URL of its choosing, must never read as alphacut's answer). Options
(``binary_mask``, ``white_background``, ``image_format``, ``image_quality``) apply from the top
level and can be overridden per record. A record that fails (unreachable or refused URL, bad
base64, not an image, too large, no subject in it: 422 ``unknown_foreground``) gets its own 4xx
``_status`` and does not affect the others. Each cut-out's record carries alphacut's
``_confidence`` (its estimated IoU, 0..1) and ``_doubtful`` (under ``ALPHACUT_DOUBTFUL_BELOW``).
The records are cut out together by the use case (:meth:`~alphacut.service.cutout.CutoutService.
run_batch`): fetching, decoding and encoding overlap freely while the models run through the
bounded inference queue, so a batch never takes more of the engine than its capacity.

Authentication is ``Authorization: Token <key>`` (``x-api-key`` works too) with the same
keys, isolation, usage counting and rate limits as the images API. Output URLs point at
``/results/<token>.<ext>``: unguessable, no key needed, valid for 24 hours (a setting), with
nothing that lists them. ``POST /authorization/v2/authorize`` answers the token check the
official Python client makes when it is constructed.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
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
from alphacut.api.inline import decode_inline_image
from alphacut.api.openapi import errors
from alphacut.api.public import PRESIGNED_REDIRECT, presigned_redirect
from alphacut.engine.formats import MEDIA_TYPES, SPELLINGS, OutputFormat, parse_format
from alphacut.engine.hints import MAX_POINTS, Hints, box_from_json, points_from_json
from alphacut.engine.outputs import OutputSpec
from alphacut.errors import AlphacutError, InvalidInputError, NotFoundError, UnauthorizedError
from alphacut.logs import current_request_id, new_request_id
from alphacut.models.registry import MODEL_NAMES, is_model_name, model_choices
from alphacut.service.cutout import CutoutRequest, CutoutResult, Source
from alphacut.storage.database import ApiKey, utcnow

OPTION_NAMES = ("binary_mask", "white_background", "image_format", "image_quality")
DEFAULT_QUALITY = 85


@dataclass(frozen=True)
class Options:
    binary_mask: bool = False
    white_background: bool = False
    image_format: OutputFormat | None = None  # None: "auto" (PNG cut-out, JPEG mask/white)
    image_quality: int = DEFAULT_QUALITY

    @classmethod
    def parse(cls, source: Mapping[str, Any], base: Options | None = None) -> Options:
        """Options from a request or record; ``base`` supplies what ``source`` leaves out."""
        base = base or cls()
        values: dict[str, Any] = {}
        for flag in ("binary_mask", "white_background"):
            if flag in source:
                if not isinstance(source[flag], bool):
                    raise InvalidInputError(f"{flag} must be true or false")
                values[flag] = source[flag]
        requested = source.get("image_format")
        if requested not in (None, "auto"):
            if not isinstance(requested, str) or requested.lower() not in SPELLINGS:
                raise InvalidInputError(f"image_format must be one of {', '.join(SPELLINGS)}")
            values["image_format"] = parse_format(requested)
        if "image_quality" in source:
            quality = source["image_quality"]
            if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
                raise InvalidInputError("image_quality must be an integer from 1 to 100")
            values["image_quality"] = quality
        merged = {name: getattr(base, name) for name in OPTION_NAMES} | values
        return cls(**merged)


def check_request(body: Any, max_records: int) -> tuple[list[dict[str, Any]], Options]:
    """The records and top-level options, or :class:`InvalidInputError` (HTTP 400)."""
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object with records")
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise InvalidInputError("records must be a non-empty list of objects")
    if len(records) > max_records:
        raise InvalidInputError(f"too many records: {len(records)}; at most {max_records}")
    if not all(isinstance(record, dict) for record in records):
        raise InvalidInputError("every record must be a JSON object")
    return records, Options.parse(body)


def record_request(
    record: Mapping[str, Any], defaults: Options, key_id: str, model: str, max_bytes: int
) -> tuple[tuple[str, ...], CutoutRequest]:
    """A record's output URL fields, and the cut-out it asks for (400 for a bad record)."""
    options = Options.parse(record, defaults)
    names, specs = _outputs_for(options)
    if record.get("_base64") is not None:
        source = Source(data=decode_inline_image("_base64", record["_base64"], max_bytes))
    elif isinstance(url := record.get("_url"), str) and url:
        source = Source(url=url)
    else:
        raise InvalidInputError("the record needs an image: _url or _base64")
    box, points = record.get("_box"), record.get("_points")
    hints = Hints(
        box_from_json(box, "_box") if box is not None else None,
        points_from_json(points, "_points") if points is not None else (),
    )
    return names, CutoutRequest(
        key_id, source, model=model, outputs=specs, keep="results", hints=hints
    )


def _status(code: int, request_id: str, description: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"code": code, "text": HTTPStatus(code).phrase}
    if description:
        status["error_description"] = description
    status["request_id"] = request_id
    return status


def _outputs_for(options: Options) -> tuple[tuple[str, ...], tuple[OutputSpec, ...]]:
    """The record's output URL fields and what each holds: the cut-out (PNG unless a format
    is asked for; a JPEG one is on white), then the 0/255 mask and the subject on white
    (JPEG unless a format is asked for)."""
    quality = options.image_quality
    cut_format = options.image_format or "png"
    names = ["_output_url"]
    specs = [OutputSpec("cutout", cut_format, quality)]
    other = options.image_format or "jpeg"
    if options.binary_mask:
        names.append("_output_url_mask")
        specs.append(OutputSpec("binary_mask", other, quality))
    if options.white_background:
        names.append("_output_url_whitebg")
        specs.append(OutputSpec("background", other, quality, background="#ffffff"))
    return tuple(names), tuple(specs)


router = APIRouter(tags=["removebg"])
_TOKEN_SCHEMES = ("token", "jwt", "bearer")

_FORMAT_SCHEMA: dict[str, Any] = {
    "enum": [*SPELLINGS, "auto", None],
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
        "_box": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 4,
            "maxItems": 4,
            "description": "alphacut extension: [x1, y1, x2, y2], the box the subject lies "
            "in, in the photo's pixels.",
        },
        "_points": {
            "type": "array",
            "maxItems": MAX_POINTS,
            "description": "alphacut extension: clicks that correct the cut-out, in the "
            "photo's pixels, in the order made.",
            "items": {
                "type": "object",
                "required": ["x", "y"],
                "properties": {
                    "x": {"type": "integer", "minimum": 0},
                    "y": {"type": "integer", "minimum": 0},
                    "label": {"enum": ["subject", "background"]},
                },
            },
        },
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
            "enum": list(MODEL_NAMES),
            "description": "alphacut extension: the model, over the path's fast/precise "
            "(auto: precise, or fast's cut-out where the confidence prefers it; any model "
            "installed on this server: alphacut models list).",
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
                    "_confidence": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "alphacut extension: the cut-out's estimated IoU "
                        "against a person's mask (0..1).",
                    },
                    "_doubtful": {
                        "type": "boolean",
                        "description": "alphacut extension: the confidence is under the "
                        "server's threshold (ALPHACUT_DOUBTFUL_BELOW): worth a person's look.",
                    },
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
    key = admit(request, svc, secret, "no API key was sent: send it as Authorization: Token <key>")
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
    started = time.perf_counter()
    deadline = deadline_of(request, svc.settings)
    base = base_url(request, svc.settings)
    records, options = check_request(body, svc.settings.removebg_max_records)
    chosen = body.get("model")
    if chosen is not None:  # alphacut's extension: any installed model, over the path's
        if not is_model_name(chosen):
            raise InvalidInputError(f"unknown model; choose one of: {model_choices()}")
        model = chosen
    svc.cutouts.admit()  # a busy server answers 503 before any record is decoded
    fields: list[tuple[str, ...]] = []
    wanted: list[CutoutRequest | AlphacutError] = []
    for record in records:
        names: tuple[str, ...] = ()
        one: CutoutRequest | AlphacutError
        try:
            names, one = record_request(
                record, options, key.id, model, svc.settings.max_input_bytes
            )
        except AlphacutError as exc:
            one = exc
        fields.append(names)
        wanted.append(one)
    done = svc.cutouts.run_batch(
        wanted, deadline=deadline, answered=lambda: not client_gone(request)
    )
    # The request's own id (X-Request-ID, in every log line of it), in Ximilar's place for it.
    request_id = current_request_id() or new_request_id()
    answered = [
        _record_answer(record, names, result, request_id, base)
        for record, names, result in zip(records, fields, done, strict=True)
    ]
    return JSONResponse(
        {
            "records": answered,
            "status": {
                "code": 200,
                "text": "OK",
                "request_id": request_id,
                "proc_id": str(uuid.uuid4()),
            },
            "statistics": {"processing time": time.perf_counter() - started},
        }
    )


# A record's fields that are not given back: its image, and every field the answer writes.
_NOT_ECHOED = frozenset(
    {"_base64", "_output_url", "_output_url_mask", "_output_url_whitebg", "_status", "_width",
     "_height", "_confidence", "_doubtful"}
)  # fmt: skip


def _record_answer(
    record: Mapping[str, Any],
    names: tuple[str, ...],
    result: CutoutResult | AlphacutError,
    request_id: str,
    base: str,
) -> dict[str, Any]:
    answer = {name: value for name, value in record.items() if name not in _NOT_ECHOED}
    answer["_id"] = record.get("_id") or str(uuid.uuid4())
    if isinstance(result, AlphacutError):
        answer["_status"] = _status(result.status, request_id, result.message)
        return answer
    for name, kept in zip(names, result.results, strict=True):
        answer[name] = f"{base}results/{kept.token}.{kept.blob_key.rsplit('.', 1)[1]}"
    answer["_status"] = _status(200, request_id)
    answer["_width"], answer["_height"] = result.width, result.height
    if result.confidence is not None:
        answer["_confidence"] = result.confidence
        answer["_doubtful"] = result.doubtful
    return answer


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
