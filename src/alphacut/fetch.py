"""Fetching an image from a URL a client gave us, without becoming a proxy into our network.

- Only ``http`` and ``https``, no credentials in the URL.
- The address check happens where the socket is opened: the host name is resolved once,
  every resolved address is vetted, and the connection goes to the vetted address itself (TLS
  still verifies the certificate against the host name). A DNS answer that changes between a
  check and the connect (rebinding) therefore cannot reach a private address: there is no
  separate check to fool.
- Refused: loopback, private, link-local, CGNAT, multicast, unspecified, reserved and
  documentation ranges, also when written inside an IPv6 address (IPv4-mapped, IPv4-compatible,
  6to4, NAT64 well-known and local-use prefixes, Teredo).
- Redirects are followed by hand, each one through the same checks, up to a limit.
- One deadline covers the whole fetch: name resolution, connecting, TLS, the response head,
  the body and every redirect. Each socket operation gets only the time left, so an origin
  that drips its headers one byte at a time is cut off on time like one that drips its body.
- The body is streamed with a byte limit (:func:`iter_body`, also the model downloader's
  reader) counted on the bytes as they will be used, after at most one bounded layer of
  gzip/deflate; proxies from the environment are ignored (a proxy would connect on our
  behalf, unchecked).
- ``trusted`` host:port pairs (a setting) skip the address check, e.g. an internal store.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from alphacut.errors import AlphacutError, ImageTooLargeError
from alphacut.version import __version__

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TEREDO = ipaddress.ip_network("2001::/32")
_REDIRECTS = {301, 302, 303, 307, 308}
# The content codings inflated (one layer at most), and the zlib window bits for each.
_INFLATABLE = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
_INFLATE_BLOCK = 1 << 16  # the most one inflate call may produce: checked after each
# getaddrinfo cannot be given a timeout: it runs here and is waited for with the time left.
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="alphacut-resolve")


class UrlNotAllowedError(AlphacutError):
    status = 400
    code = "url_not_allowed"


class FetchError(AlphacutError):
    status = 400
    code = "fetch_failed"


class EncodingRefusedError(FetchError):
    """The answer is content-encoded in a way that is not read: stacked or unknown codings
    (or any coding, where the caller wants the bytes as served)."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IPAddress) -> bool:
    """Whether connecting to ``address`` reaches the public internet and nothing else."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id or address in _NAT64_LOCAL_USE or address in _TEREDO:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    return bool(
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
        and not address.is_private
    )


def _split_origin(origin: str) -> tuple[str, int]:
    host, _, port = origin.strip().rpartition(":")
    return host.strip("[]").lower(), int(port)


class _Deadline:
    def __init__(self, at: float) -> None:
        self.at = at

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        """Seconds an operation may take: ``timeout`` or less, never past the deadline."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the fetch's time is up")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _VettingBackend(httpcore.NetworkBackend):
    """Resolves, vets and connects in one step (see the module docstring), by the deadline."""

    def __init__(self, trusted: set[tuple[str, int]], deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._trusted = trusted
        self._deadline = deadline

    def _resolve(self, host: str, port: int) -> list[Any]:
        left = self._deadline.left(None, httpcore.ConnectTimeout)
        answer = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            return answer.result(timeout=left)
        except FutureTimeout:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took too long") from None
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"could not resolve the host {host!r}") from exc

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        trusted = (host.strip("[]").lower(), port) in self._trusted
        answers = self._resolve(host, port)
        refused = False
        last_error: Exception | None = None
        for _family, _type, _proto, _name, sockaddr in answers:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if not trusted and not is_public_address(address):
                refused = True
                continue
            left = self._deadline.left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    str(address), port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        if refused and last_error is None:
            raise UrlNotAllowedError(
                "the URL's host resolves to a private, loopback or otherwise internal address"
            )
        raise FetchError(f"could not connect to {host}: {last_error}")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _VettingTransport(httpx.HTTPTransport):
    def __init__(self, trusted: set[tuple[str, int]], deadline: _Deadline) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=4,
            network_backend=_VettingBackend(trusted, deadline),
        )


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    timeout: float
    max_redirects: int
    trusted_origins: tuple[str, ...] = ()


def check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlNotAllowedError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlNotAllowedError("only http and https URLs can be fetched")
    if not parsed.host:
        raise UrlNotAllowedError("the URL has no host")
    if parsed.userinfo:
        raise UrlNotAllowedError("URLs with credentials are not fetched")
    return parsed


def fetch(url: str, policy: FetchPolicy) -> bytes:
    """The body of ``url`` (after vetted redirects), at most ``policy.max_bytes`` long."""
    deadline = _Deadline(time.monotonic() + policy.timeout)
    trusted = {_split_origin(origin) for origin in policy.trusted_origins}
    # identity: images are compressed already; an origin that encodes anyway gets one layer
    # inflated under the byte limit (iter_body).
    headers = {
        "User-Agent": f"alphacut/{__version__}",
        "Accept": "image/*",
        "Accept-Encoding": "identity",
    }
    timeout = httpx.Timeout(policy.timeout)
    current = check_url(url)
    with httpx.Client(
        transport=_VettingTransport(trusted, deadline), timeout=timeout, follow_redirects=False
    ) as client:
        for _ in range(policy.max_redirects + 1):
            try:
                with client.stream("GET", current, headers=headers) as response:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = check_url(str(current.join(response.headers["location"])))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"the URL answered HTTP {response.status_code}")
                    return _read_body(response, policy.max_bytes, deadline)
            except httpx.TimeoutException as exc:
                raise FetchError("fetching the URL timed out") from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"could not fetch the URL: {exc}") from exc
        raise FetchError(f"more than {policy.max_redirects} redirects")


def _read_body(response: httpx.Response, max_bytes: int, deadline: _Deadline) -> bytes:
    body = bytearray()
    for block in iter_body(response, max_bytes, deadline_at=deadline.at):
        body += block
    return bytes(body)


def _too_large(max_bytes: int, declared: int | None = None) -> ImageTooLargeError:
    """``photo at the URL too large: 27.1 MB, the limit is 20 MB`` (``declared``: its
    Content-Length; without one, only that it passed the limit is known)."""
    return ImageTooLargeError.over_bytes(declared, max_bytes, "photo at the URL")


def iter_body(
    response: httpx.Response,
    max_bytes: int,
    *,
    deadline_at: float | None = None,
    inflate: bool = True,
) -> Iterator[bytes]:
    """The body of a streamed ``response`` in blocks, at most ``max_bytes`` in all, read raw
    off the connection (httpx's ``iter_bytes`` would inflate whatever the origin names, in
    one call per network chunk: a 10 KB ``gzip, gzip`` answer was 4 GiB in one call).

    Requests should ask for ``Accept-Encoding: identity``. An answer encoded all the same
    gets what imgproxy gives it (it asks for no compression, yet wraps a ``gzip`` answer in
    one gzip reader under its size limit): exactly one layer of ``gzip`` or ``deflate`` is
    inflated, each inflate call producing at most the room left under ``max_bytes`` (and
    64 KiB), with the limit and ``deadline_at`` (a ``time.monotonic()`` value) checked after
    every block. Stacked codings (``gzip, gzip``), unknown ones (``br``, ``zstd``...) and,
    where ``inflate`` is False, any coding at all are refused before a byte is read
    (:class:`EncodingRefusedError`). Over the limit: :class:`ImageTooLargeError`; past the
    deadline: :class:`FetchError`. The raw bytes are bounded too (``max_bytes`` plus
    deflate's worst-case growth), so trailing bytes after a compressed stream cannot run on.
    """
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
    ]
    codings = [coding for coding in codings if coding not in ("", "identity")]
    if codings and (not inflate or len(codings) > 1 or codings[0] not in _INFLATABLE):
        named = ", ".join(codings)[:80]
        accepted = "one layer of gzip or deflate" if inflate else "no content coding"
        raise EncodingRefusedError(
            f"the URL answered with Content-Encoding {named!r} although identity was asked "
            f"for; {accepted} is accepted"
        )
    coding = codings[0] if codings else None
    raw_limit = max_bytes if coding is None else max_bytes + max_bytes // 1024 + 1024
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > raw_limit:
        raise _too_large(max_bytes, int(declared) if coding is None else None)
    inflater = zlib.decompressobj(_INFLATABLE[coding]) if coding is not None else None
    raw = produced = 0
    for chunk in response.iter_raw():
        raw += len(chunk)
        if raw > raw_limit:
            raise _too_large(max_bytes)
        if inflater is None:
            produced += len(chunk)
            if produced > max_bytes:
                raise _too_large(max_bytes)
            _check_deadline(deadline_at)
            yield chunk
            continue
        data = chunk
        while data and not inflater.eof:  # bytes after the stream's end are dropped
            room = min(_INFLATE_BLOCK, max_bytes - produced + 1)
            try:
                block = inflater.decompress(data, room)
            except zlib.error:
                if coding != "deflate" or raw != len(chunk) or produced:
                    raise FetchError(f"the URL's {coding} answer is corrupt") from None
                # "deflate" is often sent raw, without its zlib wrapper (httpx and
                # browsers accept both): once, from the first byte.
                coding, inflater = "raw deflate", zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            data = inflater.unconsumed_tail
            produced += len(block)
            if produced > max_bytes:
                raise _too_large(max_bytes)
            _check_deadline(deadline_at)
            if block:
                yield block
    if inflater is not None and not inflater.eof:
        raise FetchError(f"the URL's {coding} answer is cut off")


def _check_deadline(deadline_at: float | None) -> None:
    if deadline_at is not None and time.monotonic() > deadline_at:
        raise FetchError("fetching the URL took too long")
