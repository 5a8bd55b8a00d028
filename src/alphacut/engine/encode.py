"""Encode result images as PNG, JPEG or WebP. No metadata is written (EXIF, XMP, comments),
only the ICC profile. A result larger than its format can hold is refused before encoding.

Encoder settings were chosen by measurement on a 12 MP cut-out (2 cores, see bench/):
- PNG: our own writer (:mod:`alphacut.engine.png`), level 3: 0.12 s, 4.4 MB, against Pillow's
  default 1.4 s, 4.1 MB.
- WebP lossy: libwebp method 2: 2.0 s, 0.51 MB (method 4: 3.9 s, 0.45 MB); the alpha plane is
  always kept lossless, since the edge is the product.
- WebP lossless: method 1, quality 25: 2.8 s, 2.7 MB (method 0: 0.7 s but 5.4 MB, larger than
  our PNG, which defeats the point of asking for WebP).
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.engine.compose import RGBA, on_background
from alphacut.engine.formats import FORMATS, OutputFormat
from alphacut.engine.png import encode_png
from alphacut.errors import FormatLimitError, InvalidInputError

WHITE: RGBA = (255, 255, 255, 255)


def suffix_for(fmt: OutputFormat) -> str:
    return "." + FORMATS[fmt].extension


def check_quality(quality: int | None) -> int | None:
    if quality is not None and not (isinstance(quality, int) and 1 <= quality <= 100):
        raise InvalidInputError(f"quality must be an integer from 1 to 100, got {quality!r}")
    return quality


def check_dimensions(width: int, height: int, fmt: OutputFormat) -> None:
    """Refuse, before any work, an image larger than ``fmt`` can hold on a side."""
    limit = FORMATS[fmt].max_side
    if width <= limit and height <= limit:
        return
    others = "png" if max(width, height) > FORMATS["jpeg"].max_side else "png or jpg"
    raise FormatLimitError(
        f"the result is {width}x{height} pixels, larger than {fmt.upper()} can hold "
        f"({limit:,} pixels on a side); choose {others}, or make it smaller first"
    )


def encode_image(
    image: Image.Image | npt.NDArray[np.uint8],
    fmt: OutputFormat,
    *,
    quality: int | None = None,
    icc_profile: bytes | None = None,
    png_level: int = 3,
    threads: int = 1,
) -> bytes:
    """Encode an ``L``, ``RGB`` or ``RGBA`` image (or an ``(h, w[, 3|4])`` uint8 array).

    ``quality`` applies to JPEG (default 90) and WebP (lossy at that quality; ``None`` means
    lossless); PNG has none. JPEG cannot hold transparency: an RGBA image is put on white
    (flatten it onto another colour first for another background).
    """
    check_quality(quality)
    if isinstance(image, np.ndarray):
        check_dimensions(image.shape[1], image.shape[0], fmt)
    else:
        check_dimensions(image.width, image.height, fmt)
    if fmt == "png":
        pixels = image if isinstance(image, np.ndarray) else np.asarray(image)
        return encode_png(pixels, level=png_level, threads=threads, icc_profile=icc_profile)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode not in ("L", "RGB", "RGBA"):
        raise ValueError(f"cannot encode mode {image.mode}")
    buffer = io.BytesIO()
    extra: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "jpeg":
        if image.mode == "RGBA":
            image = on_background(image, WHITE)
        # comment=b"": Pillow would otherwise copy the source's COM comment from image.info
        image.save(
            buffer, "JPEG", quality=quality or FORMATS["jpeg"].default_quality, comment=b"", **extra
        )
    elif quality is None:
        image.save(buffer, "WEBP", lossless=True, quality=25, method=1, exact=False, **extra)
    else:
        image.save(buffer, "WEBP", quality=quality, method=2, alpha_quality=100, **extra)
    return buffer.getvalue()
