"""What a removal hands back: the encoded outputs a caller asked for, as plain data.

An :class:`OutputSpec` names what pixels (the cut-out, its mask, the mask cut at 50 %, the
subject on a colour) in which format; the format may also be remove.bg's ``auto`` (PNG where
the result has transparency, else JPEG) or ``zip`` (``color.jpg`` + ``alpha.png``). Every
API dialect asks through these and :func:`encode_outputs` is the one encoder of them.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from alphacut.engine.compose import parse_color
from alphacut.engine.encode import check_quality
from alphacut.engine.formats import FORMATS, OutputFormat
from alphacut.engine.pipeline import Cutout
from alphacut.errors import InvalidInputError

OutputKind = Literal["cutout", "mask", "binary_mask", "background"]
Packing = Literal["auto", "zip"]
ZIP_MEDIA_TYPE = "application/zip"


@dataclass(frozen=True)
class OutputSpec:
    """One encoded output of a removal.

    ``cutout``: the subject with transparency (a JPEG cut-out goes on white); ``mask``: the
    greyscale alpha; ``binary_mask``: the alpha at 0.5, as 0/255; ``background``: the subject
    over the colour ``background`` (``#rrggbb[aa]`` or a CSS name). ``quality``: JPEG/WebP
    quality; None: the format's default (WebP lossless)."""

    kind: OutputKind = "cutout"
    format: OutputFormat | Packing = "png"
    quality: int | None = None
    background: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(OutputKind):
            raise InvalidInputError(f"unknown output {self.kind!r}")
        if self.format not in (*FORMATS, *get_args(Packing)):
            raise InvalidInputError(f"unknown output format {self.format!r}")
        check_quality(self.quality)
        if self.background is not None:
            parse_color(self.background)


@dataclass(frozen=True)
class Encoded:
    """An encoded output and the format it ended up in (``auto`` resolved)."""

    data: bytes
    format: OutputFormat | Literal["zip"]

    @property
    def media_type(self) -> str:
        return ZIP_MEDIA_TYPE if self.format == "zip" else FORMATS[self.format].media_type

    @property
    def extension(self) -> str:
        return "zip" if self.format == "zip" else FORMATS[self.format].extension


def encode_outputs(
    cut: Cutout, specs: tuple[OutputSpec, ...], step: Callable[[], None] = lambda: None
) -> tuple[Encoded, ...]:
    """Each of ``specs`` encoded from ``cut``, in order; ``step`` runs before each (a
    checkpoint that stops the work once nobody waits for it)."""
    encoded = []
    for spec in specs:
        step()
        encoded.append(encode_output(cut, spec))
    return tuple(encoded)


def encode_output(cut: Cutout, spec: OutputSpec) -> Encoded:
    fmt = spec.format
    if fmt == "auto":
        transparent = spec.kind == "cutout" and int(cut.array[..., 3].min()) < 255
        fmt = "png" if transparent or spec.kind in ("mask", "binary_mask") else "jpeg"
    if fmt == "zip":
        return Encoded(_zip(cut), "zip")
    quality = None if fmt == "png" else spec.quality
    if spec.kind == "binary_mask":
        binary = np.where(cut.array[..., 3] >= 128, 255, 0).astype(np.uint8)
        data = cut.encode(binary, fmt, quality)
    elif spec.kind == "mask":
        data = cut.to_bytes(fmt, quality, mask=True)
    elif spec.kind == "background":
        data = cut.to_bytes(fmt, quality, background=spec.background)
    else:
        data = cut.to_bytes(fmt, quality)
    return Encoded(data, fmt)


def _zip(cut: Cutout) -> bytes:
    """remove.bg's ZIP: ``color.jpg`` (the colours, no transparency) and ``alpha.png`` (the
    greyscale alpha matte, white = subject)."""
    rgb = np.ascontiguousarray(cut.array[..., :3])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        color = cut.encode(rgb, "jpeg", icc_profile=cut.icc_profile)
        archive.writestr("color.jpg", color)
        archive.writestr("alpha.png", cut.to_bytes("png", mask=True))
    return buffer.getvalue()
