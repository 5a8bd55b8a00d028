"""Remove the metadata of an encoded image without touching its pixels.

What a photo carries besides its pixels (the EXIF GPS position, the camera's serial number,
XMP edit history, IPTC captions, JPEG comments, PNG text chunks) goes to everyone who can
fetch the file. imgproxy (``IMGPROXY_STRIP_METADATA=true``) and thumbor strip it by default
and keep the ICC profile, since colour is part of the picture; so does this module. Unlike
them it strips at the container level, segment by segment and chunk by chunk, so the stored
original keeps its exact pixels (no second lossy encoding) and its size.

Kept: everything needed to decode the image the same way: JPEG tables, frames and scans, the
JFIF header (without its thumbnail), ICC profile chunks, the Adobe segment (it says how to
read CMYK/YCCK); PNG critical chunks, colour (iCCP, sRGB, gAMA, cHRM, cICP, mDCV, cLLI, sBIT),
transparency, background, pixel density and APNG animation chunks; WebP image, alpha,
animation and ICC chunks. The orientation the decoder applied is written back as a minimal
EXIF block holding that one tag, so the image still turns upright in every viewer.

Dropped: everything else, including the images a JPEG's MPF index appends (previews, depth
and gain maps carry their own EXIF), since alphacut only ever shows the primary image.
"""

from __future__ import annotations

import struct
import zlib

from alphacut.engine.decode import JpegSegment, SourceFormat, jpeg_segments
from alphacut.errors import CorruptImageError

_ORIENTATION = 0x0112


def strip_metadata(data: bytes, fmt: SourceFormat, *, orientation: int) -> bytes:
    """``data`` (a whole JPEG, PNG or WebP that decodes) without its metadata.

    ``orientation`` is the EXIF orientation the decoder applied to it
    (:attr:`~alphacut.engine.decode.DecodedImage.orientation`); anything but 1 is kept.
    """
    if not 1 <= orientation <= 8:
        raise ValueError(f"EXIF orientations are 1 to 8, not {orientation}")
    if fmt == "jpeg":
        return _strip_jpeg(data, orientation)
    if fmt == "png":
        return _strip_png(data, orientation)
    return _strip_webp(data, orientation)


def minimal_exif(orientation: int) -> bytes:
    """A big-endian TIFF block whose only IFD holds one tag: the orientation."""
    entry = struct.pack(">HHIHH", _ORIENTATION, 3, 1, orientation, 0)  # SHORT, 1 value
    return b"MM\x00*" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


# JPEG -------------------------------------------------------------------------------------

_APP0, _APP1, _APP2, _APP14, _APP15, _COM, _EOI = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF, 0xFE, 0xD9


def _strip_jpeg(data: bytes, orientation: int) -> bytes:
    view = memoryview(data)
    out: list[bytes | memoryview] = []
    cursor = 0  # data[cursor:] is not yet copied or dropped
    exif_written = orientation == 1
    for segment in jpeg_segments(data):
        out.append(view[cursor : segment.start])  # fill bytes, entropy-coded data
        cursor = segment.end
        marker = segment.marker
        if not exif_written and segment.start > 0 and not _is_jfif(data, segment):
            out.append(_jpeg_segment(_APP1, b"Exif\x00\x00" + minimal_exif(orientation)))
            exif_written = True
        if _APP0 <= marker <= _APP15 or marker == _COM:
            out.append(_kept_app_segment(data, segment))
        else:
            out.append(view[segment.start : segment.end])
        if marker == _EOI:
            return b"".join(out)  # what follows (MPF images, padding) is dropped
    raise CorruptImageError("could not read the JPEG's structure: it is truncated or damaged")


def _is_jfif(data: bytes, segment: JpegSegment) -> bool:
    return segment.marker == _APP0 and segment.payload(data).startswith(b"JFIF\x00")


def _kept_app_segment(data: bytes, segment: JpegSegment) -> bytes:
    """The segment as it is kept: ``b""`` for metadata (EXIF, XMP, IPTC, MPF, comments...)."""
    payload = segment.payload(data)
    if segment.marker == _APP0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
        return _jpeg_segment(_APP0, payload[:12] + b"\x00\x00")  # no thumbnail
    if segment.marker == _APP2 and payload.startswith(b"ICC_PROFILE\x00"):
        return data[segment.start : segment.end]
    if segment.marker == _APP14 and payload.startswith(b"Adobe"):
        return data[segment.start : segment.end]  # the colour transform of CMYK/YCCK
    return b""


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", 2 + len(payload)) + payload


# PNG --------------------------------------------------------------------------------------

_PNG_KEPT = frozenset(
    {
        b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"mDCV", b"cLLI", b"sBIT",  # colour
        b"tRNS", b"bKGD", b"pHYs", b"hIST",  # rendering
        b"acTL", b"fcTL", b"fdAT",  # APNG frames
    }
)  # fmt: skip


def _strip_png(data: bytes, orientation: int) -> bytes:
    view = memoryview(data)
    out: list[bytes | memoryview] = [view[:8]]
    pos = 8
    exif_written = orientation == 1
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind == b"IDAT" and not exif_written:
            out.append(_png_chunk(b"eXIf", minimal_exif(orientation)))
            exif_written = True
        if kind[:1].isupper() or kind in _PNG_KEPT:  # critical chunks: IHDR, PLTE, IDAT...
            out.append(view[pos:end])
        if kind == b"IEND":
            return b"".join(out)
        pos = end
    raise CorruptImageError("could not read the PNG's structure: it is truncated or damaged")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


# WebP -------------------------------------------------------------------------------------

_WEBP_KEPT = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _strip_webp(data: bytes, orientation: int) -> bytes:
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if data[12:16] != b"VP8X":
        return data[: riff_end + (riff_end & 1)]  # a simple file: one image chunk, nothing else
    view = memoryview(data)
    chunks: list[bytes | bytearray | memoryview] = []
    pos = 12
    while pos + 8 <= riff_end:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if end > len(data):
            break
        if kind in _WEBP_KEPT:
            chunks.append(view[pos:end])
        pos = end
    if pos < riff_end - 1 or not chunks or len(chunks[0]) != 18:
        raise CorruptImageError("could not read the WebP's structure: it is truncated or damaged")
    vp8x = bytearray(chunks[0])
    vp8x[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
    chunks[0] = vp8x
    if orientation != 1:
        exif = minimal_exif(orientation)
        chunks.append(b"EXIF" + struct.pack("<I", len(exif)) + exif)  # even length: no padding
        vp8x[8] |= _VP8X_EXIF
    body = b"".join(chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
