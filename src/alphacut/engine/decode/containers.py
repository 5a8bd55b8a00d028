"""The structure of image containers, walked without decoding any pixels: ISO-BMFF boxes
and items, JPEG segments and the MPF index, TIFF's first IFD; where an image's own data ends,
and the polyglot check built on it."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from alphacut.errors import UnsupportedImageError

SourceFormat = Literal["jpeg", "png", "webp", "bmp", "tiff", "heif", "avif"]

WEB_FORMATS: frozenset[SourceFormat] = frozenset({"jpeg", "png", "webp"})
"""What the HTTP APIs accept: what browsers show and the APIs store and serve."""


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
