"""Metadata is stripped from stored images, losslessly: the pixels, the ICC profile and the
orientation stay; GPS, serial numbers, comments, XMP, IPTC and text chunks go."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, PngImagePlugin

from alphacut.engine.decode import Limits, SourceFormat, decode, jpeg_segments
from alphacut.engine.metadata import minimal_exif, strip_metadata
from alphacut.errors import AlphacutError
from imagetools import png_chunk, read_png_chunks
from metadatafiles import (
    BUILDERS,
    ICC,
    PLANTED,
    XMP,
    assert_no_metadata,
    encoded,
    jpeg_with_everything,
    phone_exif,
)

LIMITS = Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def original(photo: Path) -> Image.Image:
    with Image.open(photo) as opened:
        return opened.convert("RGB").resize((240, 180))


def _strip(data: bytes, fmt: SourceFormat) -> bytes:
    return strip_metadata(data, fmt, orientation=decode(data, LIMITS).orientation)


@pytest.mark.parametrize("fmt", BUILDERS)
def test_metadata_goes_pixels_icc_and_orientation_stay(
    fmt: SourceFormat, original: Image.Image
) -> None:
    data = BUILDERS[fmt](original)
    assert all(secret in data for secret in PLANTED[fmt]), "the fixture lacks its metadata"
    before = decode(data, LIMITS)
    assert before.orientation == 6 and before.image.size == (180, 240)

    stripped = _strip(data, fmt)

    assert len(stripped) < len(data)
    assert_no_metadata(stripped, orientation=6)
    after = decode(stripped, LIMITS)
    assert after.orientation == 6 and after.icc_profile == before.icc_profile == ICC
    assert np.array_equal(np.asarray(after.image), np.asarray(before.image))
    assert _strip(stripped, fmt) == stripped  # nothing left to strip


@pytest.mark.parametrize("fmt", BUILDERS)
def test_upright_images_keep_no_exif_at_all(fmt: SourceFormat, original: Image.Image) -> None:
    data = BUILDERS[fmt](original, orientation=1)
    stripped = _strip(data, fmt)
    assert_no_metadata(stripped, orientation=1)
    assert b"Exif" not in stripped and b"eXIf" not in stripped and b"EXIF" not in stripped
    assert np.array_equal(
        np.asarray(decode(stripped, LIMITS).image), np.asarray(decode(data, LIMITS).image)
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_turns_the_same_after_stripping(
    orientation: int, original: Image.Image
) -> None:
    data = jpeg_with_everything(original, orientation)
    before = decode(data, LIMITS)
    after = decode(_strip(data, "jpeg"), LIMITS)
    assert before.orientation == after.orientation == orientation
    assert np.array_equal(np.asarray(after.image), np.asarray(before.image))


def test_orientation_from_xmp_alone_is_kept_as_exif(original: Image.Image) -> None:
    """Pillow (and so the decoder) also reads ``tiff:Orientation`` from XMP."""
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    data = encoded(original, "JPEG", xmp=xmp)
    stripped = _strip(data, "jpeg")
    assert b"xmpmeta" not in stripped
    assert decode(stripped, LIMITS).orientation == 8
    assert np.array_equal(
        np.asarray(decode(stripped, LIMITS).image), np.asarray(decode(data, LIMITS).image)
    )


def test_jpeg_keeps_its_adobe_segment_for_cmyk(original: Image.Image) -> None:
    data = encoded(original.convert("CMYK"), "JPEG", quality=95, comment=b"SECRET-COMMENT")
    stripped = _strip(data, "jpeg")
    assert b"SECRET-COMMENT" not in stripped and b"Adobe" in stripped
    assert np.array_equal(
        np.asarray(decode(stripped, LIMITS).image), np.asarray(decode(data, LIMITS).image)
    )


def test_mpf_jpeg_keeps_only_its_primary_image(original: Image.Image) -> None:
    """Appended MPF images (previews, depth maps) carry their own EXIF; they are dropped with
    the MPF index that points at them."""
    second = original.rotate(90)
    data = encoded(original, "MPO", save_all=True, append_images=[second],
                 exif=phone_exif(1), comment=b"SECRET-COMMENT")  # fmt: skip
    stripped = _strip(data, "jpeg")
    assert b"MPF\x00" not in stripped and stripped.count(b"\xff\xd8") == 1
    assert [s.marker for s in jpeg_segments(stripped)][-1] == 0xD9
    assert b"CAMSERIAL-4417" not in stripped
    assert np.array_equal(
        np.asarray(decode(stripped, LIMITS).image), np.asarray(decode(data, LIMITS).image)
    )


def test_png_keeps_its_colour_and_animation_chunks(original: Image.Image) -> None:
    frames = [original, original.rotate(180)]
    data = encoded(frames[0], "PNG", save_all=True, append_images=frames[1:], icc_profile=ICC,
                 pnginfo=PngImagePlugin.PngInfo())  # fmt: skip
    data = data[:33] + png_chunk(b"gAMA", struct.pack(">I", 45455)) + data[33:]
    data = data[:-12] + png_chunk(b"zzZz", b"private") + data[-12:]  # unknown ancillary
    stripped = _strip(data, "png")
    kinds = [kind for kind, _ in read_png_chunks(stripped)]
    assert {b"iCCP", b"gAMA", b"acTL", b"fcTL", b"fdAT"} <= set(kinds)
    assert b"zzZz" not in kinds
    with Image.open(io.BytesIO(stripped)) as opened:
        assert getattr(opened, "n_frames", 1) == 2


def test_webp_keeps_alpha_animation_and_icc(original: Image.Image) -> None:
    rgba = original.copy()
    rgba.putalpha(128)
    frames = [rgba, rgba.rotate(180)]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True,
                 exif=phone_exif(1).tobytes(), xmp=XMP, icc_profile=ICC)  # fmt: skip
    stripped = _strip(data, "webp")
    assert b"CAMSERIAL-4417" not in stripped and b"SECRET-XMP" not in stripped
    assert stripped[20] & 0x0C == 0, "VP8X still announces EXIF or XMP"
    assert int.from_bytes(stripped[4:8], "little") == len(stripped) - 8
    with Image.open(io.BytesIO(stripped)) as opened:
        assert getattr(opened, "n_frames", 1) == 2 and opened.info["icc_profile"] == ICC
        assert np.array_equal(np.asarray(opened.convert("RGBA")), np.asarray(rgba))


def test_simple_webp_and_plain_files_come_back_unchanged(original: Image.Image) -> None:
    for fmt, data in [("webp", encoded(original, "WEBP")), ("png", encoded(original, "PNG"))]:
        assert _strip(data, fmt) == data  # type: ignore[arg-type]


def test_minimal_exif_reads_back() -> None:
    exif = Image.Exif()
    exif.load(minimal_exif(6))
    assert dict(exif) == {ExifTags.Base.Orientation: 6}


mutation = st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 10**6),
                     st.integers(1, 255))  # fmt: skip


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns of bad EXIF, goes on
@pytest.mark.parametrize("fmt", BUILDERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_damaged_files_strip_to_the_same_pixels_or_a_typed_error(
    fmt: SourceFormat, original: Image.Image, mutations: list[tuple[str, int, int]]
) -> None:
    data = bytearray(BUILDERS[fmt](original.resize((48, 36))))
    for kind, where, value in mutations:
        at = where % max(len(data), 1)
        if kind == "flip" and data:
            data[at] ^= value
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = bytes([value]) * 16
    try:
        before = decode(bytes(data), LIMITS)
        stripped = strip_metadata(bytes(data), fmt, orientation=before.orientation)
    except AlphacutError as exc:
        refusal: AlphacutError | None = exc
    else:
        refusal = None
        after = decode(stripped, LIMITS)
        assert np.array_equal(np.asarray(after.image), np.asarray(before.image))
    assert refusal is None or 400 <= refusal.status < 500
