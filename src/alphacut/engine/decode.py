"""Turn whatever the caller hands us into an 8-bit RGB or RGBA image, safely.

- Only JPEG, PNG and WebP are decoded, chosen by their magic bytes (never the file name), and
  Pillow is told to try that one format only.
- The byte limit is checked before reading, the pixel limit from the header before the pixel
  data is decoded, so a decompression bomb costs nothing.
- EXIF orientation is applied. Colour stays right: an RGB ICC profile is kept beside the pixels
  (and written into the output); CMYK and grey images with a profile are converted to sRGB
  through it; 16-bit samples are scaled, not clipped.
- Polyglots are refused: after the image may come only padding, and after a JPEG the images
  its MPF index lists (:func:`check_single_format`).
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
from PIL import ExifTags, Image, ImageCms, ImageOps

from alphacut.errors import (
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)

SourceFormat = Literal["jpeg", "png", "webp"]
ImageSource: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | Image.Image"
    " | npt.NDArray[np.generic]"
)

_PILLOW_FORMATS: dict[SourceFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
# Everything Pillow may raise on hostile or damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)
_SRGB = ImageCms.createProfile("sRGB")
# A JPEG's EXIF fits one 64 KiB segment; PNG and WebP could carry megabytes to parse.
MAX_EXIF_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class DecodedImage:
    """Upright 8-bit pixels (mode ``RGB`` or ``RGBA``) and the RGB ICC profile they are in.

    ``orientation`` is the EXIF orientation (1-8) that was applied to make them upright."""

    image: Image.Image
    icc_profile: bytes | None
    source_format: SourceFormat | None
    orientation: int = 1


def sniff(head: bytes) -> SourceFormat:
    """The format of an encoded image from its first bytes, or a clear error saying what it is."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise UnsupportedImageError(
        f"unsupported image format ({_describe(head)}); alphacut accepts JPEG, PNG and WebP"
    )


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


_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PADDING = frozenset(b"\x00\xff\r\n")
_MAX_PADDING = 4096


def image_end(data: bytes, fmt: SourceFormat) -> int | None:
    """Where the image's own data ends, from its structure; ``None`` if that cannot be
    told (a damaged file: the decoder will say so)."""
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
        b"BM": "BMP",
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
    fmt = sniff(data[:64])
    check_single_format(data, fmt)
    header_size = probe_size(data, fmt)
    if header_size is not None:
        _check_pixels(*header_size, limits)  # before Pillow allocates anything
    try:
        image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("the image's dimensions exceed the pixel limit") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(
            f"could not read the {fmt.upper()} image: it is truncated or damaged"
        ) from exc
    return _from_pillow(image, limits, fmt)


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
        what = f"{fmt.upper()} image" if fmt else "image"
        raise CorruptImageError(f"could not decode the {what}: it is truncated or damaged") from exc
    icc = image.info.get("icc_profile") or None
    image, orientation = _upright(image)
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
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image, 1  # unreadable EXIF: keep the pixels as stored
    turned = isinstance(orientation, int) and 2 <= orientation <= 8
    return upright, orientation if turned else 1


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
