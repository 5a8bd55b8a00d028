"""The image operations of the IMG Processing API: pure functions on PIL images, and the
same operations as plain data (:class:`Operation`: ``Resize``, ``Crop``, ``Rotate``...) that a
request turns into and a worker runs.

Inputs are upright 8-bit ``RGB`` or ``RGBA`` images (what :func:`alphacut.engine.decode`
produces); outputs are the same. Geometry follows sharp, which that API is built on:
positive rotation angles turn clockwise, uncovered corners are transparent where the format
can hold transparency and black where it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from alphacut.engine.compose import RGBA, parse_color
from alphacut.engine.formats import holds_alpha
from alphacut.engine.resize import Box, resample_ordered
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


def resize_size(
    source: tuple[int, int], width: int | None, height: int | None, max_pixels: int
) -> tuple[int, int]:
    """The size :func:`resize` makes (one side given: the other keeps the ratio), checked
    against the pixel limit before anything is decoded or allocated."""
    if width is None and height is None:
        raise InvalidInputError("give a width, a height or both")
    if width is None:
        width = max(1, round(source[0] * height / source[1]))  # type: ignore[operator]
    if height is None:
        height = max(1, round(source[1] * width / source[0]))
    _check_output(width, height, max_pixels)
    return width, height


def resample(image: Image.Image, size: tuple[int, int], box: Box | None = None) -> Image.Image:
    """LANCZOS from ``box`` to ``size`` with the smaller intermediate image: Pillow always
    scales rows first, so that 1 x 50,000,000 px to 50,000,000 x 1 would ask for 2.5e15 px
    (:func:`alphacut.engine.resize.resample_ordered`)."""
    return resample_ordered(image, size, box)


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
    width, height = resize_size(image.size, width, height, max_pixels)
    if fit == "fill":
        return resample(image, (width, height))
    gx, gy = _GRAVITY[position]
    if fit == "cover":
        # Only the part of the source that stays visible is scaled (never the whole source
        # at the covering scale, which can be far larger than the output).
        scale = max(width / image.width, height / image.height)
        # Clamped: with one side rounded from the other, the division can land a hair past
        # the source (-1e-13 px), which Pillow refuses (a 500 found by the contract test).
        seen_w, seen_h = min(image.width, width / scale), min(image.height, height / scale)
        left, top = max(0.0, (image.width - seen_w) * gx), max(0.0, (image.height - seen_h) * gy)
        return resample(image, (width, height), (left, top, left + seen_w, top + seen_h))
    scale = min(width / image.width, height / image.height)
    inner = (
        min(width, max(1, round(image.width * scale))),
        min(height, max(1, round(image.height * scale))),
    )
    scaled = resample(image, inner)
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


def rotate_size(source: tuple[int, int], degrees: float, max_pixels: int) -> tuple[int, int]:
    """The size :func:`rotate` makes (clockwise ``degrees``), checked against the limit."""
    if not math.isfinite(degrees):
        raise InvalidInputError("angle must be a finite number")
    clockwise = degrees % 360
    if clockwise in (90.0, 270.0):
        return source[1], source[0]
    if clockwise in (0.0, 180.0):
        return source
    radians = math.radians(clockwise)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    width = math.ceil(source[0] * cos + source[1] * sin)
    height = math.ceil(source[0] * sin + source[1] * cos)
    _check_output(width, height, max_pixels)
    return width, height


def rotate(
    image: Image.Image,
    angle: float,
    *,
    unit: Literal["degrees", "radians"] = "degrees",
    alpha_ok: bool,
    max_pixels: int,
    background: RGBA | None = None,
) -> Image.Image:
    """Rotated clockwise, the canvas grown to hold it; uncovered corners get ``background``
    (default: transparent where the format holds it, else black)."""
    degrees = math.degrees(angle) if unit == "radians" else angle
    rotate_size(image.size, degrees, max_pixels)
    clockwise = degrees % 360
    quarter = {90.0: Image.Transpose.ROTATE_270, 180.0: Image.Transpose.ROTATE_180,
               270.0: Image.Transpose.ROTATE_90}  # fmt: skip
    if clockwise == 0:
        return image.copy()
    if clockwise in quarter:
        return image.transpose(quarter[clockwise])  # exact, no resampling
    colour = background or (TRANSPARENT if alpha_ok else BLACK)
    source = image.convert("RGBA") if alpha_ok or image.mode == "RGBA" else image.convert("RGB")
    fill = colour if source.mode == "RGBA" else colour[:3]
    rotated = source.rotate(
        -clockwise, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill
    )
    return rotated if alpha_ok or rotated.mode == "RGB" else rotated.convert("RGB")


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
    hue: float = 0.0  # rotation of the hue, degrees
    lightness: float = 0.0  # added to every colour value, percent of full scale


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
    if m.lightness:
        levels = levels + m.lightness / 100.0
    if m.exposure != 1.0 or m.brightness or m.lightness:
        table = np.clip(np.round(levels * 255.0), 0, 255).astype(np.uint8).tolist()
        rgb = rgb.point(table * 3)
    if m.contrast:
        rgb = ImageEnhance.Contrast(rgb).enhance(1.0 + m.contrast / 100.0)
    if m.saturation != 1.0:
        rgb = ImageEnhance.Color(rgb).enhance(m.saturation)
    if m.hue % 360:
        rgb = _rotate_hue(rgb, m.hue)
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def _rotate_hue(image: Image.Image, degrees: float) -> Image.Image:
    """Hue rotated by ``degrees`` with the matrix of CSS's ``hue-rotate()`` (W3C Filter
    Effects): a rotation about the grey axis that keeps luminance, as browsers apply it."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    rows = (
        (0.213 + c*0.787 - s*0.213, 0.715 - c*0.715 - s*0.715, 0.072 - c*0.072 + s*0.928),
        (0.213 - c*0.213 + s*0.143, 0.715 + c*0.285 + s*0.140, 0.072 - c*0.072 - s*0.283),
        (0.213 - c*0.213 - s*0.787, 0.715 - c*0.715 + s*0.715, 0.072 + c*0.928 + s*0.072),
    )  # fmt: skip
    matrix = tuple(value for row in rows for value in (*row, 0.0))
    return image.convert("RGB", matrix)


@dataclass(frozen=True)
class Watermark:
    image: Image.Image
    left: int = 0
    top: int = 0
    width: int | None = None
    height: int | None = None
    repetition: Repetition = "no_repeat"


def watermark(
    base: Image.Image,
    marks: Iterable[Watermark],
    *,
    max_pixels: int,
    step: Callable[[], None] = lambda: None,
) -> Image.Image:
    """Each mark composited over ``base`` in turn; ``step`` is called between marks (a
    checkpoint that stops the work once its time limit has passed). Repeated marks are
    tiled in one array operation, whatever the number of tiles: the cost is that of the
    canvas, not of the tile count (a 1x1 mark repeated over 50 MP is one 50 MP copy)."""
    canvas = base.convert("RGBA")
    for mark in marks:
        step()
        overlay = mark.image.convert("RGBA")
        if mark.width is not None or mark.height is not None:
            overlay = resize(overlay, width=mark.width, height=mark.height, max_pixels=max_pixels)
        repeat_x = mark.repetition in ("repeat", "repeat_x")
        repeat_y = mark.repetition in ("repeat", "repeat_y")
        if repeat_x or repeat_y:
            layer = Image.fromarray(
                _tiled(np.asarray(overlay), canvas.size, (mark.left, mark.top), repeat_x, repeat_y)
            )
        else:
            layer = Image.new("RGBA", canvas.size, TRANSPARENT)
            layer.paste(overlay, (mark.left, mark.top))
        canvas = Image.alpha_composite(canvas, layer)
    return canvas if base.mode == "RGBA" else canvas.convert("RGB")


def _tiled(
    tile: np.ndarray,
    size: tuple[int, int],
    offset: tuple[int, int],
    repeat_x: bool,
    repeat_y: bool,
) -> np.ndarray:
    """A canvas-sized RGBA array showing ``tile`` with its top-left corner at ``offset``,
    repeated along the axes asked for (transparent elsewhere)."""
    rows, row_ok = _tile_index(size[1], offset[1], tile.shape[0], repeat_y)
    cols, col_ok = _tile_index(size[0], offset[0], tile.shape[1], repeat_x)
    # One axis at a time (5x faster than one 2-D gather), the one that keeps the
    # intermediate smaller first: at most sqrt(canvas x tile) pixels.
    if len(rows) * tile.shape[1] <= tile.shape[0] * len(cols):
        layer = tile[rows][:, cols]
    else:
        layer = tile[:, cols][rows]
    if not (row_ok.all() and col_ok.all()):
        layer[~(row_ok[:, None] & col_ok[None, :])] = 0
    return np.ascontiguousarray(layer)


def _tile_index(extent: int, offset: int, size: int, repeat: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each canvas position along one axis: the tile's index there, and whether the
    tile covers it."""
    position = np.arange(extent, dtype=np.int64) - offset
    if repeat:
        return position % size, np.ones(extent, dtype=bool)
    inside = (position >= 0) & (position < size)
    return np.clip(position, 0, size - 1), inside


# Operations as data ---------------------------------------------------------------------
#
# What a request asks for travels as one of these frozen values, not as a closure: the
# service costs it from ``out_size`` and ``extra_bytes`` before anything is decoded, then
# runs ``apply`` on a worker. Colours are parsed when the value is made, so that a bad one is
# a 400 before any work.

Size = tuple[int, int]


@dataclass(frozen=True)
class OperationContext:
    """What an operation may use beyond its own pixels: the output's format, the pixel
    limit, how to read another stored image by its id (watermarks), and a checkpoint between
    steps."""

    output_format: str
    max_pixels: int
    load: Callable[[str], Image.Image] | None = None
    step: Callable[[], None] = lambda: None

    @property
    def alpha_ok(self) -> bool:
        return holds_alpha(self.output_format)


class Operation:
    """An image operation as plain data: ``apply`` makes the new pixels from upright RGB/RGBA
    ones; ``out_size`` and ``extra_bytes`` say what it costs before anything is decoded."""

    name = "copy"

    def out_size(self, size: Size, max_pixels: int) -> Size:
        return size

    def extra_bytes(self, size: Size, max_pixels: int) -> int:
        """Buffers beyond the output (a watermark's overlays...)."""
        return 0

    def steps(self) -> int:
        """How many times the output's work is done (each watermark composites once)."""
        return 1

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        raise NotImplementedError


@dataclass(frozen=True)
class Convert(Operation):
    """The same pixels, in another format (the output format does the work)."""

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return image


@dataclass(frozen=True)
class Resize(Operation):
    width: int | None
    height: int | None
    fit: Fit = "fill"
    position: Position = "center"
    letterbox: str | None = None  # a colour or "transparent"; None: the format's default
    name = "resize"

    def __post_init__(self) -> None:
        letterbox_color(self.letterbox, alpha_ok=True)  # a bad colour: 400 now

    def out_size(self, size: Size, max_pixels: int) -> Size:
        return resize_size(size, self.width, self.height, max_pixels)

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return resize(
            image,
            width=self.width,
            height=self.height,
            fit=self.fit,
            position=self.position,
            letterbox=letterbox_color(self.letterbox, alpha_ok=context.alpha_ok),
            max_pixels=context.max_pixels,
        )


@dataclass(frozen=True)
class Crop(Operation):
    x1: int
    y1: int
    x2: int
    y2: int
    name = "crop"

    def out_size(self, size: Size, max_pixels: int) -> Size:
        return (
            max(0, min(self.x2, size[0]) - self.x1),
            max(0, min(self.y2, size[1]) - self.y1),
        )

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return crop(image, self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class Rotate(Operation):
    angle: float
    unit: Literal["degrees", "radians"] = "degrees"
    # The uncovered corners: a colour or "transparent"; None: transparent where the format
    # holds it, black otherwise. ``source_alpha``: whether the source's format holds
    # transparency (what "transparent" means is decided from it, as the request is read).
    background: str | None = None
    source_alpha: bool = True
    name = "rotate"

    def __post_init__(self) -> None:
        self._fill()  # a bad colour: 400 now

    def _fill(self) -> RGBA | None:
        if self.background is None:
            return None
        return letterbox_color(self.background, alpha_ok=self.source_alpha)

    @property
    def degrees(self) -> float:
        return math.degrees(self.angle) if self.unit == "radians" else self.angle

    def out_size(self, size: Size, max_pixels: int) -> Size:
        return rotate_size(size, self.degrees, max_pixels)

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return rotate(
            image,
            self.angle,
            unit=self.unit,
            alpha_ok=context.alpha_ok,
            max_pixels=context.max_pixels,
            background=self._fill(),
        )


@dataclass(frozen=True)
class Mirror(Operation):
    mode: MirrorMode

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return mirror(image, self.mode)


@dataclass(frozen=True)
class Blur(Operation):
    sigma: float

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return blur(image, self.sigma)


@dataclass(frozen=True)
class Modulate(Operation):
    modulation: Modulation

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        return modulate(image, self.modulation)


@dataclass(frozen=True)
class Mark:
    """One watermark: another stored image (``source``: its id, for the context's ``load``;
    ``source_size``: its size) at ``left``/``top``, scaled to ``width``/``height`` where given,
    maybe repeated."""

    source: str
    source_size: Size
    left: int = 0
    top: int = 0
    width: int | None = None
    height: int | None = None
    repetition: Repetition = "no_repeat"


@dataclass(frozen=True)
class Watermarks(Operation):
    marks: tuple[Mark, ...]
    name = "watermark"

    def extra_bytes(self, size: Size, max_pixels: int) -> int:
        # Each mark: decoded, scaled, and a canvas-sized layer composited over the canvas.
        largest = 0
        for mark in self.marks:
            pixels = mark.source_size[0] * mark.source_size[1]
            if mark.width is not None or mark.height is not None:
                pixels += math.prod(
                    resize_size(mark.source_size, mark.width, mark.height, max_pixels)
                )
            largest = max(largest, pixels)
        return 8 * largest

    def steps(self) -> int:
        return len(self.marks)

    def apply(self, image: Image.Image, context: OperationContext) -> Image.Image:
        load = context.load
        if load is None:
            raise ValueError("watermarks need a way to read their source images")
        marks = (  # decoded one at a time, as each is composited
            Watermark(
                image=load(mark.source),
                left=mark.left,
                top=mark.top,
                width=mark.width,
                height=mark.height,
                repetition=mark.repetition,
            )
            for mark in self.marks
        )
        return watermark(image, marks, max_pixels=context.max_pixels, step=context.step)
