"""The image operations of the IMG Processing API, as pure functions on PIL images.

Inputs are upright 8-bit ``RGB`` or ``RGBA`` images (what :func:`alphacut.engine.decode`
produces); outputs are the same. Geometry follows sharp, which that API is built on:
positive rotation angles turn clockwise, uncovered corners are transparent where the format
can hold transparency and black where it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from alphacut.engine.compose import RGBA, parse_color
from alphacut.errors import ImageTooLargeError, InvalidInputError

Fit = Literal["fill", "contain", "cover"]
Position = Literal[
    "center", "top", "right", "bottom", "left", "top-left", "top-right", "bottom-left",
    "bottom-right",
]  # fmt: skip
MirrorMode = Literal["horizontal", "vertical", "both"]
Repetition = Literal["no_repeat", "repeat", "repeat_x", "repeat_y"]

_GRAVITY: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
    "top-left": (0.0, 0.0),
    "top-right": (1.0, 0.0),
    "bottom-left": (0.0, 1.0),
    "bottom-right": (1.0, 1.0),
}
TRANSPARENT: RGBA = (0, 0, 0, 0)
BLACK: RGBA = (0, 0, 0, 255)


def _check_output(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the result would be {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"the limit is {max_pixels / 1e6:g} MP"
        )


def resize(
    image: Image.Image,
    *,
    width: int | None,
    height: int | None,
    fit: Fit = "fill",
    position: Position = "center",
    letterbox: RGBA = TRANSPARENT,
    max_pixels: int,
) -> Image.Image:
    if width is None and height is None:
        raise InvalidInputError("give a width, a height or both")
    if width is None:
        width = max(1, round(image.width * height / image.height))  # type: ignore[operator]
    if height is None:
        height = max(1, round(image.height * width / image.width))
    _check_output(width, height, max_pixels)
    if fit == "fill":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    gx, gy = _GRAVITY[position]
    scale = (min if fit == "contain" else max)(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    scaled = image.resize(inner, Image.Resampling.LANCZOS)
    if fit == "cover":
        left = round((inner[0] - width) * gx)
        top = round((inner[1] - height) * gy)
        return scaled.crop((left, top, left + width, top + height))
    mode = "RGBA" if letterbox[3] < 255 or image.mode == "RGBA" else "RGB"
    canvas = Image.new(mode, (width, height), letterbox if mode == "RGBA" else letterbox[:3])
    offset = (round((width - inner[0]) * gx), round((height - inner[1]) * gy))
    if scaled.mode == "RGBA":
        canvas.paste(scaled, offset, scaled)
    else:
        canvas.paste(scaled, offset)
    return canvas


def letterbox_color(value: str | None, *, alpha_ok: bool) -> RGBA:
    """The API's ``letterbox_color``: a colour, or ``transparent`` (the default where the
    format holds transparency; black otherwise)."""
    if value is None:
        return TRANSPARENT if alpha_ok else BLACK
    if value.strip().lower() == "transparent":
        return TRANSPARENT if alpha_ok else BLACK
    return parse_color(value)


def crop(image: Image.Image, x1: int, y1: int, x2: int, y2: int) -> Image.Image:
    errors = []
    if not 0 <= x1 < x2 <= image.width:
        errors.append(f"x1 and x2 must satisfy 0 <= x1 < x2 <= {image.width} (the width)")
    if not 0 <= y1 < y2 <= image.height:
        errors.append(f"y1 and y2 must satisfy 0 <= y1 < y2 <= {image.height} (the height)")
    if errors:
        raise InvalidInputError("; ".join(errors))
    return image.crop((x1, y1, x2, y2))


def rotate(
    image: Image.Image,
    angle: float,
    *,
    unit: Literal["degrees", "radians"] = "degrees",
    alpha_ok: bool,
    max_pixels: int,
) -> Image.Image:
    degrees = math.degrees(angle) if unit == "radians" else angle
    if not math.isfinite(degrees):
        raise InvalidInputError("angle must be a finite number")
    clockwise = degrees % 360
    quarter = {90.0: Image.Transpose.ROTATE_270, 180.0: Image.Transpose.ROTATE_180,
               270.0: Image.Transpose.ROTATE_90}  # fmt: skip
    if clockwise == 0:
        return image.copy()
    if clockwise in quarter:
        return image.transpose(quarter[clockwise])  # exact, no resampling
    radians = math.radians(clockwise)
    width = abs(image.width * math.cos(radians)) + abs(image.height * math.sin(radians))
    height = abs(image.width * math.sin(radians)) + abs(image.height * math.cos(radians))
    _check_output(math.ceil(width), math.ceil(height), max_pixels)
    source = image.convert("RGBA") if alpha_ok else image
    fill = TRANSPARENT if alpha_ok else BLACK[: len(source.getbands())]
    return source.rotate(-clockwise, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def mirror(image: Image.Image, mode: MirrorMode) -> Image.Image:
    if mode == "horizontal":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if mode == "vertical":
        return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image.transpose(Image.Transpose.ROTATE_180)


def blur(image: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur; ``sigma`` is the kernel's standard deviation in pixels."""
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


@dataclass(frozen=True)
class Modulation:
    brightness: float = 0.0  # -100..100, 0: unchanged; scales the colour values
    contrast: float = 0.0  # -100..100, 0: unchanged
    exposure: float = 1.0  # multiplier of the light (in linear light), 1: unchanged
    saturation: float = 1.0  # multiplier of the colourfulness, 1: unchanged


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def modulate(image: Image.Image, m: Modulation) -> Image.Image:
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    rgb = image.convert("RGB")
    levels = np.arange(256, dtype=np.float64) / 255.0
    if m.exposure != 1.0:
        levels = _linear_to_srgb(np.clip(_srgb_to_linear(levels) * m.exposure, 0.0, 1.0))
    if m.brightness:
        levels = levels * (1.0 + m.brightness / 100.0)
    if m.exposure != 1.0 or m.brightness:
        table = np.clip(np.round(levels * 255.0), 0, 255).astype(np.uint8).tolist()
        rgb = rgb.point(table * 3)
    if m.contrast:
        rgb = ImageEnhance.Contrast(rgb).enhance(1.0 + m.contrast / 100.0)
    if m.saturation != 1.0:
        rgb = ImageEnhance.Color(rgb).enhance(m.saturation)
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


@dataclass(frozen=True)
class Watermark:
    image: Image.Image
    left: int = 0
    top: int = 0
    width: int | None = None
    height: int | None = None
    repetition: Repetition = "no_repeat"


def watermark(base: Image.Image, marks: Sequence[Watermark], *, max_pixels: int) -> Image.Image:
    canvas = base.convert("RGBA")
    for mark in marks:
        overlay = mark.image.convert("RGBA")
        if mark.width is not None or mark.height is not None:
            overlay = resize(overlay, width=mark.width, height=mark.height, max_pixels=max_pixels)
        xs = _tile_starts(
            mark.left, overlay.width, canvas.width, mark.repetition in ("repeat", "repeat_x")
        )
        ys = _tile_starts(
            mark.top, overlay.height, canvas.height, mark.repetition in ("repeat", "repeat_y")
        )
        layer = Image.new("RGBA", canvas.size, TRANSPARENT)
        for y in ys:
            for x in xs:
                layer.paste(overlay, (x, y))
        canvas = Image.alpha_composite(canvas, layer)
    return canvas if base.mode == "RGBA" else canvas.convert("RGB")


def _tile_starts(offset: int, size: int, extent: int, repeat: bool) -> list[int]:
    if not repeat:
        return [offset]
    first = offset % size - size if offset % size else 0
    return list(range(first, extent, size))
