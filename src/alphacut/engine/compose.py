"""Pixels from a photo and a mask: the cut-out, a solid background, and the crop to the subject."""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageColor

from alphacut.errors import InvalidInputError

RGBA = tuple[int, int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)

# Alpha at or below this is treated as empty when finding the subject's box: the models leave
# faint noise (1-3 of 255) in the background that must not defeat cropping.
SUBJECT_ALPHA_THRESHOLD = 8

_BARE_HEX = re.compile(r"[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}")
_MARGIN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(px|%)?\s*")


def parse_color(value: str | tuple[int, ...]) -> RGBA:
    """``#rgb``, ``#rrggbb``, ``#rrggbbaa`` (with or without ``#``), a CSS name, ``rgb()`` or a
    tuple -> an RGBA tuple."""
    if isinstance(value, tuple):
        if len(value) in (3, 4) and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
            return (value[0], value[1], value[2], value[3] if len(value) == 4 else 255)
        raise InvalidInputError(f"a colour tuple needs 3 or 4 integers 0-255, got {value!r}")
    text = value.strip()
    if _BARE_HEX.fullmatch(text):
        text = "#" + text
    try:
        r, g, b, a = ImageColor.getcolor(text, "RGBA")  # type: ignore[misc]
    except ValueError:
        raise InvalidInputError(
            f"invalid colour {value!r}; use a hex colour such as #ffffff or #00000080, "
            "or a CSS colour name"
        ) from None
    return (r, g, b, a)


def cutout_array(rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A new ``(h, w, 4)`` RGBA array from an ``(h, w, 3)`` colour array and an ``(h, w)``
    alpha.

    Fully transparent pixels get zero colour: the file then carries nothing of the removed
    background (no leak of what was cut away) and compresses better. Built in numpy/OpenCV
    from arrays (one pass to interleave, one to clear): at 12 MP 0.03 s, where Pillow's
    copy + putalpha + a copy back to numpy took 0.15 s.
    """
    out = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA), dtype=np.uint8)
    out[..., 3] = alpha
    packed = out.view(np.uint32).reshape(out.shape[:2])
    np.multiply(packed, alpha != 0, out=packed, casting="unsafe")
    return out


def on_background(cutout: Image.Image, color: RGBA) -> Image.Image:
    """The RGBA cut-out over a solid colour: RGB when the colour is opaque, else RGBA."""
    if color[3] == 255:
        background = Image.new("RGB", cutout.size, color[:3])
        background.paste(cutout, mask=cutout.getchannel("A"))
        return background
    return Image.alpha_composite(Image.new("RGBA", cutout.size, color), cutout)


def transparent(image: Image.Image) -> bool:
    """Whether any pixel of ``image`` is less than opaque (what a cut-out has and a photo
    has not)."""
    if image.mode != "RGBA":
        return False
    low, _high = image.getchannel("A").getextrema()
    return bool(low < 255)  # type: ignore[operator]


def subject_box(alpha: Image.Image) -> Box | None:
    """The bounding box of the visible subject, or ``None`` when the mask is empty."""
    visible = alpha.point(
        [0] * (SUBJECT_ALPHA_THRESHOLD + 1) + [255] * (255 - SUBJECT_ALPHA_THRESHOLD)
    )
    return visible.getbbox()


@dataclass(frozen=True)
class Margin:
    """Space around the subject when cropping: pixels, or a percentage of the subject's size."""

    value: float
    relative: bool

    @classmethod
    def parse(cls, value: int | float | str) -> Margin:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number, relative = float(value), False
        else:
            match = _MARGIN.fullmatch(str(value))
            if match is None:
                raise InvalidInputError(
                    f"invalid crop margin {value!r}; use pixels (30 or 30px) or a percentage (10%)"
                )
            number, relative = float(match.group(1)), match.group(2) == "%"
        if number < 0 or (relative and number > 100) or (not relative and number > 10_000):
            raise InvalidInputError(f"crop margin {value!r} out of range (0-10000 px or 0-100%)")
        return cls(number, relative)

    def box_around(self, box: Box) -> Box:
        left, top, right, bottom = box
        dx = (right - left) * self.value / 100 if self.relative else self.value
        dy = (bottom - top) * self.value / 100 if self.relative else self.value
        return (left - round(dx), top - round(dy), right + round(dx), bottom + round(dy))
