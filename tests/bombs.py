"""Content-Encoding bombs and an origin that serves them, for the fetch and download tests.

A gzip stream of ``size`` zeros is built in a fraction of a second however large ``size`` is:
one 1 MiB block compressed with a full flush (so its deflate bytes stand alone) is repeated,
then the stream is closed and given the real CRC-32 and length, so it is a valid gzip file."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_MIB = 1 << 20


@functools.cache
def gzip_zeros(size: int) -> bytes:
    """A valid gzip file that inflates to ``size`` zero bytes (``size``: whole MiB)."""
    assert size % _MIB == 0
    block = bytes(_MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressor.compress(block)
    first = compressor.flush(zlib.Z_FULL_FLUSH)  # with the stream's start
    compressor.compress(block)
    repeated = compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every further MiB
    end = compressor.flush()
    crc = 0
    for _ in range(size // _MIB):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    body = first + repeated * (size // _MIB - 1) + end
    return header + body + struct.pack("<II", crc, size & 0xFFFFFFFF)


@functools.cache
def stacked_gzip_zeros(size: int) -> bytes:
    """``gzip(gzip(zeros))``: served as ``Content-Encoding: gzip, gzip``, a few KB that
    inflate to ``size`` bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(gzip_zeros(size)) + compressor.flush()


@contextmanager
def bomb_origin(
    files: dict[str, tuple[str, bytes]], seen: list[str] | None = None
) -> Iterator[str]:
    """A loopback HTTP origin answering each path with ``(Content-Encoding, body)``; it
    appends the Accept-Encoding of each request to ``seen`` (yields ``host:port``)."""
    received: list[str] = [] if seen is None else seen

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("Accept-Encoding", ""))
            encoding, body = files.get(self.path, ("", b""))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", "image/png")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hung up on a refused answer
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class PeakRss:
    """The process's peak resident memory over a block (Linux: VmHWM, reset on entry)."""

    def __enter__(self) -> PeakRss:
        with contextlib.suppress(OSError):  # else: the peak since start, still an upper bound
            Path("/proc/self/clear_refs").write_text("5")
        self.before = _status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status("VmHWM")

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 1e6


def _status(field: str) -> int:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", status.read_text(), re.M)
    return int(match.group(1)) * 1024 if match else 0
