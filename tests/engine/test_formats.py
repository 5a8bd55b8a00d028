"""BMP, TIFF, HEIC/HEIF and AVIF: what the command line and library read besides the web
formats. Each decodes to the pixels it holds, upright once, with its colour profile; each
header that claims a bomb is refused from the header, before any decoder parses it; damage is
a typed error; and the HTTP APIs' default (JPEG, PNG, WebP only) still refuses them."""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pillow_heif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from alphacut.engine.decode import ALL_FORMATS, Limits, decode, sniff
from alphacut.engine.decode import pixels as decode_module
from alphacut.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from imagetools import cmyk_profile

LIMITS = Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000, formats=ALL_FORMATS)
WEB_ONLY = Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def original(photo: Path) -> Image.Image:
    """A real photo, small enough to keep every encoder fast (160x120)."""
    with Image.open(photo) as image:
        return image.convert("RGB").resize((160, 120), Image.Resampling.BILINEAR)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _heic(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, quality=-1, chroma=444, **options)
    return buffer.getvalue()


def _avif(image: Image.Image, **options: object) -> bytes:
    return _save(image, "AVIF", quality=100, subsampling="4:4:4", **options)


def _with_alpha(image: Image.Image) -> Image.Image:
    rgba = image.copy()
    ramp = np.tile(np.linspace(0, 255, image.width, dtype=np.uint8), (image.height, 1))
    rgba.putalpha(Image.fromarray(ramp, "L"))
    return rgba


def _tiff(
    pages: list[npt.NDArray[np.generic]],
    photometric: int,
    *,
    tile: int | None = None,
    tags: dict[int, int] | None = None,
) -> bytes:
    """An uncompressed little-endian TIFF, one page per array (uint8, uint16 or float32;
    (h, w) or (h, w, samples)), in strips or in square tiles: what Pillow cannot write."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    next_pointer = 4
    for pixels in pages:
        height, width = pixels.shape[:2]
        samples = 1 if pixels.ndim == 2 else pixels.shape[2]
        little = pixels.astype(pixels.dtype.newbyteorder("<"))
        blocks = [little.tobytes()]
        if tile:
            blocks = []
            for top in range(0, height, tile):
                for left in range(0, width, tile):
                    block = np.zeros((tile, tile, *pixels.shape[2:]), little.dtype)
                    part = little[top : top + tile, left : left + tile]
                    block[: part.shape[0], : part.shape[1]] = part
                    blocks.append(block.tobytes())
        offsets = []
        for block_bytes in blocks:
            offsets.append(len(out))
            out += block_bytes
        fields: dict[int, tuple[int, list[int]]] = {
            256: (4, [width]),
            257: (4, [height]),
            258: (3, [pixels.dtype.itemsize * 8] * samples),
            259: (3, [1]),
            262: (3, [photometric]),
            277: (3, [samples]),
            284: (3, [1]),
            339: (3, [3 if pixels.dtype.kind == "f" else 1] * samples),
        }
        sizes = [len(block_bytes) for block_bytes in blocks]
        if tile:
            fields |= {322: (4, [tile]), 323: (4, [tile]), 324: (4, offsets), 325: (4, sizes)}
        else:
            fields |= {273: (4, offsets), 278: (4, [height]), 279: (4, sizes)}
        fields |= {tag: (3, [value]) for tag, value in (tags or {}).items()}
        entries = []
        for tag in sorted(fields):
            kind, values = fields[tag]
            raw = struct.pack(f"<{len(values)}{'H' if kind == 3 else 'I'}", *values)
            if len(raw) > 4:
                out += b"\0" * (len(out) % 2)
                entries.append(struct.pack("<HHII", tag, kind, len(values), len(out)))
                out += raw
            else:
                entries.append(struct.pack("<HHI", tag, kind, len(values)) + raw.ljust(4, b"\0"))
        out += b"\0" * (len(out) % 2)
        struct.pack_into("<I", out, next_pointer, len(out))
        out += struct.pack("<H", len(entries)) + b"".join(entries)
        next_pointer = len(out)
        out += b"\0\0\0\0"
    return bytes(out)


def _top_down_bmp(image: Image.Image) -> bytes:
    """A 24-bit BMP stored top row first, as a negative height says."""
    data = bytearray(_save(image, "BMP"))
    (start,) = struct.unpack("<I", data[10:14])
    stride = (image.width * 3 + 3) // 4 * 4
    rows = [data[start + i * stride : start + (i + 1) * stride] for i in range(image.height)]
    data[start : start + stride * image.height] = b"".join(reversed(rows))
    data[22:26] = struct.pack("<i", -image.height)
    return bytes(data)


def _rgb(image: Image.Image) -> npt.NDArray[np.int16]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _mae(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(_rgb(a) - _rgb(b)).mean())


Sample = Callable[[Image.Image], tuple[bytes, Image.Image]]


def _grey16(image: Image.Image) -> tuple[bytes, Image.Image]:
    grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return _tiff([grey], 1), image.convert("L")


def _rgb16(image: Image.Image) -> tuple[bytes, Image.Image]:
    return _tiff([np.asarray(image, dtype=np.uint16) * 257], 2), image


def _float(image: Image.Image) -> tuple[bytes, Image.Image]:
    unit = np.asarray(image.convert("L"), dtype=np.float32) / 255
    return _tiff([unit], 1), image.convert("L")


def _multipage(image: Image.Image) -> tuple[bytes, Image.Image]:
    second = np.full((40, 30, 3), 200, np.uint8)
    return _tiff([np.asarray(image), second], 2), image


SAMPLES: dict[str, tuple[Sample, float]] = {
    "BMP 24-bit": (lambda im: (_save(im, "BMP"), im), 0),
    "BMP 8-bit palette": (lambda im: (_save(im.convert("P"), "BMP"), im.convert("P")), 0),
    "BMP top-down": (lambda im: (_top_down_bmp(im), im), 0),
    "TIFF uint8 RGB": (lambda im: (_save(im, "TIFF"), im), 0),
    "TIFF LZW": (lambda im: (_save(im, "TIFF", compression="tiff_lzw"), im), 0),
    "TIFF deflate with alpha": (
        lambda im: (_save(_with_alpha(im), "TIFF", compression="tiff_adobe_deflate"),
                    _with_alpha(im)), 0),
    "TIFF 16-bit grey": (_grey16, 0),
    "TIFF 16-bit RGB": (_rgb16, 0),
    "TIFF float 0..1": (_float, 0.5),
    "TIFF CMYK": (lambda im: (_save(im.convert("CMYK"), "TIFF"), im.convert("CMYK")), 0),
    "TIFF multi-page: the first page": (_multipage, 0),
    "TIFF tiled": (lambda im: (_tiff([np.asarray(im)], 2, tile=64), im), 0),
    "HEIC": (lambda im: (_heic(im), im), 1.5),
    "HEIC with alpha": (lambda im: (_heic(_with_alpha(im)), _with_alpha(im)), 1.5),
    "HEIC grid (as phones write: 512-px tiles, here 64)": (
        lambda im: (_heic(im, tile_size=64), im), 1.5),
    "AVIF": (lambda im: (_avif(im), im), 2.5),
    "AVIF with alpha": (lambda im: (_avif(_with_alpha(im)), _with_alpha(im)), 2.5),
}  # fmt: skip


@pytest.mark.parametrize("name", SAMPLES)
def test_each_format_decodes_to_its_pixels(name: str, original: Image.Image) -> None:
    make, tolerance = SAMPLES[name]
    data, expected = make(original)
    decoded = decode(data, LIMITS)
    assert decoded.image.size == expected.size
    assert _mae(decoded.image, expected) <= tolerance
    has_alpha = "A" in expected.getbands()
    assert decoded.image.mode == ("RGBA" if has_alpha else "RGB")
    if has_alpha:
        alpha = np.asarray(decoded.image.getchannel("A"), np.int16)
        assert np.abs(alpha - np.asarray(expected.getchannel("A"), np.int16)).mean() <= tolerance


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


ROTATED: dict[str, tuple[Callable[[Image.Image], bytes], float]] = {
    # Pixels stored turned a quarter, with orientation 6 telling viewers to turn them back.
    "TIFF orientation tag": (lambda im: _tiff([np.asarray(im)], 2, tags={274: 6}), 0),
    "HEIC (irot, EXIF reset)": (lambda im: _heic(im, exif=_exif(6)), 1.5),
    "AVIF (irot as orientation)": (lambda im: _avif(im, exif=_exif(6)), 2.5),
}


@pytest.mark.parametrize("name", ROTATED)
def test_orientation_is_applied_once(name: str, original: Image.Image) -> None:
    make, tolerance = ROTATED[name]
    stored = original.transpose(Image.Transpose.ROTATE_90)
    decoded = decode(make(stored), LIMITS)
    assert decoded.image.size == original.size
    assert _mae(decoded.image, original) <= tolerance


def test_icc_profiles_are_kept(original: Image.Image) -> None:
    profile = ImageCms.createProfile("sRGB")
    icc = ImageCms.ImageCmsProfile(profile).tobytes()
    for data in (_save(original, "TIFF", icc_profile=icc), _heic(original, icc_profile=icc),
                 _avif(original, icc_profile=icc)):  # fmt: skip
        assert decode(data, LIMITS).icc_profile == icc


def test_a_cmyk_tiff_with_its_profile_is_converted_through_it(original: Image.Image) -> None:
    """A press whose cyan ink shows green and magenta red: the profile, not a naive
    conversion, says what the inks mean."""

    def swapped(c: float, m: float, y: float, k: float) -> tuple[float, float, float]:
        return ((1 - m) * (1 - k), (1 - c) * (1 - k), (1 - y) * (1 - k))

    data = _save(original.convert("CMYK"), "TIFF", icc_profile=cmyk_profile(swapped))
    decoded = decode(data, LIMITS)
    assert decoded.icc_profile is None  # converted to sRGB, the profile consumed
    want = Image.fromarray(np.asarray(original)[..., [1, 0, 2]])
    assert _mae(decoded.image, want) < _mae(decoded.image, original) / 3


def _isobmff_box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _heif_grid_claiming(width: int, height: int) -> bytes:
    """A HEIF whose primary item is a grid: its `ispe` says 64x64, the canvas in its grid
    description (in `idat`, found through `iinf` and `iloc`) says width x height."""
    full = b"\x00\x00\x00\x00"
    infe = [_isobmff_box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", item, 0) + kind + b"\0")
            for item, kind in ((1, b"grid"), (2, b"hvc1"))]  # fmt: skip
    iloc = (b"\x01\x00\x00\x00" + b"\x44\x00" + struct.pack(">H", 1)
            + struct.pack(">HHHHII", 1, 1, 0, 1, 0, 12))  # fmt: skip
    grid = b"\x00\x01\x00\x00" + struct.pack(">II", width, height)
    ispe = _isobmff_box(b"ispe", full + struct.pack(">II", 64, 64))
    meta = _isobmff_box(b"meta", full + b"".join([
        _isobmff_box(b"hdlr", full + b"\0\0\0\0pict" + b"\0" * 13),
        _isobmff_box(b"pitm", full + struct.pack(">H", 1)),
        _isobmff_box(b"iinf", full + struct.pack(">H", 2) + b"".join(infe)),
        _isobmff_box(b"iloc", iloc),
        _isobmff_box(b"idat", grid),
        _isobmff_box(b"iprp", _isobmff_box(b"ipco", ispe)),
    ]))  # fmt: skip
    return _isobmff_box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic") + meta


def _bmp_claiming(image: Image.Image, width: int, height: int, compression: int = 0) -> bytes:
    data = bytearray(_save(image.convert("P"), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    data[30:34] = struct.pack("<I", compression)  # 1: RLE8, a few bytes per run
    return bytes(data)


def _tiff_claiming(image: Image.Image, width: int, height: int) -> bytes:
    data = bytearray(_save(image, "TIFF", compression="tiff_adobe_deflate"))
    ifd = data.index(struct.pack("<HHI", 256, 3, 1))  # ImageWidth, SHORT, one value
    for at, value in ((ifd, width), (ifd + 12, height)):
        data[at : at + 12] = struct.pack("<HHII", 256 if at == ifd else 257, 4, 1, value)
    return bytes(data)


def _grid_canvas_claiming(data: bytes, size: tuple[int, int], width: int, height: int) -> bytes:
    """A real grid HEIC whose grid description (version 0, 16-bit sizes) says width x height;
    its `ispe` boxes still say the true size."""
    rows, columns = (size[1] + 15) // 16, (size[0] + 15) // 16
    grid = struct.pack(">BBBBHH", 0, 0, rows - 1, columns - 1, *size)
    assert data.count(grid) == 1
    return data.replace(grid, grid[:4] + struct.pack(">HH", width, height))


def _box_claiming(data: bytes, width: int, height: int) -> bytes:
    """``data`` with every ``ispe`` box saying width x height."""
    patched = bytearray(data)
    at = patched.find(b"ispe")
    while at != -1:
        patched[at + 8 : at + 16] = struct.pack(">II", width, height)
        at = patched.find(b"ispe", at + 4)
    return bytes(patched)


BOMBS: dict[str, Callable[[Image.Image], bytes]] = {
    "BMP 100000x100000": lambda im: _bmp_claiming(im, 100_000, 100_000),
    "BMP RLE8 top-down 100000x100000": lambda im: _bmp_claiming(im, 100_000, -100_000, 1),
    "TIFF deflate 100000x100000": lambda im: _tiff_claiming(im, 100_000, 100_000),
    "TIFF 64x64 with 100000x100000 tiles": lambda im: _tiff(
        [np.zeros((64, 64, 3), np.uint8)], 2, tags={322: 100_000 & 0xFFF0, 323: 60_000}
    ),
    "HEIC 100000x100000": lambda im: _box_claiming(_heic(im), 100_000, 100_000),
    "HEIC grid canvas 100000x100000": lambda im: _heif_grid_claiming(100_000, 100_000),
    "HEIC grid by libheif, canvas 65535x65535": lambda im: _grid_canvas_claiming(
        _heic(im, tile_size=16), im.size, 65_535, 65_535
    ),
    "AVIF 100000x100000": lambda im: _box_claiming(_avif(im), 100_000, 100_000),
}


@pytest.mark.parametrize("name", BOMBS)
def test_header_bombs_are_refused_before_any_decoder_runs(
    name: str, original: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = BOMBS[name](original.resize((32, 24)))

    def no_parser(*_args: object) -> Image.Image:
        raise AssertionError("the decoder's parser was reached")

    monkeypatch.setattr(decode_module, "_open", no_parser)
    started = time.monotonic()
    with pytest.raises(ImageTooLargeError, match="MP"):
        decode(data, LIMITS)
    assert time.monotonic() - started < 2


TRUNCATED: dict[str, Callable[[Image.Image], bytes]] = {
    "BMP": lambda im: _save(im, "BMP"),
    "BMP RLE8": lambda im: _save(im.convert("P"), "BMP", compression=1),
    "TIFF": lambda im: _save(im, "TIFF"),
    "TIFF LZW": lambda im: _save(im, "TIFF", compression="tiff_lzw"),
    "TIFF tiled": lambda im: _tiff([np.asarray(im)], 2, tile=64),
    "HEIC": _heic,
    "AVIF": _avif,
}


@pytest.mark.parametrize("name", TRUNCATED)
def test_truncated_files_are_corrupt(name: str, original: Image.Image) -> None:
    data = TRUNCATED[name](original)
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        decode(data[: len(data) // 2], LIMITS)


@pytest.mark.parametrize("name", ["BMP", "TIFF", "HEIC", "AVIF"])
def test_the_web_formats_alone_by_default(name: str, original: Image.Image) -> None:
    """What the HTTP APIs decode with: the three they document, and a refusal that names
    them (and where the others are read)."""
    data = {"BMP": _save(original, "BMP"), "TIFF": _save(original, "TIFF"),
            "HEIC": _heic(original), "AVIF": _avif(original)}[name]  # fmt: skip
    with pytest.raises(UnsupportedImageError) as refused:
        decode(data, WEB_ONLY)
    message = refused.value.message
    assert "accepted here: JPEG, PNG and WebP" in message
    assert "command line" in message
    assert (name if name != "HEIC" else "HEIF") in message


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_isobmff_box(b"ftyp", b"mif1\x00\x00\x00\x00mif1avif"), "avif"),
        (_isobmff_box(b"ftyp", b"mif1\x00\x00\x00\x00mif1heic"), "heif"),
        (_isobmff_box(b"ftyp", b"heix\x00\x00\x00\x00mif1heix"), "heif"),
        (_isobmff_box(b"ftyp", b"avis\x00\x00\x00\x00avismsf1"), "avif"),
        (b"II+\x00\x08\x00\x00\x00" + b"\0" * 16, "tiff"),  # BigTIFF
    ],
)
def test_the_container_brand_picks_the_decoder(head: bytes, expected: str) -> None:
    assert sniff(head, ALL_FORMATS) == expected


def test_an_mp4_is_not_taken_for_an_image() -> None:
    with pytest.raises(UnsupportedImageError, match="MP4"):
        sniff(_isobmff_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41"), ALL_FORMATS)


def test_reading_heif_leaves_pillow_as_it_was(original: Image.Image) -> None:
    """pillow-heif's image class is used directly: Pillow elsewhere in the process (a
    library user's code) does not start opening HEIF files because alphacut did."""
    registered = "HEIF" in Image.OPEN
    decode(_heic(original), LIMITS)
    assert ("HEIF" in Image.OPEN) == registered


def test_text_that_starts_with_bm_is_not_taken_for_a_bmp() -> None:
    with pytest.raises(UnsupportedImageError, match="not a recognised image"):
        decode(b"BMW 3 series, 2019, 48,000 km, one owner\n" * 4, LIMITS)


FUZZ_SEEDS = ["BMP 8-bit palette", "TIFF LZW", "TIFF tiled", "HEIC grid (as phones write: "
              "512-px tiles, here 64)", "AVIF with alpha"]  # fmt: skip


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 10**6))  # fmt: skip
def test_damaged_files_decode_or_are_refused(
    seed: str, flips: list[tuple[int, int]], keep: int
) -> None:
    """Bytes flipped, the file cut: an image or a typed 4xx, never another exception."""
    with Image.open(Path(__file__).parents[1] / "fixtures" / "rembg" / "car-1.jpg") as opened:
        image = opened.convert("RGB").resize((48, 32))
    data = bytearray(SAMPLES[seed][0](image)[0])
    for at, value in flips:
        data[at % len(data)] = value
    try:
        decoded = decode(bytes(data[: max(8, keep % (len(data) + 1))]), LIMITS)
    except (CorruptImageError, ImageTooLargeError, UnsupportedImageError):
        return  # typed: a 4xx with its message
    assert decoded.image.mode in ("RGB", "RGBA")


@pytest.mark.parametrize("name", ["BMP 8-bit palette", "TIFF tiled", "HEIC grid (as phones "
                                  "write: 512-px tiles, here 64)", "AVIF with alpha"])  # fmt: skip
def test_every_cut_through_the_header_is_a_typed_error(name: str, original: Image.Image) -> None:
    """The header readers (BMP info header, TIFF IFD, ISO-BMFF boxes, iinf, iloc) meet every
    length of file, down to a box cut inside its own header."""
    data = SAMPLES[name][0](original)[0]
    for length in range(min(len(data), 1200)):
        with pytest.raises((CorruptImageError, UnsupportedImageError)):
            decode(data[:length], LIMITS)


def test_a_tiff_layout_pillow_cannot_hold_is_named_not_called_damaged() -> None:
    rgb_float = np.linspace(0, 1, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    with pytest.raises(UnsupportedImageError, match="sample layout"):
        decode(_tiff([rgb_float], 2), LIMITS)
