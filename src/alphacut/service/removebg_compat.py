"""The remove.bg API (``POST /v1.0/removebg``): its parameters, checked, and its result.

The request is parsed here into :class:`Options` (every value remove.bg documents is
accepted; any other is a 400), the cut-out is made through the inference port with the input
first shrunk to the ``size`` asked for, and the remove.bg options that work on the cut-out
(``roi``, ``semitransparency``, ``crop``/``crop_margin``, ``scale``/``position``,
``add_shadow``, ``bg_color``/``bg_image_*``, ``channels``, ``format``) are applied to it on
the image queue, in that order.

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
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from alphacut.config import Settings
from alphacut.engine.compose import Box, on_background, parse_color, subject_box
from alphacut.engine.decode import Limits, decode, probe_size, sniff
from alphacut.engine.encode import encode_image
from alphacut.errors import (
    AlphacutError,
    ImageTooLargeError,
    InvalidInputError,
    ProcessingTimeoutError,
    ServiceBusyError,
)
from alphacut.models.registry import is_model_name, model_choices
from alphacut.service import operations as ops
from alphacut.service.fetcher import UrlFetcher
from alphacut.service.inference import Inference, InferenceJob, OutputSpec
from alphacut.service.memory import operation_cost
from alphacut.service.work import WorkQueue

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
REFINES = ("none", "edges", "consensus")
BOOLEANS = ("crop", "add_shadow", "semitransparency")
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "zip": "application/zip",
}
# A number as remove.bg writes one (30, 12.5): at most 9 digits before the point and 6 after,
# so that no value is past what a float holds exactly or an image side can be.
_NUMBER = r"(\d{1,9}(?:\.\d{1,6})?)"
_LENGTH = re.compile(_NUMBER + r"(px|%)?")
_PERCENT = re.compile(_NUMBER + "%")
# The longest option value (the longest valid one, a colour name or a roi, is ~60).
_MAX_OPTION_CHARS = 256
# The largest px value: a side of the largest image Pillow and numpy index (2**31 - 1).
_MAX_PX = 2**31 - 1
_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
# remove.bg: "the maximum margin that can be added on each side is 50% of the subject
# dimensions or 500 pixels".
_MAX_MARGIN_PX = 500
# RGBA copies the options may make on the way (roi, placement, shadow, background): 4 B each.
_COMPOSE_BYTES_PER_PX = 16


def _bad(name: str, value: object, allowed: str) -> InvalidInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return InvalidInputError(f"invalid value for {name}: {shown}; {allowed}")


@dataclass(frozen=True)
class Length:
    value: float
    relative: bool

    def px(self, whole: int) -> float:
        return whole * self.value / 100 if self.relative else self.value


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
        if not relative and number > _MAX_PX:
            raise _bad(name, text, f"a px value is at most {_MAX_PX}")
        out.append(Length(number, relative))
    return out


@dataclass(frozen=True)
class Options:
    size: str = "auto"
    type: str = "auto"
    type_level: str = "none"
    format: str = "auto"
    roi: tuple[Length, ...] | None = None
    crop: bool = False
    crop_margin: tuple[Length, ...] = (Length(0, False),)
    scale: float | None = None  # fraction 0.1-1; None: original
    position: tuple[float, float] | None = None  # fractions; None: original
    channels: str = "rgba"
    add_shadow: bool = False
    shadow_opacity: int = 50
    semitransparency: bool = True
    bg_color: str | None = None
    model: str | None = None
    refine: str | None = None


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
    size = _choice(fields, "size", tuple(SIZES), "auto")
    roi = None
    if (text := _text(fields, "roi")) is not None:
        roi = tuple(_lengths("roi", text, (4,)))
        for low, high in ((roi[0], roi[2]), (roi[1], roi[3])):  # 400 now, where it can be
            if low.relative == high.relative and high.value <= low.value:
                raise _bad("roi", text, "x2 and y2 must be right of and below x1, y1")
    margin: tuple[Length, ...] = (Length(0, False),)
    if (text := _text(fields, "crop_margin")) is not None:
        margin = tuple(_lengths("crop_margin", text, (1, 2, 4)))
    scale = None
    if (text := _text(fields, "scale")) is not None and text != "original":
        match = _PERCENT.fullmatch(text)
        if match is None or not 10 <= float(match.group(1)) <= 100:
            raise _bad("scale", text, "original, or 10% to 100%")
        scale = float(match.group(1)) / 100
    position = None
    position_text = _text(fields, "position")
    if (text := position_text) is not None and text != "original":
        if text == "center":
            position = (0.5, 0.5)
        else:
            values = []
            parts = text.split()
            if len(parts) not in (1, 2):
                raise _bad("position", text, "original, center, or one or two of 0%-100%")
            for part in parts:
                match = _PERCENT.fullmatch(part)
                if match is None or float(match.group(1)) > 100:
                    raise _bad("position", text, "original, center, or one or two of 0%-100%")
                values.append(float(match.group(1)) / 100)
            position = (values[0], values[-1])
    if scale is not None and position_text is None:
        position = (0.5, 0.5)  # remove.bg: scaling implies position=center, unless given
    opacity = 50
    raw_opacity = fields.get("shadow_opacity")
    if raw_opacity is not None and raw_opacity != "":
        if json_body and (isinstance(raw_opacity, bool) or not isinstance(raw_opacity, int)):
            raise _bad("shadow_opacity", raw_opacity, "an integer from 0 to 100")
        try:
            opacity = int(str(raw_opacity).strip())
        except ValueError:
            raise _bad("shadow_opacity", raw_opacity, "an integer from 0 to 100") from None
        if not 0 <= opacity <= 100:
            raise _bad("shadow_opacity", raw_opacity, "an integer from 0 to 100")
    _choice(fields, "shadow_type", SHADOW_TYPES, "drop")
    bg_color = _text(fields, "bg_color")
    if bg_color is not None:
        try:
            parse_color(bg_color)  # 400 now, not after the removal
        except InvalidInputError as exc:
            raise InvalidInputError(f"invalid value for bg_color: {exc.message}") from None
    refine = _choice(fields, "refine", REFINES, "") or None
    return Options(
        size=size,
        type=_choice(fields, "type", TYPES, "auto"),
        type_level=_choice(fields, "type_level", TYPE_LEVELS, "none"),
        format=_choice(fields, "format", FORMATS, "auto"),
        roi=roi,
        crop=_flag(fields, "crop", False, json_body),
        crop_margin=margin,
        scale=scale,
        position=position,
        channels=_choice(fields, "channels", CHANNELS, "rgba"),
        add_shadow=_flag(fields, "add_shadow", False, json_body),
        shadow_opacity=opacity,
        semitransparency=_flag(fields, "semitransparency", True, json_body),
        bg_color=bg_color,
        model=_model(fields),
        refine=refine,
    )


def decode_b64(name: str, value: object, max_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise _bad(name, "...", "send base64 text")
    if len(value) > (max_bytes * 4) // 3 + 200:
        raise ImageTooLargeError(f"the image is larger than the limit of {max_bytes:,} bytes")
    payload = re.sub(r"\s+", "", _DATA_URI.sub("", value.strip(), count=1))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{name} is not valid base64 data") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the image is larger than the limit of {max_bytes:,} bytes")
    return data


@dataclass(frozen=True)
class Inputs:
    """The request's images as they came: exactly one source of the photo, at most one of
    the background's (``bg_color`` counts as one)."""

    image_file: bytes | None = None
    image_file_b64: object = None
    image_url: str | None = None
    bg_image_file: bytes | None = None
    bg_image_url: str | None = None


@dataclass(frozen=True)
class Result:
    data: bytes
    media_type: str
    width: int
    height: int
    foreground: tuple[int, int, int, int]  # top, left, width, height
    type: str


class RemoveBgCompat:
    def __init__(
        self,
        settings: Settings,
        inference: Inference,
        image_queue: WorkQueue,
        fetcher: UrlFetcher,
    ) -> None:
        self.settings = settings
        self.inference = inference
        self.image_queue = image_queue
        self.fetcher = fetcher
        self.limits = Limits(settings.max_input_bytes, settings.max_input_pixels)

    def run(
        self,
        options: Options,
        inputs: Inputs,
        deadline: float | None = None,
        key_id: str | None = None,
    ) -> Result:
        """The result, by ``deadline`` (``time.monotonic()``; default:
        ``ALPHACUT_REQUEST_TIMEOUT_SECONDS`` from now) or a 504. Every input is checked
        before the removal, the background image decoded once to prove it is one: a bad
        ``bg_image_*`` costs no removal."""
        if deadline is None:
            deadline = time.monotonic() + self.settings.request_timeout_seconds
        image = self._photo(inputs)
        background = self._background(options, inputs)
        if background is not None:
            self._check_background(background, deadline)
        left = _left(deadline)
        job = InferenceJob(
            model=options.model or self.settings.default_model,
            data=image,
            refine=options.refine,
            max_pixels=SIZES[options.size],
            outputs=(OutputSpec("cutout", "png"),),
            timeout=left,
            key_id=key_id,
        )
        removed = self.inference.submit(job)
        cut = removed.outputs[0]
        # Decoding the cut-out, a few RGBA copies while composing, a background, the encoder.
        pixels = removed.width * removed.height
        extra = _COMPOSE_BYTES_PER_PX * pixels + 4 * (_pixels(background) or 0)
        cost = operation_cost("compose", pixels, pixels, extra)
        # Admitted work: it waits for an image worker, but not past the request's deadline.
        try:
            return self.image_queue.run(
                lambda: self._finish(options, cut, background),
                wait=_left(deadline),
                cost=cost,
                deadline=deadline,
            )
        except ServiceBusyError:
            _left(deadline)  # the wait ended at the deadline: a 504, not a 503
            raise

    def _check_background(self, data: bytes, deadline: float) -> None:
        """Decode the background image now (415/422/413 before any removal). It is decoded
        again when composing: kept decoded through the removal, it would be memory outside
        the budget that the removal was admitted under."""
        pixels = _pixels(data) or 0
        self.image_queue.run(
            lambda: decode(data, self.limits),
            cost=operation_cost("decode", pixels, 0),
            deadline=deadline,
        )

    def _photo(self, inputs: Inputs) -> bytes:
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
        limit = self.settings.max_input_bytes
        if inputs.image_file:
            if len(inputs.image_file) > limit:
                raise ImageTooLargeError(f"the image is larger than the limit of {limit:,} bytes")
            return inputs.image_file
        if inputs.image_url:
            return self.fetcher.fetch(inputs.image_url, limit)
        return decode_b64("image_file_b64", inputs.image_file_b64, limit)

    def _background(self, options: Options, inputs: Inputs) -> bytes | None:
        given = [name for name in ("bg_image_file", "bg_image_url") if getattr(inputs, name)]
        if options.bg_color is not None:
            given.append("bg_color")
        if len(given) > 1:
            raise InvalidInputError("send at most one of bg_color, bg_image_url, bg_image_file")
        limit = self.settings.max_input_bytes
        if inputs.bg_image_file:
            return inputs.bg_image_file
        if inputs.bg_image_url:
            return self.fetcher.fetch(inputs.bg_image_url, limit)
        return None

    def _finish(self, options: Options, png: bytes, bg_data: bytes | None) -> Result:
        with Image.open(io.BytesIO(png)) as opened:
            cut = opened.convert("RGBA")
            icc = opened.info.get("icc_profile")
        cut = compose(cut, options)
        alpha = cut.getchannel("A")
        box = subject_box(alpha)
        left, top, right, bottom = box or (0, 0, 0, 0)
        foreground = (top, left, right - left, bottom - top)
        fmt = options.format
        if options.channels == "alpha":
            fmt = "jpg" if fmt == "jpg" else ("webp" if fmt == "webp" else "png")
            data = self._encode(alpha, fmt, None)
        else:
            if bg_data is not None:
                cut = self._on_image(cut, bg_data)
            elif options.bg_color is not None:
                color = parse_color(options.bg_color)
                flat = on_background(cut, color)
                cut = flat.convert("RGBA")
            if fmt == "auto":
                fmt = "png" if int(np.asarray(cut.getchannel("A")).min()) < 255 else "jpg"
            if fmt == "zip":
                data = self._zip(cut, icc)
            elif fmt == "jpg":
                data = self._encode(on_background(cut, (255, 255, 255, 255)), "jpg", icc)
            else:
                data = self._encode(cut, fmt, icc)
        kind = "other" if options.type == "auto" else options.type
        return Result(data, MEDIA_TYPES[fmt], cut.width, cut.height, foreground, kind)

    def _encode(self, image: Image.Image, fmt: str, icc: bytes | None) -> bytes:
        return encode_image(
            image,
            "jpeg" if fmt == "jpg" else fmt,  # type: ignore[arg-type]
            quality=90 if fmt == "jpg" else None,
            icc_profile=icc,
            png_level=self.settings.png_compress_level,
            threads=self.settings.image_threads,
        )

    def _zip(self, cut: Image.Image, icc: bytes | None) -> bytes:
        """remove.bg's ZIP: ``color.jpg`` (the colours, no transparency) and ``alpha.png``
        (the greyscale alpha matte, white = subject)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("color.jpg", self._encode(cut.convert("RGB"), "jpg", icc))
            archive.writestr("alpha.png", self._encode(cut.getchannel("A"), "png", None))
        return buffer.getvalue()

    def _on_image(self, cut: Image.Image, data: bytes) -> Image.Image:
        """The cut-out over a background image, centred and resized to cover the canvas with
        its aspect ratio kept (remove.bg's rule), unless it already has the canvas's size."""
        background = decode(data, self.limits).image.convert("RGBA")
        if background.size != cut.size:
            # Only the part that stays visible is scaled (operations.resize's cover): scaling
            # the whole background first would make a 1 x 50,000,000 px one 5e11 px tall.
            background = ops.resize(
                background,
                width=cut.width,
                height=cut.height,
                fit="cover",
                max_pixels=self.limits.max_pixels,
            )
        return Image.alpha_composite(background, cut)


def _left(deadline: float) -> float:
    """Seconds to ``deadline``; 504 when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProcessingTimeoutError("the request ran past the server's time limit")
    return left


def _pixels(data: bytes | None) -> int | None:
    """Pixels of an encoded image from its header (None: none to read; decoding says why)."""
    if data is None:
        return None
    try:
        size = probe_size(data, sniff(data[:64]))
    except AlphacutError:
        return None
    return size[0] * size[1] if size else None


# The pixel work on the cut-out ---------------------------------------------------------


def compose(cut: Image.Image, options: Options) -> Image.Image:
    """``roi``, ``semitransparency``, ``crop``, ``scale``/``position`` and ``add_shadow``
    applied to an RGBA cut-out, in that order."""
    if options.roi is not None:
        cut = keep_region(cut, options.roi)
    if not options.semitransparency:
        alpha = cut.getchannel("A").point(lambda v: 255 if v >= 128 else 0)
        cut.putalpha(alpha)
    box = subject_box(cut.getchannel("A"))
    if options.crop and box is not None:
        cut = cut.crop(_margin_box(box, options.crop_margin))
        box = subject_box(cut.getchannel("A"))
    if box is not None and (options.scale is not None or options.position is not None):
        cut = place(cut, box, options.scale, options.position)
    if options.add_shadow:
        cut = with_shadow(cut, options.shadow_opacity)
    return cut


def keep_region(cut: Image.Image, roi: tuple[Length, ...]) -> Image.Image:
    """Only what lies inside ``x1 y1 x2 y2`` can be subject: alpha outside goes to 0."""
    x1, y1, x2, y2 = (
        round(roi[0].px(cut.width)),
        round(roi[1].px(cut.height)),
        round(roi[2].px(cut.width)),
        round(roi[3].px(cut.height)),
    )
    if x2 <= x1 or y2 <= y1:
        raise InvalidInputError(
            "invalid value for roi: x2 and y2 must be right of and below x1, y1"
        )
    array = np.array(cut)
    inside = np.zeros(array.shape[:2], dtype=bool)
    inside[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    array[~inside] = 0
    return Image.fromarray(array, "RGBA")


def _margin_box(box: Box, margin: tuple[Length, ...]) -> Box:
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    if len(margin) == 1:
        m_top = m_right = m_bottom = m_left = margin[0]
    elif len(margin) == 2:
        m_top = m_bottom = margin[0]
        m_right = m_left = margin[1]
    else:
        m_top, m_right, m_bottom, m_left = margin

    def px(length: Length, whole: int) -> int:
        return round(min(length.px(whole), whole / 2, _MAX_MARGIN_PX))

    return (
        left - px(m_left, width),
        top - px(m_top, height),
        right + px(m_right, width),
        bottom + px(m_bottom, height),
    )


def place(
    cut: Image.Image, box: Box, scale: float | None, position: tuple[float, float] | None
) -> Image.Image:
    """The subject (``box``) resized so that it fits ``scale`` of the canvas, then placed at
    ``position`` (fractions of the free room: 0 left/top, 0.5 centre, 1 right/bottom); the
    canvas keeps its size."""
    subject = cut.crop(box)
    if scale is not None:
        factor = scale * min(cut.width / subject.width, cut.height / subject.height)
        size = (max(1, round(subject.width * factor)), max(1, round(subject.height * factor)))
        subject = subject.resize(size, Image.Resampling.LANCZOS)
    if position is None:
        x, y = box[0], box[1]
    else:
        x = round((cut.width - subject.width) * position[0])
        y = round((cut.height - subject.height) * position[1])
    canvas = Image.new("RGBA", cut.size, (0, 0, 0, 0))
    canvas.paste(subject, (x, y))  # onto nothing: a plain copy keeps the alpha exact
    return canvas


def with_shadow(cut: Image.Image, opacity: int) -> Image.Image:
    """A soft drop shadow: the subject's alpha at ``opacity`` %, blurred by 2 % of the
    subject's height and shifted down by 1.5 % of it, under the subject."""
    alpha = cut.getchannel("A")
    box = subject_box(alpha)
    if box is None or opacity == 0:
        return cut
    height = box[3] - box[1]
    radius = max(1.0, height * 0.02)
    dx, dy = round(height * 0.006), max(1, round(height * 0.015))
    shade = alpha.point(lambda v: v * opacity // 100)
    moved = Image.new("L", cut.size, 0)
    moved.paste(shade, (dx, dy))
    moved = moved.filter(ImageFilter.GaussianBlur(radius))
    shadow = Image.new("RGBA", cut.size, (0, 0, 0, 0))
    shadow.putalpha(moved)
    return Image.alpha_composite(shadow, cut)
