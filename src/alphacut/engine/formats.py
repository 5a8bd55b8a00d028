"""The one table of output formats: what every layer needs to know about PNG, JPEG and WebP.

Like imgproxy's ``imagetype`` registry, one row per format holds its canonical name, the file
extension and media type it is stored and served with, whether it holds transparency, the
quality used when none is asked for (``None``: lossless), and the largest side its encoder
can write. Adding an output format is one row here (and its encoder in
:mod:`alphacut.engine.encode`); nothing else spells a format's extension or media type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from alphacut.errors import InvalidInputError

OutputFormat = Literal["png", "jpeg", "webp"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


@dataclass(frozen=True)
class Format:
    name: OutputFormat
    extension: str  # without the dot: what stored files and URLs end in
    media_type: str
    alpha: bool  # holds transparency
    default_quality: int | None  # None: lossless (or a format without a quality setting)
    max_side: int  # the most pixels on a side its encoder can write
    spellings: tuple[str, ...] = ()  # other names accepted for it (``jpg``)


FORMATS: dict[OutputFormat, Format] = {
    # PNG's own limit (2**31 - 1) is far beyond the pixel limit.
    "png": Format("png", "png", "image/png", True, None, 2**31 - 1),
    # JPEG's size fields are 16-bit, but libjpeg stops at its JPEG_MAX_DIMENSION, 65500.
    "jpeg": Format("jpeg", "jpg", "image/jpeg", False, 90, 65500, spellings=("jpg",)),
    # WebP stores 14-bit sizes. Lossless unless a quality is asked for.
    "webp": Format("webp", "webp", "image/webp", True, None, 16383),
}
_NAMES: dict[str, OutputFormat] = {
    spelling: fmt.name for fmt in FORMATS.values() for spelling in (fmt.name, *fmt.spellings)
}
SPELLINGS: tuple[str, ...] = tuple(_NAMES)  # every name a request may give a format by
MEDIA_TYPES: dict[OutputFormat, str] = {name: fmt.media_type for name, fmt in FORMATS.items()}


def parse_format(name: str) -> OutputFormat:
    """``png``, ``jpg``/``jpeg`` or ``webp`` (any case, with or without a leading dot) ->
    the canonical format name; anything else is a 400 naming the choices."""
    fmt = _NAMES.get(name.strip().lower().lstrip("."))
    if fmt is None:
        *others, last = (FORMATS[f].extension for f in OUTPUT_FORMATS)
        choices = f"{', '.join(others)} or {last}"
        raise InvalidInputError(f"unsupported output format {name!r}; choose {choices}")
    return fmt


def format_of(name: str) -> Format:
    """The row of a format given by any of its spellings."""
    return FORMATS[parse_format(name)]


def extension(name: str) -> str:
    """The file extension (no dot) of a format given by any of its spellings."""
    return format_of(name).extension


def media_type(name: str) -> str:
    return format_of(name).media_type


def holds_alpha(name: str) -> bool:
    return format_of(name).alpha
