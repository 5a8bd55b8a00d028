"""Download one model file over HTTPS: resumable, bounded, verified before it is put in place.

- The bytes go to ``.<file>.download`` in the model directory, with a small sidecar naming the
  URL, the expected checksum and the server's validator (ETag or Last-Modified). A run that was
  cut off resumes from where it stopped (``Range`` + ``If-Range``); when the server cannot
  resume, or the file changed, or the sidecar does not match, it restarts cleanly.
- The digest is computed while the bytes arrive (and over the kept part on a resume). Only a
  file with the expected checksum (and size, where the catalogue knows it exactly) is fsynced
  and renamed to its final name; a mismatch deletes the download and says so.
- Only ``https://`` is fetched, on every redirect too; plain ``http://`` only from a loopback
  address (a local mirror, the tests' server). Proxies come from the usual environment
  variables (``HTTPS_PROXY``...), certificates from the system/certifi bundle or
  ``SSL_CERT_FILE``.
- The largest transfer is bounded: the exact size where known, else twice the catalogue's
  figure; and the disk must have room for the rest before a byte is written.
- The bytes are read raw (``alphacut.fetch.iter_body``, the URL fetcher's reader) after
  asking for ``identity``: an answer that is content-encoded all the same is refused, not
  inflated, as pip treats its downloads (``identity``, never decoded): the checksum and the
  resume offsets are the file's own bytes, and a ``gzip, gzip`` answer cannot inflate.
- No network is reported as such, with the way to install from a file fetched elsewhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from alphacut.errors import ImageTooLargeError, ModelInstallError
from alphacut.fetch import EncodingRefusedError, iter_body
from alphacut.files import fsync_dir
from alphacut.models.registry import Checksum

_BLOCK = 1 << 20
_CONNECT_TIMEOUT_S = 20.0
_READ_TIMEOUT_S = 60.0  # the longest silence mid-transfer before it counts as cut off
_MAX_REDIRECTS = 10
_ROOM_MARGIN = 64 << 20  # free space left on the disk after the download

Transfer = Callable[[int, int | None], None]  # bytes done, bytes in all (None: unknown)


@dataclass(frozen=True)
class Wanted:
    """What the file must be: its checksum, and its size (exact, or a rough figure)."""

    checksum: Checksum
    size: int
    size_exact: bool

    @property
    def most(self) -> int:
        return self.size if self.size_exact else 2 * self.size + (16 << 20)


class NoNetworkError(ModelInstallError):
    code = "no_network"


class _TooLargeError(ModelInstallError):
    """The server offers more bytes than the model can have."""


def check_url(url: str, *, loopback_http: bool = True) -> None:
    """Refuse anything but https (plain http only from a loopback host, and only where
    ``loopback_http``: the URL asked for, never a redirect's)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and loopback_http and _loopback(host):
        return
    raise ModelInstallError(f"refusing to download {url}: only https:// URLs are fetched")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def download(
    url: str,
    dest: Path,
    wanted: Wanted,
    *,
    transfer: Transfer | None = None,
    client: httpx.Client | None = None,
    name: str = "NAME",
) -> None:
    """Fetch ``url`` into ``dest`` (atomically, verified). Resumes a kept partial download.
    ``name``: the model's, for the messages that say how to install it another way."""
    check_url(url)
    # Plain http is for a mirror on this machine: its redirects may stay on it; an https
    # upstream's redirects never lead to plain http (nor so to a local service).
    local_mirror = urlsplit(url).scheme == "http"
    part = dest.with_name(f".{dest.name}.download")
    meta_path = dest.with_name(f".{dest.name}.download.json")
    meta = _read_meta(meta_path)
    if meta.get("url") != url or meta.get("checksum") != wanted.checksum.describe():
        part.unlink(missing_ok=True)
        meta = {}
    own = client is None
    http = client or httpx.Client(
        follow_redirects=True,
        max_redirects=_MAX_REDIRECTS,
        timeout=httpx.Timeout(_READ_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S),
        headers={"User-Agent": "alphacut-models"},
        event_hooks={
            "request": [lambda request: check_url(str(request.url), loopback_http=local_mirror)]
        },
    )
    try:
        _fetch(http, url, part, meta_path, meta, wanted, transfer, name)
    except _TooLargeError:  # those bytes are not the model's: nothing to resume
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        raise
    finally:
        if own:
            http.close()
    digest = _digest(part, wanted.checksum.algorithm)
    size = part.stat().st_size
    if digest != wanted.checksum.hexdigest or (wanted.size_exact and size != wanted.size):
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        raise ModelInstallError(
            f"{dest.name}: the download ({size:,} bytes, {wanted.checksum.algorithm} {digest}) "
            f"does not match the catalogue ({wanted.checksum.describe()}); it was deleted. "
            "Run the command again; if it fails the same way, the upstream file has changed"
        )
    with part.open("rb") as data:  # a kept partial may come from a run cut off before its fsync
        os.fsync(data.fileno())
    part.replace(dest)
    meta_path.unlink(missing_ok=True)
    fsync_dir(dest.parent)


def _fetch(
    http: httpx.Client,
    url: str,
    part: Path,
    meta_path: Path,
    meta: dict[str, str],
    wanted: Wanted,
    transfer: Transfer | None,
    name: str,
) -> None:
    have = part.stat().st_size if part.exists() else 0
    # The file's own bytes: a compressed answer's offsets and length are not the file's.
    headers = {"Accept-Encoding": "identity"}
    validator = meta.get("validator", "")
    if have and validator and validator.isascii() and validator.isprintable():
        headers |= {"Range": f"bytes={have}-", "If-Range": validator}
    host = urlsplit(url).hostname
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and have:  # nothing left to send: check what we have
                return
            if response.status_code not in (200, 206):
                raise ModelInstallError(
                    f"{url} answered HTTP {response.status_code} {response.reason_phrase}"
                )
            resuming = response.status_code == 206 and _starts_at(response, have)
            if not resuming:
                have = 0
            total = _total(response, have)
            if total is not None and total > wanted.most:
                raise _TooLargeError(
                    f"{url} offers {total:,} bytes, more than this model's "
                    f"{wanted.most:,}: refusing it"
                )
            check_room(part.parent, (total or wanted.size) - have)
            served = response.headers.get("etag") or response.headers.get("last-modified")
            if served is not None and not (served.isascii() and served.isprintable()):
                served = None  # not sendable back in If-Range: resume without one
            _write_meta(meta_path, url, wanted, served)
            _receive(response, part, have, total, wanted, transfer)
    except httpx.ConnectError as exc:
        if _tls_failed(exc):  # reached a server, but not one we can trust: not "no network"
            raise ModelInstallError(
                f"the secure connection to {host} failed ({exc}). Behind a proxy that "
                "inspects HTTPS, point SSL_CERT_FILE at its CA certificate; or download "
                f"{url} elsewhere and install it with `alphacut models install {name} --from FILE`"
            ) from exc
        raise NoNetworkError(_no_network(url, host, exc, name)) from exc
    except httpx.ConnectTimeout as exc:
        raise NoNetworkError(_no_network(url, host, exc, name)) from exc
    except httpx.TooManyRedirects as exc:
        raise ModelInstallError(f"{url}: too many redirects") from exc
    except (httpx.TransportError, httpx.StreamError) as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise ModelInstallError(
            f"the download of {url} was cut off after {kept / 1e6:,.1f} MB ({exc or type(exc)}); "
            "run the same command again to resume it"
        ) from exc


def _receive(
    response: httpx.Response,
    part: Path,
    have: int,
    total: int | None,
    wanted: Wanted,
    transfer: Transfer | None,
) -> None:
    done = have
    last = 0.0
    with part.open("r+b" if have else "wb") as out:
        out.truncate(have)
        out.seek(have)
        try:
            # As they arrive (a cut-off keeps every byte), never more than the model's.
            for block in iter_body(response, wanted.most - have, inflate=False):
                done += len(block)
                out.write(block)
                now = time.monotonic()
                if transfer is not None and now - last > 0.2:
                    transfer(done, total)
                    last = now
        except ImageTooLargeError as exc:
            raise _TooLargeError(
                f"{response.url} sent more than this model's {wanted.most:,} bytes"
            ) from exc
        except EncodingRefusedError as exc:
            encoding = response.headers.get("content-encoding", "")[:80]
            raise _TooLargeError(  # not the file's bytes: nothing to keep or resume
                f"{response.url} answered with Content-Encoding {encoding!r} although "
                "identity was asked for: the file's own bytes are needed to verify it; "
                "refusing it"
            ) from exc
        out.flush()
        os.fsync(out.fileno())
    if transfer is not None:
        transfer(done, total)
    if total is not None and done < total:
        raise httpx.ReadError(f"{done:,} of {total:,} bytes")


def _starts_at(response: httpx.Response, have: int) -> bool:
    content_range = response.headers.get("content-range", "")
    try:
        return int(content_range.split()[1].split("-")[0]) == have
    except (IndexError, ValueError):
        return False


def _total(response: httpx.Response, have: int) -> int | None:
    """The whole file's size, if the server says it."""
    if response.status_code == 206:
        size = response.headers.get("content-range", "").rpartition("/")[2]
        return int(size) if size.isdigit() else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def check_room(folder: Path, needed: int) -> None:
    """Refuse to write ``needed`` bytes in ``folder`` unless the disk keeps a margin after."""
    free = shutil.disk_usage(folder).free
    if needed + _ROOM_MARGIN > free:
        raise ModelInstallError(
            f"not enough disk space in {folder}: the download needs {needed / 1e6:,.0f} MB "
            f"and {free / 1e6:,.0f} MB are free"
        )


def _no_network(url: str, host: str | None, exc: Exception, name: str) -> str:
    return (
        f"cannot reach {host} ({exc or type(exc).__name__}): this machine seems to have no "
        f"internet access. On a machine that has, download {url} and install it here with "
        f"`alphacut models install {name} --from FILE` (the checksum is verified the same way)"
    )


def _tls_failed(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_meta(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_meta(path: Path, url: str, wanted: Wanted, validator: str | None) -> None:
    meta = {"url": url, "checksum": wanted.checksum.describe()}
    if validator:
        meta["validator"] = validator
    path.write_text(json.dumps(meta))
