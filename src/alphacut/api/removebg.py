"""The remove.bg API: ``POST /v1.0/removebg`` and ``GET /v1.0/account``.

This module holds remove.bg's wire format only: its parameters are parsed into the use case's
plain :class:`~alphacut.service.cutout.CutoutRequest` (every value remove.bg documents is
accepted; any other is a 400, before any work), and the result is shaped into remove.bg's
answer (the image, or ``data.result_b64`` in JSON, with its ``X-*`` headers). The options that
work on the cut-out (``roi``, ``semitransparency``, ``crop``/``crop_margin``,
``scale``/``position``, ``add_shadow``, ``bg_color``/``bg_image_*``) become
:class:`~alphacut.engine.effects.Effects`, which run where the cut-out is made.

Authentication is the ``X-Api-Key`` header with the same keys, isolation, usage counting and
rate limits as the other APIs; errors are remove.bg's ``{"errors": [{"title", "code",
"detail"}]}`` with its statuses (:mod:`alphacut.api.errors`: 403 for a missing or wrong key,
400 for an input it cannot take).

How remove.bg's values map in alphacut (which has no credits):

- ``size``: ``preview``/``small``/``regular`` shrink the input to at most 0.25 MP before the
  removal, ``medium`` to 1.5 MP, ``hd`` to 4 MP, ``full``/``4k`` to 25 MP, ``50MP`` to 50 MP;
  ``auto`` (the default) keeps the input's size. Never enlarged; alphacut's own pixel limit
  (``ALPHACUT_MAX_INPUT_PIXELS``) still applies.
- ``type``/``type_level``: every documented value is accepted; alphacut's models find the
  subject whatever it is (what remove.bg calls ``auto``), so the value does not change the
  cut-out. ``X-Type`` echoes ``type``, or ``other`` for ``auto``.
- ``semitransparency=false``: the alpha is made binary (cut at 50 %); true (default) keeps
  the model's soft alpha.
- ``add_shadow``: a soft drop shadow under the subject (the subject's alpha, blurred, shifted
  down, at ``shadow_opacity`` %, default 50); ``shadow_type`` (car, 3D, drop) is accepted and
  draws that same shadow.
- ``format``: ``auto`` is PNG where the result has transparency, else JPEG; ``zip`` is
  ``color.jpg`` + ``alpha.png``; ``channels=alpha`` answers the greyscale matte.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from alphacut.api.deps import (
    ServicesDep,
    admit,
    client_gone,
    confidence_headers,
    deadline_of,
    rate_limit_headers,
    start_clock,
)
from alphacut.api.inline import decode_inline_image
from alphacut.api.limits import is_json, media_type, parse_json
from alphacut.api.openapi import errors
from alphacut.engine.compose import parse_color
from alphacut.engine.effects import MAX_PX, Effects, Length
from alphacut.engine.hints import MAX_POINTS, Hints, Point, parse_points, points_from_json
from alphacut.engine.outputs import OutputSpec
from alphacut.errors import ImageTooLargeError, InvalidInputError
from alphacut.models.registry import MODEL_NAMES, Refine, is_model_name, model_choices
from alphacut.service.cutout import CutoutRequest, Source
from alphacut.storage.database import ApiKey

# Megapixels of each ``size`` (None: the input's own size).
SIZES: dict[str, int | None] = {
    "preview": 250_000,
    "small": 250_000,
    "regular": 250_000,
    "medium": 1_500_000,
    "hd": 4_000_000,
    "full": 25_000_000,
    "4k": 25_000_000,
    "50MP": 50_000_000,
    "auto": None,
}
TYPES = (
    "auto",
    "person",
    "product",
    "animal",
    "car",
    "car_interior",
    "car_part",
    "transportation",
    "graphics",
    "graphic",
    "other",
)
TYPE_LEVELS = ("none", "1", "2", "latest")
FORMATS = ("auto", "png", "jpg", "webp", "zip")
CHANNELS = ("rgba", "alpha")
SHADOW_TYPES = ("car", "3D", "drop")
REFINES = (Refine.NONE, Refine.EDGES, Refine.CONSENSUS)
BOOLEANS = ("crop", "add_shadow", "semitransparency")
# A number as remove.bg writes one (30, 12.5): at most 9 digits before the point and 6 after,
# so that no value is past what a float holds exactly or an image side can be.
_NUMBER = r"(\d{1,9}(?:\.\d{1,6})?)"
_LENGTH = re.compile(_NUMBER + r"(px|%)?")
_PERCENT = re.compile(_NUMBER + "%")
# The longest option value (the longest valid one, a colour name or a roi, is ~60).
_MAX_OPTION_CHARS = 256
_MAX_POINTS_CHARS = MAX_POINTS * 24  # "100000,100000:background "


def _bad(name: str, value: object, allowed: str) -> InvalidInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return InvalidInputError(f"invalid value for {name}: {shown}; {allowed}")


def _lengths(name: str, text: str, counts: tuple[int, ...]) -> list[Length]:
    parts = text.split()
    if len(parts) not in counts:
        raise _bad(name, text, f"give {' or '.join(map(str, counts))} values in px or %")
    out = []
    for part in parts:
        match = _LENGTH.fullmatch(part)
        if match is None:
            raise _bad(name, text, "each value is a number with px or % (30px, 10%)")
        relative = match.group(2) == "%"
        number = float(match.group(1))
        if relative and number > 100:
            raise _bad(name, text, "a percentage is at most 100%")
        if not relative and number > MAX_PX:
            raise _bad(name, text, f"a px value is at most {MAX_PX}")
        out.append(Length(number, relative))
    return out


@dataclass(frozen=True)
class Options:
    """A request's options: those that choose the removal and its outputs, and those that
    finish the cut-out (engine data: :class:`~alphacut.engine.effects.Effects`)."""

    size: str = "auto"
    type: str = "auto"
    type_level: str = "none"
    format: str = "auto"
    channels: str = "rgba"
    model: str | None = None
    refine: str | None = None
    effects: Effects = field(default_factory=Effects)
    hints: Hints = field(default_factory=Hints)


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(name, value, "send a string")
    if isinstance(value, str) and len(value) > _MAX_OPTION_CHARS:
        raise _bad(name, value, f"at most {_MAX_OPTION_CHARS} characters")
    text = str(value).strip()
    return text or None


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    text = _text(fields, name)
    if text is None:
        return default
    if text not in allowed:
        raise _bad(name, text, "one of " + ", ".join(allowed))
    return text


def _model(fields: Mapping[str, Any]) -> str | None:
    """alphacut's extension: ``model`` = fast, precise or any installed catalogue model."""
    text = _text(fields, "model")
    if text is None or text == "":
        return None
    if not is_model_name(text):
        raise _bad("model", text, "one of " + model_choices())
    return text


def _flag(fields: Mapping[str, Any], name: str, default: bool, strict: bool) -> bool:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if (
        not strict
        and isinstance(value, str)
        and value.strip().lower() in ("true", "1", "false", "0")
    ):
        return value.strip().lower() in ("true", "1")
    raise _bad(name, value, "true or false")


def parse_options(fields: Mapping[str, Any], *, json_body: bool) -> Options:
    """The options of a request (form fields or a JSON object); 400 for any unknown value.
    A JSON body must send booleans as booleans; a form sends them as ``true``/``false``."""
    _choice(fields, "shadow_type", SHADOW_TYPES, "drop")  # accepted: one drop shadow
    scale = _scale(fields)
    opacity = _shadow_opacity(fields, json_body)  # checked even without add_shadow
    effects = Effects(
        roi=_roi(fields),
        semitransparency=_flag(fields, "semitransparency", True, json_body),
        crop=_flag(fields, "crop", False, json_body),
        crop_margin=_crop_margin(fields),
        scale=scale,
        position=_position(fields, scale),
        shadow_opacity=opacity if _flag(fields, "add_shadow", False, json_body) else None,
        background_color=_bg_color(fields),
    )
    return Options(
        size=_choice(fields, "size", tuple(SIZES), "auto"),
        type=_choice(fields, "type", TYPES, "auto"),
        type_level=_choice(fields, "type_level", TYPE_LEVELS, "none"),
        format=_choice(fields, "format", FORMATS, "auto"),
        channels=_choice(fields, "channels", CHANNELS, "rgba"),
        model=_model(fields),
        refine=_choice(fields, "refine", REFINES, "") or None,
        effects=effects,
        hints=Hints(points=_points(fields)),
    )


def _points(fields: Mapping[str, Any]) -> tuple[Point, ...]:
    """alphacut's extension: ``points``, clicks that correct the cut-out, in the photo's
    pixels: ``"120,80 40,30:bg"`` (a form or JSON string), or in a JSON body a list of
    ``{"x": 120, "y": 80, "label": "subject" | "background"}``."""
    value = fields.get("points")
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        if len(value) > _MAX_POINTS_CHARS:
            raise _bad("points", value, f"at most {MAX_POINTS} points")
        return parse_points(value)
    return points_from_json(value)


def _roi(fields: Mapping[str, Any]) -> tuple[Length, Length, Length, Length] | None:
    if (text := _text(fields, "roi")) is None:
        return None
    x1, y1, x2, y2 = _lengths("roi", text, (4,))
    for low, high in ((x1, x2), (y1, y2)):  # 400 now, where it can be
        if low.relative == high.relative and high.value <= low.value:
            raise _bad("roi", text, "x2 and y2 must be right of and below x1, y1")
    return (x1, y1, x2, y2)


def _crop_margin(fields: Mapping[str, Any]) -> tuple[Length, ...]:
    if (text := _text(fields, "crop_margin")) is None:
        return (Length(0),)
    return tuple(_lengths("crop_margin", text, (1, 2, 4)))


def _scale(fields: Mapping[str, Any]) -> float | None:
    if (text := _text(fields, "scale")) is None or text == "original":
        return None
    match = _PERCENT.fullmatch(text)
    if match is None or not 10 <= float(match.group(1)) <= 100:
        raise _bad("scale", text, "original, or 10% to 100%")
    return float(match.group(1)) / 100


def _position(fields: Mapping[str, Any], scale: float | None) -> tuple[float, float] | None:
    text = _text(fields, "position")
    if text is None:
        # remove.bg: scaling implies position=center, unless given
        return (0.5, 0.5) if scale is not None else None
    if text == "original":
        return None
    if text == "center":
        return (0.5, 0.5)
    values = []
    parts = text.split()
    if len(parts) not in (1, 2):
        raise _bad("position", text, "original, center, or one or two of 0%-100%")
    for part in parts:
        match = _PERCENT.fullmatch(part)
        if match is None or float(match.group(1)) > 100:
            raise _bad("position", text, "original, center, or one or two of 0%-100%")
        values.append(float(match.group(1)) / 100)
    return (values[0], values[-1])


def _shadow_opacity(fields: Mapping[str, Any], json_body: bool) -> int:
    raw = fields.get("shadow_opacity")
    if raw is None or raw == "":
        return 50
    if json_body and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise _bad("shadow_opacity", raw, "an integer from 0 to 100")
    try:
        opacity = int(str(raw).strip())
    except ValueError:
        raise _bad("shadow_opacity", raw, "an integer from 0 to 100") from None
    if not 0 <= opacity <= 100:
        raise _bad("shadow_opacity", raw, "an integer from 0 to 100")
    return opacity


def _bg_color(fields: Mapping[str, Any]) -> str | None:
    color = _text(fields, "bg_color")
    if color is not None:
        try:
            parse_color(color)  # 400 now, not after the removal
        except InvalidInputError as exc:
            raise InvalidInputError(f"invalid value for bg_color: {exc.message}") from None
    return color


# From the wire to the use case -----------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The request's images as they came: exactly one source of the photo, at most one of
    the background's (``bg_color`` counts as one)."""

    image_file: bytes | None = None
    image_file_b64: object = None
    image_url: str | None = None
    bg_image_file: bytes | None = None
    bg_image_url: str | None = None


def cutout_request(options: Options, inputs: Inputs, key_id: str, max_bytes: int) -> CutoutRequest:
    """What the use case is asked for: the photo's source, the background's, the effects and
    the one output (its kind and format from ``channels`` and ``format``)."""
    given = [
        name
        for name in ("image_file", "image_file_b64", "image_url")
        if getattr(inputs, name) not in (None, "", b"")
    ]
    if len(given) != 1:
        which = "none" if not given else " and ".join(given)
        raise InvalidInputError(
            f"send exactly one of image_file, image_file_b64 and image_url (got {which})"
        )
    if inputs.image_file:
        source = Source(data=inputs.image_file)
    elif inputs.image_url:
        source = Source(url=inputs.image_url)
    else:
        source = Source(
            data=decode_inline_image("image_file_b64", inputs.image_file_b64, max_bytes)
        )
    backgrounds = [name for name in ("bg_image_file", "bg_image_url") if getattr(inputs, name)]
    if options.effects.background_color is not None:
        backgrounds.append("bg_color")
    if len(backgrounds) > 1:
        raise InvalidInputError("send at most one of bg_color, bg_image_url, bg_image_file")
    background = None
    if inputs.bg_image_file:
        background = Source(data=inputs.bg_image_file)
    elif inputs.bg_image_url:
        background = Source(url=inputs.bg_image_url)
    effects = options.effects
    if options.channels == "alpha":  # the matte alone: no background goes under it
        effects, background = replace(effects, background_color=None), None
        kind, fmt = "mask", {"jpg": "jpeg", "webp": "webp"}.get(options.format, "png")
    else:
        kind, fmt = "cutout", {"jpg": "jpeg"}.get(options.format, options.format)
    return CutoutRequest(
        key_id=key_id,
        source=source,
        model=options.model,
        refine=options.refine,
        max_pixels=SIZES[options.size],
        effects=effects,
        background=background,
        outputs=(OutputSpec(kind, fmt),),  # type: ignore[arg-type]
        hints=options.hints,
    )


# The routes ------------------------------------------------------------------------------

router = APIRouter(tags=["remove.bg"])
_FILES = ("image_file", "bg_image_file")


def removebg_key(
    request: Request,
    svc: ServicesDep,
    x_api_key: Annotated[
        str | None, Header(description="An alphacut API key (remove.bg's X-Api-Key).")
    ] = None,
) -> ApiKey:
    key = admit(request, svc, x_api_key, "no API key was sent: send it in the X-Api-Key header")
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
        "points": _string(
            "alphacut extension: clicks that correct the cut-out, in the photo's pixels, in "
            "the order made: x,y (subject) or x,y:bg (background), separated by spaces; at "
            f"most {MAX_POINTS}. A JSON body may send a list of "
            '{"x": 120, "y": 80, "label": "subject"|"background"} instead.'
        ),
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
            "alphacut extension: auto (precise, or fast's cut-out where the confidence "
            "prefers it), fast, precise or a model installed on this server.",
            enum=list(MODEL_NAMES),
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
    "X-Confidence": {
        "description": "alphacut extension: the cut-out's estimated IoU against a person's "
        "mask, 0..1 (docs/quality.md: how well it ranks and how it is calibrated).",
        "schema": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "X-Doubtful": {
        "description": "alphacut extension: `true` where the confidence is under the server's "
        "threshold (ALPHACUT_DOUBTFUL_BELOW): a cut-out worth a person's look.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    # remove.bg's, where ALPHACUT_RATE_LIMIT_PER_MINUTE is set (alphacut counts requests).
    "X-RateLimit-Limit": {"description": "The key's requests per minute.", **_INT},
    "X-RateLimit-Remaining": {"description": "Requests left in the last minute.", **_INT},
    "X-RateLimit-Reset": {
        "description": "Unix time at which the oldest request of the last minute stops counting.",
        **_INT,
    },
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
                "confidence": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "alphacut extension: as `X-Confidence`.",
                },
                "doubtful": {
                    "type": "boolean",
                    "description": "alphacut extension: as `X-Doubtful`.",
                },
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
                        raise ImageTooLargeError.over_bytes(value.size, limit, name)
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
        "only bounds the resolution. `model` and `refine` are alphacut extensions, and so are "
        "`X-Confidence` / `X-Doubtful` (and `confidence` / `doubtful` in JSON): how sure the "
        "cut-out is. A photo without a subject is refused as remove.bg refuses it: 400, code "
        "`unknown_foreground`."
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
    wanted = cutout_request(options, inputs, key.id, svc.settings.max_input_bytes)
    deadline = deadline_of(request, svc.settings)
    result = await run_in_threadpool(
        lambda: svc.cutouts.run(
            wanted, deadline=deadline, answered=lambda: not client_gone(request)
        )
    )
    (output,) = result.outputs
    left, top, right, bottom = result.subject or (0, 0, 0, 0)
    top, left, width, height = top, left, right - left, bottom - top
    headers = {
        "X-Width": str(result.width),
        "X-Height": str(result.height),
        "X-Credits-Charged": "0",
        "X-Type": "other" if options.type == "auto" else options.type,
        "X-Foreground-Top": str(top),
        "X-Foreground-Left": str(left),
        "X-Foreground-Width": str(width),
        "X-Foreground-Height": str(height),
        **confidence_headers(result),
        **rate_limit_headers(request),
    }
    if "application/json" in request.headers.get("accept", "").lower():
        data = {
            "result_b64": base64.b64encode(output.data).decode("ascii"),
            "foreground_top": top,
            "foreground_left": left,
            "foreground_width": width,
            "foreground_height": height,
        }
        if result.confidence is not None:
            data["confidence"] = result.confidence
            data["doubtful"] = result.doubtful
        return JSONResponse({"data": data}, headers=headers)
    return Response(output.data, media_type=output.media_type, headers=headers)


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
def account(
    request: Request, svc: ServicesDep, key: Annotated[ApiKey, Depends(removebg_key)]
) -> JSONResponse:
    requests, images = svc.keys.key_usage(key.id, 30)
    credits = {"total": 0, "subscription": 0, "payg": 0, "enterprise": 0}
    attributes = {
        "credits": credits,
        "api": {"free_calls": svc.settings.rate_limit_per_minute or 0, "sizes": "all"},
        "usage": {"requests": requests, "images": images},
    }
    return JSONResponse({"data": {"attributes": attributes}}, headers=rate_limit_headers(request))
