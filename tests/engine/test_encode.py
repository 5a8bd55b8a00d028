"""Encoded results carry no metadata of their source, and a result larger than its format
can hold is a clear, typed error before any encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from alphacut.engine.encode import encode_image
from alphacut.engine.formats import OutputFormat
from alphacut.errors import FormatLimitError


def _decoded_like(mode: str) -> Image.Image:
    """An image as the decoder hands it on: its source's metadata still in ``info``."""
    image = Image.new(mode, (32, 24), (10, 200, 30, 255)[: len(mode)])
    image.info.update(comment=b"SECRET-COMMENT", exif=b"Exif\x00\x00SECRET-EXIF", xmp=b"SECRET-XMP")
    return image


@pytest.mark.parametrize(
    ("fmt", "mode", "quality"),
    [("jpeg", "RGB", 90), ("webp", "RGBA", 80), ("webp", "RGBA", None), ("png", "RGBA", None)],
)
def test_no_metadata_of_the_source_is_written(
    fmt: OutputFormat, mode: str, quality: int | None
) -> None:
    data = encode_image(_decoded_like(mode), fmt, quality=quality, icc_profile=b"")
    for secret in (b"SECRET-COMMENT", b"SECRET-EXIF", b"SECRET-XMP"):
        assert secret not in data, (fmt, secret)
    with Image.open(io.BytesIO(data)) as opened:
        assert "comment" not in opened.info and "exif" not in opened.info


@pytest.mark.parametrize(
    ("fmt", "size", "words"),
    [
        ("webp", (16_384, 1), "choose png or jpg"),
        ("webp", (2, 20_000), "16,383 pixels on a side"),
        ("webp", (1, 70_000), "choose png,"),
        ("jpeg", (65_501, 1), "(65,500 pixels on a side); choose png,"),
    ],
)
def test_results_larger_than_their_format_are_refused(
    fmt: OutputFormat, size: tuple[int, int], words: str
) -> None:
    width, height = size
    for image in (Image.new("L", size), np.zeros((height, width), np.uint8)):
        with pytest.raises(FormatLimitError) as caught:
            encode_image(image, fmt, quality=80)
        assert caught.value.status == 422
        assert f"{width}x{height}" in caught.value.message and words in caught.value.message


def test_the_largest_sides_each_format_holds_still_encode() -> None:
    for fmt, side in (("webp", 16_383), ("jpeg", 65_500)):
        data = encode_image(Image.new("L", (side, 1)), fmt, quality=50)  # type: ignore[arg-type]
        with Image.open(io.BytesIO(data)) as opened:
            assert opened.size == (side, 1)
