"""Finishing a cut-out: what remove.bg's options do to it, as plain data and pixel work.

:class:`Effects` says what to do: keep only a region of interest (``roi``), make the alpha
binary (``semitransparency=False``), crop to the subject with a margin, scale and place the
subject on its canvas, add a drop shadow, and put it on a colour or a photo. It travels
inside the inference job, so the finishing runs where the cut-out is made (on the worker, on
a fleet) and the cut-out is never encoded and decoded again on its way. :func:`apply_effects`
runs them in that order and says where the subject ended up (before any background, as
remove.bg's ``X-Foreground-*`` headers do).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from alphacut.engine.compose import Box, on_background, parse_color, subject_box, transparent
from alphacut.engine.decode import Limits, decode
from alphacut.engine.operations import Operation, OperationContext, Size, resize
from alphacut.engine.pipeline import Cutout
from alphacut.errors import InvalidInputError

# remove.bg: "the maximum margin that can be added on each side is 50% of the subject
# dimensions or 500 pixels".
MAX_MARGIN_PX = 500
# The largest px length: a side of the largest image Pillow and numpy index.
MAX_PX = 2**31 - 1
# RGBA copies the effects may make on the way (roi, placement, shadow, background): 4 B each.
BYTES_PER_PX = 16
# The largest blur of a background photo, in px: enough to melt a 50 MP photo's detail.
MAX_BLUR = 100


@dataclass(frozen=True)
class Length:
    """A length in pixels, or (``relative``) in percent of a whole."""

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        most = 100 if self.relative else MAX_PX
        if not (
            isinstance(self.value, int | float)
            and not isinstance(self.value, bool)
            and math.isfinite(self.value)
            and 0 <= self.value <= most
        ):
            unit = "%" if self.relative else "px"
            raise InvalidInputError(f"a length must be a number from 0 to {most} {unit}")

    def px(self, whole: int) -> float:
        return whole * self.value / 100 if self.relative else self.value


@dataclass(frozen=True)
class Effects:
    """What to do to a cut-out after the removal, in this order (all off by default)."""

    roi: tuple[Length, Length, Length, Length] | None = None  # x1 y1 x2 y2: only inside
    semitransparency: bool = True  # False: the alpha cut at 50 %
    crop: bool = False  # to the subject, plus ``crop_margin`` (1, 2 or 4 lengths, CSS order)
    crop_margin: tuple[Length, ...] = (Length(0),)
    scale: float | None = None  # the subject fits this fraction (0.1-1) of the canvas
    position: tuple[float, float] | None = None  # fractions of the free room; None: as is
    shadow_opacity: int | None = None  # a drop shadow at this % (0-100); None: no shadow
    background_color: str | None = None  # "#rrggbb[aa]" or a CSS name
    # A photo to put the subject on (covering the canvas), as it was sent: decoded where the
    # effects run, within the decoder's limits.
    background_image: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Every value checked where it is made, whoever makes it: a dialect's parser (which
        words its own 400s first) or a job read from the broker."""
        for name in ("semitransparency", "crop"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false")
        if self.roi is not None and (
            len(self.roi) != 4 or not all(isinstance(x, Length) for x in self.roi)
        ):
            raise InvalidInputError("roi must be four lengths: x1 y1 x2 y2")
        if len(self.crop_margin) not in (1, 2, 4) or not all(
            isinstance(x, Length) for x in self.crop_margin
        ):
            raise InvalidInputError("crop_margin must be 1, 2 or 4 lengths")
        if self.scale is not None and not (_number(self.scale) and 0.1 <= self.scale <= 1):
            raise InvalidInputError("scale must be from 10% to 100%")
        if self.position is not None and not (
            len(self.position) == 2 and all(_number(x) and 0 <= x <= 1 for x in self.position)
        ):
            raise InvalidInputError("position must be two fractions from 0 to 1")
        _check_opacity(self.shadow_opacity)
        if self.background_color is not None:
            parse_color(self.background_color)  # a bad colour is refused before any work
        if self.background_color is not None and self.background_image is not None:
            raise InvalidInputError("send at most one background: a colour or an image")

    @property
    def any(self) -> bool:
        return self != Effects()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def finish(cut: Cutout, effects: Effects, limits: Limits) -> tuple[Cutout, Box | None]:
    """The cut-out with ``effects`` applied, and the subject's box in it (before any
    background). Without effects, the cut-out itself: no pixel is copied."""
    if not effects.any:
        return cut, cut.subject_box()
    image, box = apply_effects(cut.image, effects, limits)
    return cut.with_pixels(np.asarray(image).copy()), box


def apply_effects(
    cut: Image.Image, effects: Effects, limits: Limits
) -> tuple[Image.Image, Box | None]:
    """``cut`` (RGBA) with ``effects`` applied, and the subject's box in it before any
    background is put under it (``None``: no visible subject)."""
    if effects.roi is not None:
        cut = keep_region(cut, effects.roi)
    if not effects.semitransparency:
        cut.putalpha(cut.getchannel("A").point(lambda v: 255 if v >= 128 else 0))
    box = subject_box(cut.getchannel("A"))
    if effects.crop and box is not None:
        cut = cut.crop(margin_box(box, effects.crop_margin))
        box = subject_box(cut.getchannel("A"))
    if box is not None and (effects.scale is not None or effects.position is not None):
        cut = place(cut, box, effects.scale, effects.position)
    data = effects.background_image
    return backdrop(
        cut,
        shadow_opacity=effects.shadow_opacity,
        color=effects.background_color,
        photo=None if data is None else lambda: decode(data, limits).image,
        max_pixels=limits.max_pixels,
    )


def backdrop(
    cut: Image.Image,
    *,
    shadow_opacity: int | None = None,
    color: str | None = None,
    photo: Callable[[], Image.Image] | None = None,
    blur: float = 0.0,
    max_pixels: int,
) -> tuple[Image.Image, Box | None]:
    """The last steps of the finishing, shared by remove.bg's options and the images API's
    ``background`` operation: a drop shadow at ``shadow_opacity`` %, then the cut-out over a
    ``color`` or a ``photo`` (read only now, so that it is decoded once the work runs;
    covering the canvas, then blurred by ``blur`` px). Answers the image (RGBA) and the
    subject's box before the background (``None``: no visible subject)."""
    if shadow_opacity is not None:
        cut = with_shadow(cut, shadow_opacity)
    box = subject_box(cut.getchannel("A"))
    if photo is not None:
        cut = on_photo(cut, photo(), max_pixels, blur)
    elif color is not None:
        cut = on_background(cut, parse_color(color)).convert("RGBA")
    return cut, box


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


def margin_box(box: Box, margin: tuple[Length, ...]) -> Box:
    """``box`` grown by 1, 2 or 4 margins (CSS order: all; vertical horizontal; top right
    bottom left), each at most half the subject's side or :data:`MAX_MARGIN_PX`."""
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
        return round(min(length.px(whole), whole / 2, MAX_MARGIN_PX))

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


def _check_opacity(opacity: int | None) -> None:
    if opacity is not None and not (
        isinstance(opacity, int) and not isinstance(opacity, bool) and 0 <= opacity <= 100
    ):
        raise InvalidInputError("shadow_opacity must be an integer from 0 to 100")


def _check_blur(blur: float) -> None:
    if not (_number(blur) and 0 <= blur <= MAX_BLUR):
        raise InvalidInputError(f"blur must be a number of pixels from 0 to {MAX_BLUR}")


def on_photo(
    cut: Image.Image, background: Image.Image, max_pixels: int, blur: float = 0.0
) -> Image.Image:
    """The cut-out over a background photo, centred and resized to cover the canvas with its
    aspect ratio kept (remove.bg's rule), unless it already has the canvas's size; then
    blurred by ``blur`` px (at most :data:`MAX_BLUR`: a Gaussian's cost does not grow with
    its radius in Pillow, which runs it as three box blurs)."""
    _check_blur(blur)
    background = background.convert("RGBA")
    if background.size != cut.size:
        # Only the part that stays visible is scaled (operations.resize's cover): scaling
        # the whole background first would make a 1 x 50,000,000 px one 5e11 px tall.
        background = resize(
            background, width=cut.width, height=cut.height, fit="cover", max_pixels=max_pixels
        )
    if blur:
        background = background.filter(ImageFilter.GaussianBlur(blur))
    return Image.alpha_composite(background, cut)


# A background photo's decoded pixels and its RGBA copy (the decoder measured at most 8 B/px).
_PHOTO_BYTES_PER_PX = 12


@dataclass(frozen=True)
class Background(Operation):
    """The images API's ``background`` (an alphacut extension): :func:`backdrop` on a stored
    cut-out, without running a model again. ``image``: the id of another stored image of the
    caller's to put under it (``image_size``: its size, for the cost), read through the
    context's ``load``; ``blur`` blurs that photo (say, the photo the cut-out was made from)."""

    color: str | None = None
    image: str | None = None
    image_size: Size = (0, 0)
    blur: float = 0.0
    shadow_opacity: int | None = None
    name = "background"

    def __post_init__(self) -> None:
        """Every refusal here is a 400 before any work."""
        if self.color is not None and self.image is not None:
            raise InvalidInputError("give at most one background: a color or an image")
        _check_blur(self.blur)
        if self.blur and self.image is None:
            raise InvalidInputError(
                "blur blurs the background photo: name it with background_image_id (the "
                "cut-out's own photo, for a blurred backdrop)"
            )
        if self.color is None and self.image is None and self.shadow_opacity is None:
            raise InvalidInputError("give a color, a background_image_id or shadow: true")
        if self.color is not None:
            parse_color(self.color)
        _check_opacity(self.shadow_opacity)

    def extra_bytes(self, size: Size, max_pixels: int) -> int:
        return _PHOTO_BYTES_PER_PX * self.image_size[0] * self.image_size[1] + BYTES_PER_PX * (
            size[0] * size[1]
        )

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        if not transparent(image):
            raise InvalidInputError(
                "this image is not a cut-out: it has no transparency to put a background in"
            )
        load, image_id = context.load, self.image
        if image_id is not None and load is None:
            raise ValueError("a background image needs a way to read it")
        photo = None if image_id is None or load is None else lambda: load(image_id)
        context.step()
        out, _box = backdrop(
            image,
            shadow_opacity=self.shadow_opacity,
            color=self.color,
            photo=photo,
            blur=self.blur,
            max_pixels=context.max_pixels,
        )
        return out if transparent(out) else out.convert("RGB")  # opaque: no alpha to store
