"""A fast PNG writer for 8-bit grey, grey+alpha, RGB and RGBA arrays.

Why not Pillow: at 12 MP Pillow's default (level 6, adaptive filters, one thread) takes about
1.4 s for a cut-out; this writer takes about 0.12 s for a file ~10% larger, because it
- filters every row with PNG's "Up" filter in one vectorised numpy pass (on photos with large
  transparent areas it compresses as well as adaptive filtering, measured in bench/),
- deflates with zlib-ng, whose levels 1-3 are several times faster than zlib's,
- splits the rows into pieces deflated on several threads (zlib-ng releases the GIL) and
  joins them into one valid zlib stream: each piece but the last ends on a byte boundary with
  an empty stored block (``Z_SYNC_FLUSH``), so the raw deflate streams concatenate, and the
  adler32 of the whole filtered data closes the stream, as pigz does.
The output is a standard PNG that every decoder reads; tests check it against Pillow's.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt
from zlib_ng import zlib_ng

from alphacut.engine.threads import pool

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_FILTER_UP = 2
_MIN_PIECE_BYTES = 1 << 20  # below this, threads cost more than they save
_IDAT_MAX = 1 << 30


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib_ng.crc32(data, zlib_ng.crc32(tag))
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def _filter_up(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Rows prefixed by their filter byte, each row minus the one above (mod 256)."""
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    out = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _FILTER_UP
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def _deflate(filtered: npt.NDArray[np.uint8], level: int, threads: int) -> bytes:
    height = filtered.shape[0]
    pieces = max(1, min(threads * 2, filtered.nbytes // _MIN_PIECE_BYTES, height))
    bounds = np.linspace(0, height, pieces + 1, dtype=np.int64)

    def deflate_piece(index: int) -> bytes:
        compressor = zlib_ng.compressobj(level, zlib.DEFLATED, -15)  # raw deflate
        data = compressor.compress(filtered[bounds[index] : bounds[index + 1]])
        last = index == pieces - 1
        return data + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    if pieces == 1 or threads == 1:
        parts = [deflate_piece(i) for i in range(pieces)]
    else:
        parts = list(pool(threads, "png").map(deflate_piece, range(pieces)))
    # zlib header: deflate with a 32 KiB window, no preset dictionary (0x78 0x01 is a valid
    # check value; the level bits are informative only).
    adler = zlib_ng.adler32(filtered)
    return b"\x78\x01" + b"".join(parts) + struct.pack(">I", adler)


def encode_png(
    pixels: npt.NDArray[np.uint8],
    *,
    level: int = 3,
    threads: int = 1,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode an ``(h, w)`` or ``(h, w, c)`` uint8 array (c = 1, 2, 3 or 4) as a PNG."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"encode_png needs uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"encode_png cannot encode an array of shape {pixels.shape}")
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise ValueError("encode_png cannot encode an empty image")
    if not 0 <= level <= 9:
        raise ValueError(f"PNG compression level must be 0-9, got {level}")

    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    out = [_SIGNATURE, _chunk(b"IHDR", header)]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib_ng.compress(icc_profile)))
    data = _deflate(_filter_up(np.ascontiguousarray(pixels)), level, threads)
    for start in range(0, len(data), _IDAT_MAX):
        out.append(_chunk(b"IDAT", data[start : start + _IDAT_MAX]))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
