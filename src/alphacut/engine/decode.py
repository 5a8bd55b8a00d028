"""Turn whatever the caller hands us into an 8-bit RGB or RGBA image, safely.

- The format is chosen by its magic bytes (never the file name), and Pillow is told to try
  that one format only. Which formats are accepted is the caller's choice
  (:attr:`Limits.formats`): the web formats (JPEG, PNG, WebP) by default, as the HTTP APIs
  take; the command line and the library's ``Remover`` also read BMP, TIFF, HEIC/HEIF
  (``pillow-heif``) and AVIF (:data:`ALL_FORMATS`), the files cameras, scanners and phones
  make, as rembg reads whatever Pillow reads. The HTTP APIs keep the three their reference
  (the IMG Processing API) documents: an upload is stored, and served again as the image's
  original, with a ``format`` of png, jpeg or webp that its clients expect. imgproxy and
  thumbor read these formats over HTTP too, but they re-encode every answer and store no
  originals; taking them into the APIs would mean converting on upload, a later choice.
- The byte limit is checked before reading, the pixel limit from the header before the pixel
  data is decoded, so a decompression bomb costs nothing. The header is read by our own code
  for every format (JPEG SOF, PNG IHDR, WebP VP8/VP8L/VP8X, BMP info header, TIFF first IFD
  and its tile size, the HEIF/AVIF ``ispe`` boxes and grid/overlay canvases), then again by
  Pillow's parser before anything is decoded. A TIFF is read as its first page; HEIF and AVIF
  as their primary image.
- EXIF orientation is applied. Colour stays right: an RGB ICC profile is kept beside the pixels
  (and written into the output); CMYK and grey images with a profile are converted to sRGB
  through it; 16-bit samples are scaled, not clipped.
- Polyglots are refused: after the image may come only padding, and after a JPEG the images
  its MPF index lists (:func:`check_single_format`). The check guards the originals the HTTP
  service stores and serves; BMP, TIFF, HEIF and AVIF are never stored, and where their data
  ends cannot be told from their structure alone (TIFF strips lie anywhere), so it is not made
  for them.
- HEIF's own rotation and mirroring (``irot``/``imir``) are applied by libheif, which resets
  the EXIF orientation to 1; AVIF's are turned into the EXIF orientation by Pillow: either way
  an image is turned once.
- Every failure is an :class:`~alphacut.errors.AlphacutError` with a message for the user.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms, ImageOps, TiffImagePlugin

from alphacut.errors import (
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)

SourceFormat = Literal["jpeg", "png", "webp", "bmp", "tiff", "heif", "avif"]
ImageSource: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | Image.Image"
    " | npt.NDArray[np.generic]"
)

WEB_FORMATS: frozenset[SourceFormat] = frozenset({"jpeg", "png", "webp"})
"""What the HTTP APIs accept: what browsers show and the APIs store and serve."""
ALL_FORMATS: frozenset[SourceFormat] = WEB_FORMATS | {"bmp", "tiff", "heif", "avif"}
"""What the command line and the library read."""
_NAMES: dict[SourceFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WebP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heif": "HEIC/HEIF",
    "avif": "AVIF",
}
_PILLOW_FORMATS: dict[SourceFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "avif": "AVIF",
}  # HEIF is opened by pillow-heif's image class itself, without registering it in Pillow
# Everything Pillow may raise on hostile or damaged data.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    RuntimeError,  # pillow-heif: libheif's decoding errors
    UserWarning,  # Pillow's "Corrupt EXIF data" (TIFF), where warnings are made errors
)
_SRGB = ImageCms.createProfile("sRGB")
# A JPEG's EXIF fits one 64 KiB segment; PNG and WebP could carry megabytes to parse.
MAX_EXIF_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    formats: frozenset[SourceFormat] = WEB_FORMATS


@dataclass(frozen=True)
class DecodedImage:
    """Upright 8-bit pixels (mode ``RGB`` or ``RGBA``) and the RGB ICC profile they are in.

    ``orientation`` is the EXIF orientation (1-8) that was applied to make them upright."""

    image: Image.Image
    icc_profile: bytes | None
    source_format: SourceFormat | None
    orientation: int = 1


def sniff(head: bytes, formats: frozenset[SourceFormat] = WEB_FORMATS) -> SourceFormat:
    """The format of an encoded image from its first bytes (64 are enough), if it is one of
    ``formats``; else a clear error saying what the data is and what is accepted."""
    fmt = _magic(head)
    if fmt is not None and fmt in formats:
        return fmt
    accepted = _listed(formats)
    if fmt is not None:
        others = _listed(ALL_FORMATS - formats)
        raise UnsupportedImageError(
            f"unsupported image format ({_describe(head)}); accepted here: {accepted} "
            f"({others} are read by the alphacut command line and library)"
        )
    raise UnsupportedImageError(
        f"unsupported image format ({_describe(head)}); alphacut accepts {accepted}"
    )


def _listed(formats: frozenset[SourceFormat]) -> str:
    names = [name for fmt, name in _NAMES.items() if fmt in formats]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_INFO_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})  # core, OS/2, v1-v5


def _magic(head: bytes) -> SourceFormat | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_INFO_SIZES:
        return "bmp"  # "BM" alone starts many texts; the info header's size tells a BMP
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF, BigTIFF
        return "tiff"
    if head[4:8] == b"ftyp":
        # The major brand, then the compatible ones: a generic `mif1` file says in its
        # compatible brands whether its image is AV1 (AVIF) or HEVC (HEIC).
        size = int.from_bytes(head[:4], "big")
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
        for brand in brands:
            if brand in _AVIF_BRANDS:
                return "avif"
            if brand in _HEIF_BRANDS - {b"mif1", b"msf1"}:
                return "heif"
        if brands[0] in _HEIF_BRANDS:
            return "heif"
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def probe_size(data: bytes, fmt: SourceFormat) -> tuple[int, int] | None:
    """``(width, height)`` read from the header alone, or ``None`` if the header is unreadable
    (the decoder then reports the damage)."""
    if fmt == "png":
        if data[12:16] != b"IHDR" or len(data) < 24:
            return None
        width, height = struct.unpack(">II", data[16:24])
        return (width, height)
    if fmt == "webp":
        return _probe_webp(data)
    if fmt == "bmp":
        return _probe_bmp(data)
    if fmt == "tiff":
        tiff = _tiff_header(data)
        return tiff[:2] if tiff else None
    if fmt in ("heif", "avif"):
        return _probe_isobmff(data)
    return _probe_jpeg(data)


def _probe_jpeg(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height)
        if marker == 0xDA:  # scan data before any frame header
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _probe_webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return (width, height)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return (width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None


def _probe_bmp(data: bytes) -> tuple[int, int] | None:
    """From the info header after the 14-byte file header: 16-bit sizes in the old OS/2
    ``BITMAPCOREHEADER`` (12 bytes), signed 32-bit in all later ones (a negative height is a
    top-down image)."""
    if len(data) < 26:
        return None
    header_size = int.from_bytes(data[14:18], "little")
    if header_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return (width, height)
    width, height = struct.unpack("<ii", data[18:26])
    return (abs(width), abs(height))


_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 256, 257, 322, 323


def _tiff_header(data: bytes) -> tuple[int, int, int, int] | None:
    """Width, height, tile width and tile length (0 when stored in strips) of the first page
    of a TIFF or BigTIFF, from its first IFD; ``None`` if unreadable. Pillow reads only that
    page (the first one is the image; later ones are further pages, thumbnails or masks)."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        ifd = tiff_ifd0(data)
        if ifd is None:
            return None
        order, entries = ifd
        fields = {tag: (kind, value) for tag, (kind, _count, value) in entries.items()}
    elif data[:4] in (b"II+\x00", b"MM\x00+") and len(data) >= 16:
        order = "<" if data[0] == 0x49 else ">"
        (offset,) = struct.unpack(order + "Q", data[8:16])
        if offset + 8 > len(data):
            return None
        (count,) = struct.unpack(order + "Q", data[offset : offset + 8])
        if offset + 8 + 20 * count > len(data):
            return None
        fields = {}
        for index in range(offset + 8, offset + 8 + 20 * count, 20):
            tag, kind = struct.unpack(order + "HH", data[index : index + 4])
            fields[tag] = (kind, data[index + 12 : index + 20])
    else:
        return None

    def number(tag: int) -> int | None:
        if tag not in fields:
            return None
        kind, value = fields[tag]
        code = {3: "H", 4: "I", 16: "Q"}.get(kind)  # SHORT, LONG, LONG8
        if code is None or struct.calcsize(code) > len(value):
            return None
        return int(struct.unpack_from(order + code, value)[0])

    width, height = number(_TIFF_WIDTH), number(_TIFF_HEIGHT)
    if width is None or height is None:
        return None
    return width, height, number(_TIFF_TILE_WIDTH) or 0, number(_TIFF_TILE_LENGTH) or 0


def _isobmff_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, end)`` of each ISO-BMFF box in ``data[start:end]``; stops at
    the first box that does not fit."""
    pos = start
    while pos + 8 <= end:
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # to the end
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _isobmff_child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in _isobmff_boxes(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def _probe_isobmff(data: bytes) -> tuple[int, int] | None:
    """The largest image a HEIF or AVIF file describes: each item's ``ispe`` (image spatial
    extents) property and each grid or overlay item's canvas, read before libheif or libavif
    parse anything (both refuse a 100,000-pixel side with a parse error of their own, not as
    too large; and a grid's canvas is the picture libheif assembles, which nothing but
    libheif's own checks ties to its ``ispe``). ``None`` without a ``meta`` box (an image
    sequence: Pillow's parser then reads the size, before decoding)."""
    meta = _isobmff_child(data, 0, len(data), b"meta")
    if meta is None:
        return None
    start, end = meta[0] + 4, meta[1]  # a full box: version and flags first
    sizes: list[tuple[int, int]] = []
    properties = _isobmff_child(data, start, end, b"iprp")
    container = _isobmff_child(data, *properties, b"ipco") if properties else None
    if container is not None:
        for kind, payload, box_end in _isobmff_boxes(data, *container):
            if kind == b"ispe" and box_end - payload >= 12:
                width, height = struct.unpack(">II", data[payload + 4 : payload + 12])
                sizes.append((width, height))
    sizes.extend(_isobmff_canvases(data, start, end))
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _isobmff_canvases(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """The output sizes that the ``grid`` and ``iovl`` (overlay) items of a ``meta`` box
    declare in their data (ISO/IEC 23008-12 6.6.2.3), found through ``iinf`` and ``iloc``."""
    kinds: dict[int, bytes] = {}
    info = _isobmff_child(data, start, end, b"iinf")
    if info is not None and info[1] - info[0] >= 8:
        first = info[0] + (6 if data[info[0]] == 0 else 8)  # version, flags, entry count
        for kind, payload, box_end in _isobmff_boxes(data, first, info[1]):
            version = data[payload] if payload < box_end else 0
            if kind != b"infe" or version < 2:
                continue
            id_size = 2 if version == 2 else 4
            item = int.from_bytes(data[payload + 4 : payload + 4 + id_size], "big")
            at = payload + 4 + id_size + 2  # after the protection index
            kinds[item] = data[at : at + 4]
    wanted = {item for item, kind in kinds.items() if kind in (b"grid", b"iovl")}
    if not wanted:
        return []
    location = _isobmff_child(data, start, end, b"iloc")
    item_data = _isobmff_child(data, start, end, b"idat")
    canvases = []
    for item, method, offset, length in _iloc_first_extents(data, location):
        if item not in wanted:
            continue
        if method == 1 and item_data is not None:
            offset += item_data[0]
        elif method != 0:
            continue
        body = data[offset : offset + length]
        if len(body) < 8:
            continue
        wide = body[1] & 1  # flags: 32-bit sizes
        at = 4 if kinds[item] == b"grid" else 2 + 8  # grid: rows, columns; iovl: fill colour
        code = ">II" if wide else ">HH"
        if len(body) >= at + struct.calcsize(code):
            width, height = struct.unpack(code, body[at : at + struct.calcsize(code)])
            canvases.append((width, height))
    return canvases


def _iloc_first_extents(
    data: bytes, location: tuple[int, int] | None
) -> Iterator[tuple[int, int, int, int]]:
    """``(item, construction method, offset, length)`` of each item's first extent in an
    ``iloc`` box (ISO/IEC 14496-12 8.11.3)."""
    if location is None:
        return
    pos, end = location
    if end - pos < 8:
        return
    version = data[pos]
    offset_size, length_size = data[pos + 4] >> 4, data[pos + 4] & 15
    base_size = data[pos + 5] >> 4
    index_size = data[pos + 5] & 15 if version in (1, 2) else 0
    count_size = 2 if version < 2 else 4
    pos += 6

    def read(size: int) -> int:
        nonlocal pos
        if pos + size > end:
            raise IndexError
        value = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        return value

    try:
        for _ in range(read(count_size)):
            item = read(count_size)
            method = read(2) & 15 if version in (1, 2) else 0
            read(2)  # data reference index
            base = read(base_size)
            extents = [
                (read(index_size), read(offset_size), read(length_size)) for _ in range(read(2))
            ]
            if extents:
                yield item, method, base + extents[0][1], extents[0][2]
    except IndexError:
        return


_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PADDING = frozenset(b"\x00\xff\r\n")
_MAX_PADDING = 4096


def image_end(data: bytes, fmt: SourceFormat) -> int | None:
    """Where the image's own data ends, from its structure; ``None`` if that cannot be
    told (a damaged file: the decoder will say so, or a format whose parts may lie anywhere:
    BMP, TIFF, HEIF and AVIF, which are never stored)."""
    if fmt not in WEB_FORMATS:
        return None
    if fmt == "webp":
        size = int.from_bytes(data[4:8], "little")
        return 8 + size + (size & 1)
    if fmt == "png":
        pos = 8
        while pos + 12 <= len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            kind = data[pos + 4 : pos + 8]
            pos += 12 + length
            if kind == b"IEND":
                return pos
        return None
    return _jpeg_end(data)


@dataclass(frozen=True)
class JpegSegment:
    """One marker of a JPEG: ``data[start:end]`` is the marker and its payload (for SOS, its
    header only: the entropy-coded data follows, up to the next segment's ``start``)."""

    marker: int
    start: int
    end: int

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 4 : self.end] if self.end > self.start + 2 else b""


def jpeg_segments(data: bytes) -> Iterator[JpegSegment]:
    """The segments of the JPEG image at the start of ``data``, from SOI to EOI. Stops early
    where the structure breaks: if the last segment is not EOI (0xD9), the file is damaged."""
    pos = 0
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            yield JpegSegment(marker, pos, pos + 2)
            if marker == 0xD9:
                return
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos + 4 > len(data) or end > len(data):
            return
        yield JpegSegment(marker, pos, end)
        pos = end
        if marker == 0xDA:  # entropy-coded data runs to the next real marker
            found = _JPEG_MARKER_IN_SCAN.search(data, pos)
            if found is None:
                return
            pos = found.start()


def _jpeg_end(data: bytes) -> int | None:
    end = None
    for segment in jpeg_segments(data):
        end = segment.end if segment.marker == 0xD9 else None
    return end


def _is_padding(data: bytes) -> bool:
    return len(data) <= _MAX_PADDING and all(byte in _PADDING for byte in data)


def check_single_format(data: bytes, fmt: SourceFormat) -> None:
    """Refuse files that carry something after the image (JPEG+ZIP, PNG+HTML polyglots).

    Allowed after the end: up to 4 KiB of padding, and for JPEG the further images that the
    primary image's MPF index lists (the layout phones use for depth maps, gain maps and
    previews), each a whole JPEG of exactly the listed size at the listed offset. Anything
    the index does not account for is refused: a stored original may be served as it came
    (``keep_metadata``), and nothing in it may read as a second file. imgproxy and thumbor
    never serve such bytes since they re-encode; the same guarantee without re-encoding
    needs the structure checked."""
    end = image_end(data, fmt)
    if end is None or end >= len(data):
        return
    rest = data[end:]
    if _is_padding(rest):
        return
    if fmt == "jpeg" and _mpf_accounts_for(data, end):
        return
    raise UnsupportedImageError(
        f"the {fmt.upper()} image is followed by {len(rest):,} bytes of other data; files "
        "that are two formats at once are refused"
    )


_MPF = b"MPF\x00"
_MP_ENTRY = 0xB002


def mpf_images(data: bytes) -> list[tuple[int, int]] | None:
    """``(offset, size)`` in ``data`` of each image that the primary JPEG's MP index (CIPA
    DC-007: an APP2 ``MPF\\0`` segment holding a TIFF-structured IFD whose tag 0xB002 lists
    16-byte entries: attribute, size, offset from the TIFF header, dependencies) says follows
    it, in index order; ``None`` without a readable index. Entries of size 0 (absent
    images) and the primary image itself (offset 0) are left out."""
    for segment in jpeg_segments(data):
        if segment.marker == 0xDA:
            return None  # the index belongs to the header, before the first scan
        payload = segment.payload(data)
        if segment.marker != 0xE2 or not payload.startswith(_MPF):
            continue
        tiff = payload[len(_MPF) :]
        ifd = tiff_ifd0(tiff)
        if ifd is None:
            return None
        order, entries = ifd
        if _MP_ENTRY not in entries:
            return None
        kind, count, value = entries[_MP_ENTRY]
        offset = struct.unpack(order + "I", value)[0]
        if kind != 7 or count == 0 or count % 16 or offset + count > len(tiff):
            return None
        tiff_start = segment.start + 4 + len(_MPF)
        images = []
        for index in range(offset, offset + count, 16):
            _attribute, size, start = struct.unpack(order + "III", tiff[index : index + 12])
            if size and start:
                images.append((tiff_start + start, size))
        return images
    return None


def _mpf_accounts_for(data: bytes, primary_end: int) -> bool:
    """Whether everything after the primary image is the images its MP index lists, each a
    whole JPEG that fills its listed size, with at most padding around them."""
    images = mpf_images(data)
    if not images:
        return False
    cursor = primary_end
    for start, size in sorted(images):
        image = data[start : start + size]
        if start < cursor or len(image) != size or not _is_padding(data[cursor:start]):
            return False  # overlapping, beyond the end of the file, or junk in between
        end = _jpeg_end(image) if image.startswith(b"\xff\xd8\xff") else None
        if end is None or not _is_padding(image[end:]):
            return False
        cursor = start + size
    return _is_padding(data[cursor:])


def tiff_ifd0(tiff: bytes) -> tuple[str, dict[int, tuple[int, int, bytes]]] | None:
    """The first IFD of a TIFF structure (EXIF, MPF): its byte order (``<`` or ``>``) and
    ``{tag: (type, count, 4-byte value-or-offset field)}``; ``None`` if it is unreadable."""
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    if len(tiff) < 8:
        return None
    offset = struct.unpack(order + "I", tiff[4:8])[0]
    if offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    if offset + 2 + 12 * count > len(tiff):
        return None
    entries: dict[int, tuple[int, int, bytes]] = {}
    for index in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, number = struct.unpack(order + "HHI", tiff[index : index + 8])
        entries[tag] = (kind, number, tiff[index + 8 : index + 12])
    return order, entries


def _describe(head: bytes) -> str:
    if not head:
        return "the data is empty"
    known = {
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
        b"%PDF": "PDF",
        b"PK\x03\x04": "a ZIP archive",
        b"8BPS": "Photoshop PSD",
        b"\x00\x00\x01\x00": "ICO",
        b"\xff\x0a": "JPEG XL",
        b"\x00\x00\x00\x0cJXL ": "JPEG XL",
        b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    }
    for magic, name in known.items():
        if head.startswith(magic):
            return f"the data is {name}"
    if _magic(head) == "bmp":
        return "the data is BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"the data is HEIF/AVIF/MP4 ({brand})"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) or b"<svg" in text:
        return "the data is SVG/XML"
    if text.startswith((b"<!doctype html", b"<html")):
        return "the data is HTML"
    return "the data is not a recognised image"


def decode(source: ImageSource, limits: Limits) -> DecodedImage:
    """Decode ``source`` (path, bytes, file object, PIL image or numpy array) within ``limits``."""
    if isinstance(source, Image.Image):
        return _from_pillow(source, limits, None)
    if isinstance(source, np.ndarray):
        return _from_array(source, limits)
    data = _read_bytes(source, limits)
    fmt = sniff(data[:64], limits.formats)
    check_single_format(data, fmt)
    header_size = probe_size(data, fmt)
    if header_size is not None:
        _check_pixels(*header_size, limits)  # before Pillow allocates anything
    if fmt == "tiff":
        _check_tiff_tiles(data, limits)
    try:
        image = _open(data, fmt)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("the image's dimensions exceed the pixel limit") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(
            f"could not read the {_NAMES[fmt]} image: it is truncated or damaged"
        ) from exc
    return _from_pillow(image, limits, fmt)


def _open(data: bytes, fmt: SourceFormat) -> Image.Image:
    """The image's header parsed, nothing decoded yet."""
    if fmt == "heif":
        # Imported here: libheif loads only when a HEIF file comes. Its image class is used
        # directly rather than registered, so that Pillow elsewhere in the process is as it was.
        from pillow_heif import HeifImageFile

        image: Image.Image = HeifImageFile(io.BytesIO(data))  # type: ignore[no-untyped-call]
        return image
    if fmt == "tiff":
        # The plugin's class itself, so that a layout Pillow cannot hold (three float samples,
        # 12-bit...) is said as such: through Image.open it is only "cannot identify".
        try:
            return TiffImagePlugin.TiffImageFile(io.BytesIO(data))
        except SyntaxError as exc:
            if "pixel mode" not in str(exc):
                raise
            raise UnsupportedImageError(
                "this TIFF's sample layout (bits, sample count or format) cannot be read; "
                "convert it to 8- or 16-bit RGB, grey or CMYK"
            ) from exc
    return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])


def _check_tiff_tiles(data: bytes, limits: Limits) -> None:
    """A tiled TIFF's decoder holds one tile at a time: a small image may declare enormous
    tiles (libtiff allocates one), so a tile counts against the pixel limit as an image does."""
    header = _tiff_header(data)
    if header is not None and header[2] * header[3] > limits.max_pixels:
        raise ImageTooLargeError(
            f"the TIFF's tiles are {header[2]}x{header[3]}; the limit is "
            f"{limits.max_pixels / 1e6:g} MP"
        )


def _read_bytes(source: ImageSource, limits: Limits) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            if not path.is_file():
                raise InvalidInputError(f"{path} is not a file")
            size = path.stat().st_size
            _check_bytes(size, limits)
            with path.open("rb") as f:
                data = f.read(limits.max_bytes + 1)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    elif hasattr(source, "read"):
        data = source.read(limits.max_bytes + 1)
        if not isinstance(data, bytes):
            raise InvalidInputError("the file object must be opened in binary mode")
    else:
        raise InvalidInputError(
            f"cannot read an image from {type(source).__name__}; pass a path, bytes, "
            "a binary file object, a PIL image or a numpy array"
        )
    _check_bytes(len(data), limits)
    return data


def _check_bytes(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise ImageTooLargeError(
            f"the image file is larger than the limit of {limits.max_bytes:,} bytes"
        )


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"the image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"the limit is {limits.max_pixels / 1e6:g} MP"
        )


def _from_pillow(image: Image.Image, limits: Limits, fmt: SourceFormat | None) -> DecodedImage:
    _check_pixels(image.width, image.height, limits)  # header only: nothing decoded yet
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("the image's dimensions exceed the pixel limit") from exc
    except _DECODE_ERRORS as exc:
        what = f"{_NAMES[fmt]} image" if fmt else "image"
        raise CorruptImageError(f"could not decode the {what}: it is truncated or damaged") from exc
    icc = image.info.get("icc_profile") or None
    image, orientation = _upright(image)
    if fmt == "tiff" and image.mode == "F":
        # Floating-point samples are 0..1 by convention (scientific and HDR TIFFs, as
        # tifffile, scikit-image and OpenCV write them).
        unit = np.nan_to_num(np.asarray(image, dtype=np.float32))
        image = Image.fromarray(np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8), "L")
    image, icc = _to_rgb(image, icc)
    return DecodedImage(image=image, icc_profile=icc, source_format=fmt, orientation=orientation)


def _upright(image: Image.Image) -> tuple[Image.Image, int]:
    """The image turned as its EXIF (or XMP) orientation says, and that orientation."""
    exif = image.info.get("exif") or b""
    if len(exif) > MAX_EXIF_BYTES:
        raise CorruptImageError(
            f"the image's EXIF metadata is implausibly large ({len(exif):,} bytes)"
        )
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        turned = isinstance(orientation, int) and 2 <= orientation <= 8
        if not turned:  # upright already (exif_transpose would return a copy: 36 MB at 12 MP)
            return image, 1
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image, 1  # unreadable EXIF: keep the pixels as stored
    return upright, orientation


def _to_rgb(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """8-bit RGB or RGBA, and the RGB profile the values are in (``None`` means sRGB)."""
    alpha: Image.Image | None = None
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = _grey16_to_l(image)
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in ("LA", "La", "RGBA", "RGBa"):
        alpha = image.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
        image = image.convert("L" if image.mode in ("LA", "La") else "RGB")

    image, icc = _to_srgb_or_tagged_rgb(image, _profile(icc), icc)
    if alpha is not None:
        image.putalpha(alpha)
    return image, icc


def _to_srgb_or_tagged_rgb(
    image: Image.Image, profile: ImageCms.ImageCmsProfile | None, icc: bytes | None
) -> tuple[Image.Image, bytes | None]:
    """RGB values plus the profile they are in: RGB keeps its own profile, CMYK and grey
    images with a matching profile are converted through it to sRGB, anything else is
    converted plainly and left untagged (sRGB by convention)."""
    space = profile.profile.xcolor_space.strip() if profile else None
    if image.mode == "RGB":
        return image, icc if space == "RGB" else None
    if profile is not None and (image.mode, space) in (("CMYK", "CMYK"), ("L", "GRAY")):
        try:
            converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # an unusable profile: fall back to the plain conversion below
        if converted is not None:
            return converted, None
    return image.convert("RGB"), None


def _profile(icc: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken profile is ignored, as browsers do


def _grey16_to_l(image: Image.Image) -> Image.Image:
    values: npt.NDArray[np.int64] = np.asarray(image, dtype=np.int64)
    if image.mode == "I" and values.max(initial=0) <= 255:
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")


def _from_array(array: npt.NDArray[np.generic], limits: Limits) -> DecodedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInputError(
            f"a numpy image must be (h, w), (h, w, 3) RGB or (h, w, 4) RGBA; got {array.shape}"
        )
    _check_pixels(array.shape[1], array.shape[0], limits)
    pixels: npt.NDArray[np.uint8]
    if array.dtype == np.uint8:
        pixels = array.astype(np.uint8, copy=False)
    elif array.dtype == np.uint16:
        pixels = (array.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        pixels = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).astype(np.uint8)
    else:
        raise InvalidInputError(
            f"numpy images must be uint8, uint16, bool or float in 0..1; got {array.dtype}"
        )
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2] if pixels.ndim == 3 else 2]
    image, icc = _to_rgb(Image.fromarray(np.ascontiguousarray(pixels), mode), None)
    return DecodedImage(image=image, icc_profile=icc, source_format=None)
