"""Builders for test inputs that Pillow cannot write: 16-bit PNGs, raw PNG headers, a CMYK
ICC profile. Small and independent of alphacut's own code, so they can check it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """Signature and IHDR only: what a decoder reads before any pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr)


def png16(pixels: npt.NDArray[np.uint16]) -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA by channel count), filter 0 rows."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").reshape(height, width * channels).tobytes()
    stride = width * channels * 2
    raw = b"".join(b"\x00" + rows[i * stride : (i + 1) * stride] for i in range(height))
    return (
        png_header(width, height, 16, color_type)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def read_png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk of a PNG, checking the signature and each CRC (raises AssertionError)."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG signature"
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body), f"bad CRC in {tag!r}"
        chunks.append((tag, body))
        pos += 12 + length
    assert chunks[-1][0] == b"IEND", "PNG does not end with IEND"
    return chunks


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def cmyk_profile(
    ink_to_rgb: Callable[[float, float, float, float], tuple[float, float, float]],
    grid_points: int = 9,
) -> bytes:
    """A minimal ICC v2 CMYK output profile whose A2B0 maps ink to colour by ``ink_to_rgb``
    (sRGB 0..1), sampled on a grid of ``grid_points`` per ink and stored as Lab: enough for
    littleCMS to convert a CMYK image to sRGB through it."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    to_lab = ImageCms.buildTransform(srgb, lab, "RGB", "LAB")
    steps = [i / (grid_points - 1) for i in range(grid_points)]
    corners = [(c, m, y, k) for c in steps for m in steps for y in steps for k in steps]
    rgb = [ink_to_rgb(*ink) for ink in corners]
    samples = Image.new("RGB", (len(rgb), 1))
    samples.putdata([tuple(round(v * 255) for v in colour) for colour in rgb])
    lab_samples = ImageCms.applyTransform(samples, to_lab)
    assert lab_samples is not None
    # Pillow stores a* and b* as signed bytes; ICC's 8-bit Lab puts neutral at 128.
    lab_bytes = np.frombuffer(lab_samples.tobytes(), dtype=np.uint8).reshape(-1, 3).copy()
    lab_bytes[:, 1:] ^= 0x80
    clut = lab_bytes.tobytes()
    # lut8Type: 4 inputs, 3 outputs, the grid, identity matrix and identity curves.
    identity = b"".join(_s15fixed16(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    curve = bytes(range(256))
    a2b0 = (
        b"mft1"
        + b"\0" * 4
        + bytes([4, 3, grid_points, 0])
        + identity
        + curve * 4
        + clut
        + curve * 3
    )
    desc_text = b"alphacut test CMYK\0"
    desc = (
        b"desc"
        + b"\0" * 4
        + struct.pack(">I", len(desc_text))
        + desc_text
        + b"\0" * 12
        + b"\0" * 67
    )
    wtpt = b"XYZ " + b"\0" * 4 + _s15fixed16(0.9642) + _s15fixed16(1.0) + _s15fixed16(0.8249)
    cprt = b"text" + b"\0" * 4 + b"public domain\0"
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"prtr"
        + b"CMYK"
        + b"Lab "
        + b"\0" * 12
        + b"acsp"
        + b"APPL"
        + b"\0" * 4
        + b"\0" * 4
        + b"\0" * 4
        + b"\0" * 8
        + b"\0" * 4
        + _s15fixed16(0.9642)
        + _s15fixed16(1.0)
        + _s15fixed16(0.8249)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + body
