"""Test files that carry every kind of metadata a phone or an editor writes, each with a
recognisable secret in it, and the check that none of it is left."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from imagetools import png_chunk

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

# Each of these is written somewhere into the test files; none may survive stripping.
SECRETS = (b"CAMSERIAL-4417", b"SECRET-COMMENT", b"SECRET-XMP", b"SECRET-IPTC", b"SECRET-TEXT",
           b"SECRET-ZTXT", b"SECRET-ITXT", b"SECRET-THUMB", b"SECRET-LATE-TEXT")  # fmt: skip
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description dc:creator="SECRET-XMP"/></rdf:RDF></x:xmpmeta>'
)
GPS_LATITUDE = (52.0, 31.0, 12.34)


def phone_exif(orientation: int) -> Image.Exif:
    """EXIF as a phone writes it: orientation, camera serial number, a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Phone"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "CAMSERIAL-4417"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    return exif


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _after_soi(jpeg: bytes, *segments: tuple[int, bytes]) -> bytes:
    extra = b"".join(
        bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body for marker, body in segments
    )
    return jpeg[:2] + extra + jpeg[2:]


def jpeg_with_everything(image: Image.Image, orientation: int = 6) -> bytes:
    """EXIF (GPS, serial, orientation), XMP, a comment, ICC, IPTC and a JFIF thumbnail."""
    data = encoded(image, "JPEG", quality=92, exif=phone_exif(orientation), icc_profile=ICC,
                 comment=b"SECRET-COMMENT", xmp=XMP)  # fmt: skip
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0f\x1c\x02\x78\x00\x0bSECRET-IPTC"
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x04\x01" + b"SECRET-THUMB"  # 4x1 thumbnail
    data = data[:2] + data[2 + 2 + int.from_bytes(data[4:6], "big") :]  # Pillow's own JFIF
    return _after_soi(data, (0xE0, jfif), (0xED, iptc))


def png_with_everything(image: Image.Image, orientation: int = 6) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SECRET-TEXT")
    info.add_text("Author", "SECRET-ZTXT", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "SECRET-ITXT")
    data = encoded(image, "PNG", pnginfo=info, exif=phone_exif(orientation), icc_profile=ICC)
    iend = len(data) - 12
    return (
        data[:iend]
        + png_chunk(b"tIME", b"\x07\xe8\x01\x02\x03\x04\x05")
        + (png_chunk(b"tEXt", b"Title\x00SECRET-LATE-TEXT") + data[iend:])
    )


def webp_with_everything(image: Image.Image, orientation: int = 6) -> bytes:
    return encoded(image, "WEBP", quality=90, exif=phone_exif(orientation).tobytes(), xmp=XMP,
                 icc_profile=ICC)  # fmt: skip


BUILDERS: dict[str, Callable[..., bytes]] = {
    "jpeg": jpeg_with_everything,
    "png": png_with_everything,
    "webp": webp_with_everything,
}
PLANTED: dict[str, tuple[bytes, ...]] = {
    "jpeg": (b"CAMSERIAL-4417", b"SECRET-COMMENT", b"SECRET-XMP", b"SECRET-IPTC", b"SECRET-THUMB"),
    "png": (
        b"CAMSERIAL-4417",
        b"SECRET-TEXT",
        b"SECRET-ITXT",
        b"SECRET-LATE-TEXT",
        b"tIME",
        b"zTXt",
    ),
    "webp": (b"CAMSERIAL-4417", b"SECRET-XMP"),
}


def assert_no_metadata(data: bytes, *, orientation: int) -> None:
    """No secret left; EXIF (if any) holds the orientation and nothing else; ICC intact."""
    for secret in (*SECRETS, b"tIME", b"zTXt", b"iTXt", b"XMP ", b"MPF\x00", b"Photoshop"):
        assert secret not in data, secret
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        exif = opened.getexif()
        assert dict(exif) == ({} if orientation == 1 else {ExifTags.Base.Orientation: orientation})
        assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert opened.info.get("icc_profile") == ICC
        for key in ("comment", "xmp", "XML:com.adobe.xmp", "Comment", "Author", "Title"):
            assert key not in opened.info, key
