"""The format of encoded bytes, from their magic, and the image's size, from its header
alone: what is known before any decoder runs."""

from __future__ import annotations

import struct

from alphacut.engine.decode.containers import (
    WEB_FORMATS,
    SourceFormat,
    _isobmff_boxes,
    _isobmff_canvases,
    _isobmff_child,
    tiff_ifd0,
)
from alphacut.errors import AlphacutError, UnsupportedImageError

ALL_FORMATS: frozenset[SourceFormat] = WEB_FORMATS | {"bmp", "tiff", "heif", "avif"}
"""What the command line and the library read."""
PHOTO_FORMATS: frozenset[SourceFormat] = WEB_FORMATS | {"heif", "avif"}
"""What the HTTP APIs and the web page read: the web formats and the ones phones save photos
in (HEIC on iPhones, AVIF on recent Android), each with its size read from its header before
any decoder runs. BMP and TIFF stay with the command line: scanners' and archives' files,
whose decoders (libtiff's many codecs) are more to expose to anyone who can send a request."""
_NAMES: dict[SourceFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WebP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heif": "HEIC/HEIF",
    "avif": "AVIF",
}


def sniff(head: bytes, formats: frozenset[SourceFormat] = WEB_FORMATS) -> SourceFormat:
    """The format of an encoded image from its first bytes (64 are enough), if it is one of
    ``formats``; else a clear error saying what the data is and what is accepted."""
    fmt = _magic(head)
    if fmt is not None and fmt in formats:
        return fmt
    accepted = _listed(formats)
    # One pair of parentheses, around what the data is, never nested: the web page and
    # scripts take the message apart there.
    if fmt is not None:
        others = _listed(ALL_FORMATS - formats)
        verb = "is" if len(ALL_FORMATS - formats) == 1 else "are"
        raise UnsupportedImageError(
            f"unsupported image format (the data is {_NAMES[fmt]}); accepted here: "
            f"{accepted}; {others} {verb} read by the alphacut command line and library"
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


def probe_pixels(data: bytes) -> int | None:
    """Pixels of an encoded image, from its header; None when there is none to read (the
    decoder then refuses it with its own message). What a job is costed by before anything
    is decoded."""
    try:  # any format the decoder may be asked to take: the decoder then says which it takes
        size = probe_size(data, sniff(data[:64], ALL_FORMATS))
    except AlphacutError:
        return None
    return size[0] * size[1] if size else None


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
        if data[pos] != 0xFF:  # junk between segments: Pillow skips it, so must the probe
            pos += 1
            continue
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
        brand = "".join(c for c in head[8:12].decode("ascii", "replace") if c.isalnum())
        return f"the data is an MP4/ISO media file of brand {brand or 'unknown'}, not HEIC or AVIF"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) or b"<svg" in text:
        return "the data is SVG/XML"
    if text.startswith((b"<!doctype html", b"<html")):
        return "the data is HTML"
    return "the data is not a recognised image"
