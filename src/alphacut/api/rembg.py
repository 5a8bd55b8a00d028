"""rembg's HTTP server API (``rembg s``): ``GET /api/remove?url=...`` and ``POST /api/remove``.

This module holds rembg's wire format only, as rembg 2.0.86 serves it
(``rembg/commands/s_command.py``): the photo comes as ``url`` (GET; fetched by the use case,
with the SSRF rules and the input limit of every URL) or as the multipart file part ``file``
(POST); the options are ``model``, ``a``, ``af``, ``ab``, ``ae``, ``om``, ``ppm``, ``dc``,
``vm``, ``bgc`` and ``extras``, in the query string (GET) or the form (POST, where rembg reads
``bgc`` and ``extras`` from the query string; alphacut takes each option from either). The
answer is always a PNG of the photo's size. A value rembg would refuse, or that alphacut cannot
honour, is a 400 before any work; options rembg does not have are ignored, as rembg ignores
them.

How rembg's options map in alphacut (the table in ``docs/http-api.md`` says the same):

- ``model``: a catalogue name (rembg's names are alphacut's, but ``bria-rmbg``, which is
  ``bria-rmbg-2.0``), ``fast`` or ``precise``; absent: ``ALPHACUT_DEFAULT_MODEL`` (rembg's
  default, ``bria-rmbg``, is non-commercial and not installed by default). A model this server
  has not installed is the use case's 400 ``model_unavailable``.
- ``a`` (alpha matting) and ``dc`` (decontaminate edges): alphacut's ``edges`` refinement,
  which settles the alpha away from the edges and gives soft pixels the subject's own colour;
  ``vm`` (ViTMatte, rembg's heavier matting, which wins over ``a`` there too): ``zoom``,
  ``edges`` plus a second model pass over the subject. None of them: ``ALPHACUT_REFINE``.
- ``af``, ``ab``, ``ae`` (alpha matting's thresholds and erosion): checked within rembg's
  ranges, then without effect (alphacut's refinement has no such knobs).
- ``om`` (only mask): the greyscale mask instead of the cut-out (``bgc`` is then ignored, as
  rembg ignores it).
- ``ppm`` (post-process mask): rembg makes the mask binary (smoothed, then cut at 127), so here
  the alpha is cut at 50 %: a binary mask with ``om``, a cut-out without soft pixels without.
- ``bgc`` (``r,g,b,a``, each 0-255; alpha may be left out): the cut-out on that colour.
- ``extras``: rembg hands it to its model sessions. SAM's prompts are honoured with any model:
  ``{"sam_prompt": [{"type": "point", "data": [x, y], "label": 1}, {"type": "rectangle",
  "data": [x1, y1, x2, y2], "label": 1}]}`` become alphacut's hints (label 1 a subject click,
  0 a background one; the rectangle the box the subject lies in). Anything else (a custom
  model's path, a hosted model's key) is a 400 naming what could not be honoured.

Keys: a rembg server has none; alphacut keeps its own, sent as ``x-api-key: <key>`` or
``Authorization: Bearer <key>`` (401 without), with the usage counting and rate limits of the
other APIs. Errors are alphacut's own JSON body (``{type, error, status, message, code}``):
rembg answers no one shape a client could rely on (FastAPI's ``{"detail": "..."}`` for a URL it
refuses, ``{"detail": [{...}]}`` with 422 for a bad option, a plain-text 500 for a file that
is not an image), so its clients can read the status only, and that is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile

from alphacut.api.deps import (
    Services,
    ServicesDep,
    admit,
    api_key_header,
    client_gone,
    confidence_headers,
    deadline_of,
    start_clock,
)
from alphacut.api.limits import media_type
from alphacut.api.openapi import errors
from alphacut.engine.effects import Effects
from alphacut.engine.hints import MAX_POINTS, Hints, Point, box_from_json, point
from alphacut.engine.outputs import OutputKind, OutputSpec
from alphacut.errors import ImageTooLargeError, InvalidInputError
from alphacut.models.registry import MODEL_NAMES, Refine
from alphacut.service.cutout import CutoutRequest, Source
from alphacut.storage.database import ApiKey

# rembg's names for catalogue models that alphacut names otherwise (the same weights).
REMBG_NAMES = {"bria-rmbg": "bria-rmbg-2.0"}
MODELS = (*MODEL_NAMES, *REMBG_NAMES)
# rembg reads its booleans as pydantic does: these words, in any case.
_TRUE = ("true", "t", "yes", "y", "on", "1")
_FALSE = ("false", "f", "no", "n", "off", "0")


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in word)


# Each option's accepted values, as the patterns the OpenAPI document shows. They are matched
# as JSON Schema matches them (``re.search``: ``$`` also takes a trailing newline), so that
# the document and the parser cannot disagree.
BOOLEAN = "^(?:" + "|".join(_any_case(word) for word in (*_TRUE, *_FALSE)) + ")$"
_BYTE = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
BYTE = f"^{_BYTE}$"
ERODE = "^[0-9]{1,9}$"  # rembg: any integer >= 0
BGC = f"^(?:{_BYTE},{_BYTE},{_BYTE}(?:,{_BYTE})?)?$"  # empty: no colour, as in rembg
_JSON_SPACE = "[ \t\n\r]*"
EXTRAS = f"^(?:{_JSON_SPACE}\\{{{_JSON_SPACE}\\}}{_JSON_SPACE})?$"  # empty or {}
# The longest url (as the images API's) and extras (long enough for the longest that says
# what it asks for; every accepted one is short).
MAX_URL_CHARS = 4096
MAX_EXTRAS_CHARS = 4096
_MAX_OPTION_CHARS = 64  # every other valid value is shorter
OPTION_NAMES = ("model", "a", "af", "ab", "ae", "om", "ppm", "dc", "vm", "bgc", "extras")


def _bad(name: str, value: object, allowed: str) -> InvalidInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return InvalidInputError(f"invalid value for {name}: {shown}; {allowed}")


def _matched(fields: Mapping[str, str], name: str, pattern: str, allowed: str) -> str | None:
    """The value of ``name`` (stripped), None when absent; 400 unless it matches."""
    value = fields.get(name)
    if value is None:
        return None
    if len(value) > _MAX_OPTION_CHARS:
        raise _bad(name, value, f"at most {_MAX_OPTION_CHARS} characters")
    if re.search(pattern, value) is None:
        raise _bad(name, value, allowed)
    return value.strip()


def _flag(fields: Mapping[str, str], name: str) -> bool:
    value = _matched(fields, name, BOOLEAN, "true or false")
    return value is not None and value.lower() in _TRUE


def _model(fields: Mapping[str, str]) -> str | None:
    value = fields.get("model")
    if value is None:
        return None
    if value not in MODELS:
        raise _bad("model", value, "one of " + ", ".join(MODELS))
    return REMBG_NAMES.get(value, value)


def _background_color(fields: Mapping[str, str]) -> str | None:
    """``bgc`` (``r,g,b`` or ``r,g,b,a``) as the engine's ``#rrggbbaa``."""
    value = _matched(fields, "bgc", BGC, "r,g,b,a with each 0-255 (e.g. 255,255,255,255)")
    if not value:
        return None
    channels = [int(part) for part in value.split(",")]
    return "#" + "".join(f"{v:02x}" for v in [*channels, 255][:4])


def _extras(fields: Mapping[str, str]) -> Hints:
    """The hints in ``extras`` (SAM's prompts); absent, empty or ``{}``: none."""
    value = fields.get("extras")
    if value is None:
        return Hints()
    if len(value) > MAX_EXTRAS_CHARS:
        raise _bad("extras", value, f"at most {MAX_EXTRAS_CHARS} characters")
    if re.search(EXTRAS, value):
        return Hints()
    try:
        asked = json.loads(value)
    except (ValueError, RecursionError):
        raise _bad("extras", value, "not JSON; send {} or leave it out") from None
    if not isinstance(asked, dict):
        raise _bad("extras", value, "a JSON object; send {} or leave it out")
    if set(asked) == {"sam_prompt"}:
        return _sam_prompt(asked["sam_prompt"])
    names = ", ".join(sorted(asked))
    raise InvalidInputError(
        f"alphacut cannot honour extras ({names[:200]}): rembg passes them to its own model "
        "sessions (SAM's prompts, a custom model's path, a hosted model's key), which alphacut "
        "does not have; send {} or leave extras out"
    )


def _sam_prompt(prompt: object) -> Hints:
    """rembg's SAM prompt as hints: points (label 1 subject, 0 background) and at most one
    rectangle (``data``: x1, y1, x2, y2)."""
    shape = 'a list of {"type": "point"|"rectangle", "data": [...], "label": 0|1}'
    if not isinstance(prompt, list) or len(prompt) > MAX_POINTS + 1:
        raise _bad("extras", prompt, f"sam_prompt is {shape}, at most {MAX_POINTS} points")
    points: list[Point] = []
    box = None
    for item in prompt:
        if not isinstance(item, dict) or not isinstance(item.get("data"), list):
            raise _bad("extras", item, f"sam_prompt is {shape}")
        data, kind, label = item["data"], item.get("type"), item.get("label", 1)
        if label not in (0, 1) or isinstance(label, bool):
            raise _bad("extras", item, "a sam_prompt label is 1 (subject) or 0 (background)")
        if kind == "point" and len(data) == 2:
            points.append(point(data[0], data[1], "subject" if label == 1 else "background"))
        elif kind == "rectangle" and len(data) == 4 and box is None:
            box = box_from_json(data, "a sam_prompt rectangle")
        else:
            raise _bad("extras", item, f"sam_prompt is {shape}, with one rectangle at most")
    if len(points) > MAX_POINTS:
        raise _bad("extras", prompt, f"at most {MAX_POINTS} points")
    return Hints(box, tuple(points))


@dataclass(frozen=True)
class Options:
    model: str | None = None  # None: ALPHACUT_DEFAULT_MODEL
    refine: Refine | None = None  # None: ALPHACUT_REFINE
    only_mask: bool = False
    binary: bool = False  # ppm: the alpha cut at 50 %
    background_color: str | None = None
    hints: Hints = field(default_factory=Hints)  # extras' sam_prompt

    def request(self, key_id: str, source: Source) -> CutoutRequest:
        """The cut-out the use case is asked for: one PNG, of the photo's size."""
        kind: OutputKind
        if self.only_mask:  # rembg ignores bgc for a mask
            kind, effects = ("binary_mask" if self.binary else "mask"), Effects()
        else:
            kind = "cutout"
            effects = Effects(
                semitransparency=not self.binary, background_color=self.background_color
            )
        return CutoutRequest(
            key_id=key_id,
            source=source,
            model=self.model,
            refine=self.refine,
            effects=effects,
            outputs=(OutputSpec(kind, "png"),),
            hints=self.hints,
        )


def parse_options(fields: Mapping[str, str]) -> Options:
    """rembg's options (each given at most once); 400 for a value rembg would refuse or that
    alphacut cannot honour."""
    for name in ("af", "ab"):
        _matched(fields, name, BYTE, "an integer from 0 to 255")
    _matched(fields, "ae", ERODE, "an integer from 0 to 999999999")
    hints = _extras(fields)
    vitmatte, matting, decontaminate = (_flag(fields, name) for name in ("vm", "a", "dc"))
    refine = Refine.ZOOM if vitmatte else Refine.EDGES if matting or decontaminate else None
    return Options(
        model=_model(fields),
        refine=refine,
        only_mask=_flag(fields, "om"),
        binary=_flag(fields, "ppm"),
        background_color=_background_color(fields),
        hints=hints,
    )


def single(items: Iterable[tuple[str, str]], names: Iterable[str]) -> dict[str, str]:
    """The values of ``names`` among ``items``; 400 for a name given twice (ignored others)."""
    wanted = set(names)
    fields: dict[str, str] = {}
    for name, value in items:
        if name in wanted:
            if name in fields:
                raise InvalidInputError(f"{name} is given more than once")
            fields[name] = value
    return fields


# The routes ------------------------------------------------------------------------------

router = APIRouter(tags=["rembg"])
bearer = HTTPBearer(auto_error=False, description="An alphacut API key as a bearer token.")


def rembg_key(
    request: Request,
    svc: ServicesDep,
    api_key: Annotated[str | None, Security(api_key_header)],
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiKey:
    secret = token.credentials if token is not None else api_key
    key = admit(
        request,
        svc,
        secret,
        "no API key was sent: send it as x-api-key: <key> or Authorization: Bearer <key>",
    )
    start_clock(request, svc.settings)
    return key


RembgKey = Annotated[ApiKey, Depends(rembg_key)]


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


_FLAG = {"pattern": BOOLEAN, "default": "false"}
_OPTIONS: dict[str, dict[str, Any]] = {
    "model": _text(
        "A catalogue model (rembg's names; bria-rmbg is bria-rmbg-2.0), fast or precise; "
        "default ALPHACUT_DEFAULT_MODEL. One this server has not installed is a 400.",
        enum=list(MODELS),
    ),
    "a": _text("Alpha matting: alphacut's edges refinement.", **_FLAG),
    "af": _text("Alpha matting foreground threshold: accepted, no effect.", pattern=BYTE),
    "ab": _text("Alpha matting background threshold: accepted, no effect.", pattern=BYTE),
    "ae": _text("Alpha matting erosion size: accepted, no effect.", pattern=ERODE),
    "om": _text("Only the mask (greyscale PNG); bgc is then ignored.", **_FLAG),
    "ppm": _text("Post-process the mask: the alpha made binary (cut at 50 %).", **_FLAG),
    "dc": _text("Decontaminate edges: alphacut's edges refinement.", **_FLAG),
    "vm": _text("ViTMatte: alphacut's zoom refinement (edges + a second pass).", **_FLAG),
}
_QUERY_OPTIONS: dict[str, dict[str, Any]] = {
    "bgc": _text("Background colour r,g,b,a (each 0-255; a may be left out).", pattern=BGC),
    "extras": _text(
        "rembg's extra session arguments: alphacut honours none, so only {} is accepted.",
        pattern=EXTRAS,
        maxLength=MAX_EXTRAS_CHARS,
    ),
}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    schema = dict(schema)
    description = schema.pop("description")
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_URL = _text(
    "http(s) URL of the photo (fetched with the SSRF rules).",
    minLength=1,
    maxLength=MAX_URL_CHARS,
)
_PNG = {
    "description": "The cut-out (the mask with om) as PNG, the photo's size.",
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
}
_DESCRIPTION = (
    "rembg's `{}`: always a PNG of the photo's size. Options as rembg's (`docs/http-api.md` "
    "says how each maps); authenticate with `x-api-key` or `Authorization: Bearer <key>`."
)


@router.get(
    "/api/remove",
    summary="Remove the background of an image at a URL (rembg-compatible)",
    description=_DESCRIPTION.format("GET /api/remove?url=..."),
    response_class=Response,
    responses={200: _PNG, **errors(413, 415, 422, 503, 504)},
    openapi_extra={
        "parameters": [
            _query("url", _URL, required=True),
            *(_query(name, schema) for name, schema in (_OPTIONS | _QUERY_OPTIONS).items()),
        ]
    },
)
async def remove_from_url(request: Request, svc: ServicesDep, key: RembgKey) -> Response:
    fields = single(request.query_params.multi_items(), ("url", *OPTION_NAMES))
    url = fields.get("url", "").strip()
    if not url:
        raise InvalidInputError("send the photo's address: GET /api/remove?url=...")
    if len(url) > MAX_URL_CHARS:
        raise _bad("url", url, f"at most {MAX_URL_CHARS} characters")
    options = parse_options(fields)
    return await _answer(request, svc, options.request(key.id, Source(url=url)))


_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}, **_OPTIONS},
    "additionalProperties": True,
}


@router.post(
    "/api/remove",
    summary="Remove the background of an uploaded image (rembg-compatible)",
    description=_DESCRIPTION.format("POST /api/remove") + " Send the photo as the file `file`.",
    response_class=Response,
    responses={200: _PNG, **errors(415, 422, 503, 504)},
    openapi_extra={
        "parameters": [_query(name, schema) for name, schema in _QUERY_OPTIONS.items()],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}},
    },
)
async def remove_from_file(request: Request, svc: ServicesDep, key: RembgKey) -> Response:
    data, form = await _upload(request, svc.settings.max_upload_bytes)
    query = single(request.query_params.multi_items(), OPTION_NAMES)
    options = parse_options(query | single(form, OPTION_NAMES))
    return await _answer(request, svc, options.request(key.id, Source(data=data)))


async def _upload(request: Request, limit: int) -> tuple[bytes, list[tuple[str, str]]]:
    """The photo of a multipart request (its part ``file``) and its text fields."""
    if media_type(request.headers.get("content-type", "")) != "multipart/form-data":
        raise InvalidInputError(
            "send the photo as multipart/form-data, in a file part named file "
            "(curl -F file=@photo.jpg)"
        )
    data: bytes | None = None
    fields: list[tuple[str, str]] = []
    # Read inside the block: the upload's spooled file is closed when it ends.
    async with request.form() as form:  # malformed: Starlette's 400
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                if name == "file":
                    raise InvalidInputError("file must be a file part (curl -F file=@photo.jpg)")
                fields.append((name, value))
            elif name == "file":
                if data is not None:
                    raise InvalidInputError("file is given more than once")
                data = await value.read(limit + 1)
                if len(data) > limit:
                    raise ImageTooLargeError.over_bytes(value.size, limit)
    if data is None:
        raise InvalidInputError("send the photo in a file part named file (curl -F file=@...)")
    if not data:
        raise InvalidInputError("file is empty")
    return data, fields


async def _answer(request: Request, svc: Services, wanted: CutoutRequest) -> Response:
    deadline = deadline_of(request, svc.settings)
    result = await run_in_threadpool(
        lambda: svc.cutouts.run(
            wanted, deadline=deadline, answered=lambda: not client_gone(request)
        )
    )
    (output,) = result.outputs
    headers = confidence_headers(result)  # alphacut's extension, as on its remove.bg answers
    return Response(output.data, media_type=output.media_type, headers=headers)
