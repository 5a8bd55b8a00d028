"""Every supported input variant decodes right; every bad input gets a typed, clear error."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from alphacut.engine.decode import Limits, decode, sniff
from alphacut.errors import (
    AlphacutError,
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)
from imagetools import cmyk_profile, png16, png_header

LIMITS = Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def original(photo: Path) -> Image.Image:
    return Image.open(photo).convert("RGB")


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _alpha_ramp(size: tuple[int, int]) -> Image.Image:
    width, height = size
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    return Image.fromarray(ramp, "L")


def _with_alpha(image: Image.Image) -> Image.Image:
    rgba = image.copy()
    rgba.putalpha(_alpha_ramp(image.size))
    return rgba


def _exif_rotated(image: Image.Image) -> bytes:
    """Pixels stored rotated, with EXIF orientation 6 telling viewers to turn them upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


def _naive_ink(c: float, m: float, y: float, k: float) -> tuple[float, float, float]:
    return ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k))


def _swapped_ink(c: float, m: float, y: float, k: float) -> tuple[float, float, float]:
    """A deliberately odd press: cyan ink shows as the green channel and magenta as red."""
    return ((1 - m) * (1 - k), (1 - c) * (1 - k), (1 - y) * (1 - k))


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg-baseline": lambda im: _save(im, "JPEG", quality=95),
    "jpeg-progressive": lambda im: _save(im, "JPEG", quality=95, progressive=True),
    "jpeg-exif-rotated": _exif_rotated,
    "jpeg-cmyk": lambda im: _save(im.convert("CMYK"), "JPEG", quality=95),
    "jpeg-cmyk-icc": lambda im: _save(
        im.convert("CMYK"), "JPEG", quality=95, icc_profile=cmyk_profile(_naive_ink)
    ),
    "jpeg-srgb-icc": lambda im: _save(im, "JPEG", quality=95, icc_profile=SRGB_ICC),
    "png-rgb": lambda im: _save(im, "PNG"),
    "png-rgba": lambda im: _save(_with_alpha(im), "PNG"),
    "png-palette": lambda im: _save(im.quantize(256), "PNG"),
    "png-16bit-rgb": lambda im: png16(np.asarray(im).astype(np.uint16) * 257),
    "png-16bit-rgba": lambda im: png16(np.asarray(_with_alpha(im)).astype(np.uint16) * 257),
    "webp-lossy": lambda im: _save(im, "WEBP", quality=95),
    "webp-lossless": lambda im: _save(im, "WEBP", lossless=True),
    "webp-alpha": lambda im: _save(_with_alpha(im), "WEBP", lossless=True),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_colour_variants_decode_upright_and_faithful(variant: str, original: Image.Image) -> None:
    decoded = decode(VARIANTS[variant](original), LIMITS)
    assert decoded.image.size == original.size
    has_alpha = "rgba" in variant or "alpha" in variant
    assert decoded.image.mode == ("RGBA" if has_alpha else "RGB")
    rgb = np.asarray(decoded.image.convert("RGB"))
    assert _mae(rgb, np.asarray(original)) < 4.0, "colours drifted"
    if has_alpha:
        alpha = np.asarray(decoded.image.getchannel("A"))
        assert _mae(alpha, np.asarray(_alpha_ramp(original.size))) < 1.0


@pytest.mark.parametrize(
    ("variant", "expected_format"),
    [("jpeg-baseline", "jpeg"), ("png-rgb", "png"), ("webp-lossy", "webp")],
)
def test_source_format_is_reported(
    variant: str, expected_format: str, original: Image.Image
) -> None:
    assert decode(VARIANTS[variant](original), LIMITS).source_format == expected_format


def test_cmyk_profile_is_honoured(original: Image.Image) -> None:
    data = _save(
        original.convert("CMYK"), "JPEG", quality=95, icc_profile=cmyk_profile(_swapped_ink)
    )
    rgb = np.asarray(decode(data, LIMITS).image)
    want = np.asarray(original)[..., [1, 0, 2]]
    assert _mae(rgb, want) < _mae(rgb, np.asarray(original)) / 3
    assert decode(data, LIMITS).icc_profile is None  # converted to sRGB, profile consumed


def test_rgb_icc_profile_is_kept(original: Image.Image) -> None:
    assert decode(VARIANTS["jpeg-srgb-icc"](original), LIMITS).icc_profile == SRGB_ICC
    assert decode(VARIANTS["jpeg-baseline"](original), LIMITS).icc_profile is None


def test_broken_icc_profile_is_ignored(original: Image.Image) -> None:
    data = _save(original, "JPEG", quality=95, icc_profile=b"not a profile at all" * 10)
    decoded = decode(data, LIMITS)
    assert decoded.icc_profile is None
    assert _mae(np.asarray(decoded.image), np.asarray(original)) < 4.0


@pytest.mark.parametrize(
    ("name", "make", "mode"),
    [
        ("grey-jpeg", lambda im: _save(im.convert("L"), "JPEG", quality=95), "RGB"),
        ("grey-png", lambda im: _save(im.convert("L"), "PNG"), "RGB"),
        ("grey-alpha-png", lambda im: _save(_with_alpha(im).convert("LA"), "PNG"), "RGBA"),
        (
            "grey-16bit-png",
            lambda im: png16(np.asarray(im.convert("L")).astype(np.uint16) * 257),
            "RGB",
        ),
        ("bilevel-png", lambda im: _save(im.convert("1"), "PNG"), "RGB"),
        ("palette-transparent-png", lambda im: _save(_transparent_palette(im), "PNG"), "RGBA"),
    ],
)
def test_grey_and_palette_variants(
    name: str, make: Callable[[Image.Image], bytes], mode: str, original: Image.Image
) -> None:
    decoded = decode(make(original), LIMITS)
    assert decoded.image.mode == mode
    assert decoded.image.size == original.size
    if name.startswith("grey"):
        grey = np.asarray(decoded.image.convert("L"))
        assert _mae(grey, np.asarray(original.convert("L"))) < 4.0, "16-bit must scale, not clip"


def _transparent_palette(image: Image.Image) -> Image.Image:
    palette = image.quantize(16)
    palette.info["transparency"] = 0
    return palette


def test_fully_opaque_alpha_is_dropped(original: Image.Image) -> None:
    assert decode(_save(original.convert("RGBA"), "PNG"), LIMITS).image.mode == "RGB"


def test_first_frame_of_an_animation(original: Image.Image) -> None:
    frames = [original, original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    decoded = decode(data, LIMITS)
    assert _mae(np.asarray(decoded.image), np.asarray(original)) < 1.0


# In-memory inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (np.zeros((5, 7, 3), np.uint8), "RGB"),
        (np.zeros((5, 7, 4), np.uint8) + 100, "RGBA"),
        (np.zeros((5, 7), np.uint8), "RGB"),
        (np.zeros((5, 7, 1), np.uint8), "RGB"),
        (np.full((5, 7, 3), 65535, np.uint16), "RGB"),
        (np.full((5, 7, 3), 0.5, np.float32), "RGB"),
        (np.ones((5, 7), bool), "RGB"),
    ],
)
def test_numpy_arrays(array: np.ndarray, mode: str) -> None:
    image = decode(array, LIMITS).image
    assert image.mode == mode
    assert image.size == (7, 5)


def test_numpy_values_are_scaled() -> None:
    assert decode(np.full((2, 2, 3), 65535, np.uint16), LIMITS).image.getpixel((0, 0)) == (255,) * 3
    assert decode(np.full((2, 2, 3), 0.5, np.float64), LIMITS).image.getpixel((0, 0)) == (128,) * 3


@pytest.mark.parametrize(
    "array",
    [np.zeros((5, 7, 2), np.uint8), np.zeros((5,), np.uint8), np.zeros((5, 7, 3), np.complex64)],
)
def test_bad_numpy_arrays(array: np.ndarray) -> None:
    with pytest.raises(InvalidInputError):
        decode(array, LIMITS)


def test_pil_images_and_file_objects_and_paths(photo: Path, original: Image.Image) -> None:
    for source in (photo, str(photo), photo.read_bytes()):
        assert decode(source, LIMITS).image.size == original.size
    with photo.open("rb") as f:
        assert decode(f, LIMITS).image.size == original.size
    with Image.open(photo) as image:
        assert decode(image, LIMITS).image.size == original.size


# Bad inputs ------------------------------------------------------------------------------


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _jpeg_claiming(original: Image.Image, width: int, height: int) -> bytes:
    data = bytearray(_save(original, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


BAD: dict[str, tuple[Callable[[Image.Image], bytes], type[AlphacutError], str]] = {
    "empty": (lambda im: b"", UnsupportedImageError, "empty"),
    "random": (lambda im: bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)),
               UnsupportedImageError, "not a recognised image"),
    "text": (lambda im: b"not an image\n" * 10, UnsupportedImageError, "JPEG, PNG and WebP"),
    "svg": (lambda im: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            UnsupportedImageError, "SVG"),
    "html": (lambda im: b"<!DOCTYPE html><html></html>", UnsupportedImageError, "HTML"),
    "gif": (lambda im: _save(im, "GIF"), UnsupportedImageError, "GIF"),
    "bmp": (lambda im: _save(im, "BMP"), UnsupportedImageError, "BMP"),
    "tiff": (lambda im: _save(im, "TIFF"), UnsupportedImageError, "TIFF"),
    "pdf": (lambda im: b"%PDF-1.7\n" + b"0" * 100, UnsupportedImageError, "PDF"),
    "zip": (lambda im: b"PK\x03\x04" + b"\0" * 100, UnsupportedImageError, "ZIP"),
    "truncated-jpeg": (lambda im: _truncated(_save(im, "JPEG")), CorruptImageError, "truncated"),
    "truncated-png": (lambda im: _truncated(_save(im, "PNG")), CorruptImageError, "truncated"),
    "truncated-webp": (lambda im: _truncated(_save(im, "WEBP")), CorruptImageError, "truncated"),
    "jpeg-magic-then-junk": (lambda im: b"\xff\xd8\xff" + b"\x00" * 500, CorruptImageError, "JPEG"),
    "png-header-only": (lambda im: png_header(640, 480), CorruptImageError, "PNG"),
    "png-bomb-header": (lambda im: png_header(100_000, 100_000), ImageTooLargeError, "10000.0 MP"),
    "jpeg-bomb-header": (lambda im: _jpeg_claiming(im, 65_000, 65_000), ImageTooLargeError, "MP"),
    "png-zero-width": (lambda im: png_header(0, 10), CorruptImageError, ""),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_raise_typed_errors(case: str, original: Image.Image) -> None:
    make, error, words = BAD[case]
    with pytest.raises(error) as caught:
        decode(make(original), LIMITS)
    assert words in caught.value.message
    assert caught.value.status in (413, 415, 422)


def test_byte_limit_is_checked_before_decoding(original: Image.Image, tmp_path: Path) -> None:
    data = _save(original, "PNG")
    small = Limits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        decode(data, small)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        decode(path, small)
    decode(data, Limits(max_bytes=len(data), max_pixels=LIMITS.max_pixels))


def test_pixel_limit_applies_to_every_kind_of_source(original: Image.Image) -> None:
    pixels = original.width * original.height
    small = Limits(max_bytes=LIMITS.max_bytes, max_pixels=pixels - 1)
    sources: list[bytes | Image.Image | np.ndarray] = [
        _save(original, "JPEG"),
        original,
        np.asarray(original),
    ]
    for source in sources:
        with pytest.raises(ImageTooLargeError, match="limit"):
            decode(source, small)
    decode(original, Limits(max_bytes=LIMITS.max_bytes, max_pixels=pixels))


@pytest.mark.parametrize("source", [42, None, ["a"], "/no/such/file.jpg"])
def test_unusable_sources(source: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        decode(source, LIMITS)  # type: ignore[arg-type]


def test_directory_and_text_file_object(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a file"):
        decode(tmp_path, LIMITS)
    with pytest.raises(InvalidInputError, match="binary"):
        decode(io.StringIO("text"), LIMITS)  # type: ignore[arg-type]


def test_format_is_sniffed_from_content_not_name(original: Image.Image, tmp_path: Path) -> None:
    misnamed = tmp_path / "really-a-png.jpg"
    misnamed.write_bytes(_save(original, "PNG"))
    assert decode(misnamed, LIMITS).source_format == "png"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"


def test_the_orientation_applied_is_reported(original: Image.Image) -> None:
    assert decode(_exif_rotated(original), LIMITS).orientation == 6
    assert decode(VARIANTS["jpeg-baseline"](original), LIMITS).orientation == 1


# Data after the image: only padding, and the further JPEGs a primary image's MPF index lists.

ZIP = b"PK\x03\x04" + b"\x14\x00" * 10 + b"secret.txt" + b"PK\x05\x06" + b"\x00" * 18


def _mpo(image: Image.Image) -> bytes:
    """A primary JPEG, its MPF index, and the second image the index lists (Pillow's MPO)."""
    return _save(image, "MPO", save_all=True, append_images=[image.rotate(90)])


def _second_image(mpo: bytes) -> tuple[int, int]:
    """Where the second image starts and the MP entry's field (offset) holding its size."""
    start = mpo.index(b"\xff\xd9\xff\xd8") + 2
    tiff = mpo.index(b"MPF\x00") + 4
    entry = mpo.index(struct.pack("<LL", len(mpo) - start, start - tiff))
    return start, entry


def _mpo_listing(image: Image.Image, size_change: int) -> bytes:
    """An MPO whose index lists the second image ``size_change`` bytes longer than it is."""
    mpo = bytearray(_mpo(image))
    _start, entry = _second_image(bytes(mpo))
    size = struct.unpack("<L", mpo[entry : entry + 4])[0]
    mpo[entry : entry + 4] = struct.pack("<L", size + size_change)
    return bytes(mpo)


def _mpo_hiding_a_zip(image: Image.Image) -> bytes:
    """The index lists a second image, but what is there is FF D8 FF and a ZIP."""
    mpo = bytearray(_mpo(image))
    start, entry = _second_image(bytes(mpo))
    fake = b"\xff\xd8\xff" + ZIP
    mpo[entry : entry + 4] = struct.pack("<L", len(fake))
    return bytes(mpo[:start]) + fake


TRAILERS: dict[str, tuple[Callable[[Image.Image], bytes], bool]] = {
    "jpeg + zero padding": (lambda im: _save(im, "JPEG") + b"\x00" * 1000, True),
    "mpf jpeg (phone layout)": (_mpo, True),
    "mpf jpeg + zero padding": (lambda im: _mpo(im) + b"\x00" * 100, True),
    "jpeg + FF D8 FF + zip": (lambda im: _save(im, "JPEG") + b"\xff\xd8\xff" + ZIP, False),
    "jpeg + a jpeg no index lists": (lambda im: _save(im, "JPEG") * 2, False),
    "mpf index lists 1 byte too few": (lambda im: _mpo_listing(im, -1), False),
    "mpf index lists 1 byte too many": (lambda im: _mpo_listing(im, +1), False),
    "mpf index lists past the end": (lambda im: _mpo_listing(im, 10_000), False),
    "mpf jpeg + zip": (lambda im: _mpo(im) + ZIP, False),
    "mpf jpeg + another jpeg": (lambda im: _mpo(im) + _save(im, "JPEG"), False),
    "mpf entry that is a zip": (_mpo_hiding_a_zip, False),
    "png + 5000 zero bytes": (lambda im: _save(im, "PNG") + b"\x00" * 5000, False),
}


@pytest.mark.parametrize("case", TRAILERS)
def test_only_padding_and_indexed_mpf_images_may_follow_the_image(
    case: str, original: Image.Image
) -> None:
    make, accepted = TRAILERS[case]
    data = make(original)
    if accepted:
        assert decode(data, LIMITS).image.size == original.size
        return
    with pytest.raises(UnsupportedImageError, match="two formats at once") as caught:
        decode(data, LIMITS)
    assert caught.value.status == 415


def test_an_mpf_index_cut_inside_its_tiff_header_is_refused_not_a_crash(
    original: Image.Image,
) -> None:
    """The TIFF reader shared by MPF and the TIFF input format meets 6 bytes of TIFF header
    (it raised struct.error, a 500, before BMP/TIFF input came)."""
    jpeg = _save(original, "JPEG", quality=90)
    payload = b"MPF\x00II*\x00\x08\x00"
    segment = b"\xff\xe2" + struct.pack(">H", 2 + len(payload)) + payload
    with pytest.raises(UnsupportedImageError, match="two formats"):
        decode(jpeg[:2] + segment + jpeg[2:] + b"trailing data" * 10, LIMITS)


def test_junk_between_jpeg_segments_does_not_hide_the_size() -> None:
    """Pillow skips junk bytes between segments and decodes such a file; the header probe
    must read its size too, or a job is costed as if it had none (review of issue 23)."""
    from alphacut.engine.decode import probe_pixels

    buffer = io.BytesIO()
    Image.new("RGB", (200, 150), (10, 20, 30)).save(buffer, "JPEG")
    clean = buffer.getvalue()
    app0_end = 4 + int.from_bytes(clean[4:6], "big")  # SOI, then APP0's marker and length
    junky = clean[:app0_end] + b"\x00\x00junk" + clean[app0_end:]
    assert decode(junky, Limits(10**7, 10**7)).image.size == (200, 150)
    assert probe_pixels(junky) == probe_pixels(clean) == 200 * 150
