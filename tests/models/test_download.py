"""Downloading a catalogue model over HTTP(S): verified, resumable, bounded, https-only.

The upstream release is stood in for by a real HTTP server on a loopback port (plain http is
allowed only there), serving a small ONNX model generated here: a good file, a wrong checksum,
a transfer cut off half way (resumed with ``Range``), a server that ignores ``Range`` or whose
file changed, 404 and 500, redirects, oversized answers, and no network at all."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import pytest

from alphacut.errors import ModelInstallError
from alphacut.models.download import NoNetworkError, Wanted, check_url, download
from alphacut.models.install import ModelInstaller
from alphacut.models.registry import Checksum, ModelSpec, Recipe, UrlSource
from alphacut.models.store import ModelStatus, ModelStore
from bombs import PeakRss, bomb_origin, stacked_gzip_zeros

# A tiny ONNX model, protobuf-encoded by hand (the onnx package is not a dependency) --------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _msg(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tiny_onnx(weights: int = 65_536, seed: int = 3) -> bytes:
    """An ONNX model ``y = Identity(x)``, x float32[1, 4], carrying ``weights`` random float32
    as an (unused) initializer so that the file is big enough to be cut in half."""
    tensor_type = _int(1, 1) + _msg(2, _msg(1, _int(1, 1)) + _msg(1, _int(1, 4)))  # float [1,4]
    value_type = _msg(1, tensor_type)
    raw = struct.pack(f"<{weights}f", *random.Random(seed).choices(range(-100, 100), k=weights))
    initializer = _int(1, weights) + _int(2, 1) + _msg(8, b"w") + _msg(9, raw)
    graph = (
        _msg(1, _msg(1, b"x") + _msg(2, b"y") + _msg(4, b"Identity"))
        + _msg(2, b"tiny")
        + _msg(5, initializer)
        + _msg(11, _msg(1, b"x") + _msg(2, value_type))
        + _msg(12, _msg(1, b"y") + _msg(2, value_type))
    )
    return _int(1, 8) + _msg(2, b"alphacut-tests") + _msg(7, graph) + _msg(8, _int(2, 13))


MODEL = tiny_onnx()
Algorithm = Literal["sha256", "md5"]
HALF = len(MODEL) // 2


def _wanted(data: bytes = MODEL, algorithm: Algorithm = "sha256", *, exact: bool = True) -> Wanted:
    return Wanted(Checksum(algorithm, hashlib.new(algorithm, data).hexdigest()), len(data), exact)


def _spec(
    name: str, url: str, data: bytes = MODEL, *, md5: bool = False, acceptance: bool = False
) -> ModelSpec:
    algorithm: Algorithm = "md5" if md5 else "sha256"
    return ModelSpec(
        name=name, summary="test", architecture="test", recipe=Recipe(size=320),
        filename=f"{name}.onnx", size=len(data), size_exact=not md5,
        checksum=Checksum(algorithm, hashlib.new(algorithm, data).hexdigest()),
        licence="CC BY-NC 4.0 (test)" if acceptance else "test", commercial=not acceptance,
        needs_acceptance=acceptance, source=UrlSource(url), upstream="test", quality="test",
        memory_mb=1, seconds=0.1,
    )  # fmt: skip


# The stand-in upstream ------------------------------------------------------------------


@dataclass
class Served:
    """What the origin answers for one path."""

    body: bytes = MODEL
    etag: str | None = '"v1"'
    status: int = 200
    location: str | None = None  # answer 302 to this URL
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    length: bool = True  # send Content-Length (else: the body ends when the connection closes)
    cut_at: list[int] = field(default_factory=list)  # per request: close after this many bytes


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int
    sent: int  # body bytes written to the socket


class Origin:
    """A plain HTTP server on a loopback port that records every request."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.seen: list[Seen] = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        served = self.files.get(handler.path)
        extra: dict[str, str] = {}
        if served is None:
            status, payload = 404, b"not found"
        elif served.location is not None:
            status, payload, extra = 302, b"", {"Location": served.location}
        elif served.status != 200:
            status, payload = served.status, b"failed"
        else:
            status, payload = 200, served.body
            match = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
            fresh = headers.get("if-range") in (None, served.etag)
            if match and fresh and not served.ignore_range:
                start, size = int(match.group(1)), len(served.body)
                if start >= size:
                    status, payload = 416, b""
                    extra = {"Content-Range": f"bytes */{size}"}
                else:
                    status, payload = 206, served.body[start:]
                    extra = {"Content-Range": f"bytes {start}-{size - 1}/{size}"}
            if served.etag:
                extra["ETag"] = served.etag
        cut = served.cut_at.pop(0) if served is not None and served.cut_at else None
        sent = payload if cut is None else payload[:cut]
        self.seen.append(Seen(handler.path, headers, status, len(sent)))
        try:
            handler.send_response(status)
            if served is None or served.length:
                handler.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(sent)
        except OSError:  # the client hung up (a refused download): nothing to do
            pass
        handler.close_connection = True


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback origin is reached directly, whatever proxy the environment names."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder / "tiny.onnx"


def _files(folder: Path) -> list[str]:
    """What lies in the model folder (the installer's lock file aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".install.lock")


def _part(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.download")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# 1. A good download ------------------------------------------------------------------


def test_good_download_is_verified_and_put_in_place(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served()
    counts: list[tuple[int, int | None]] = []
    download(origin.url("/m.onnx"), dest, _wanted(), transfer=lambda d, t: counts.append((d, t)))
    assert dest.read_bytes() == MODEL
    assert _files(dest.parent) == ["tiny.onnx"], "no partial file or sidecar is left"
    assert counts and counts[-1] == (len(MODEL), len(MODEL))
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)
    (request,) = origin.seen
    assert "range" not in request.headers
    assert request.headers["accept-encoding"] == "identity", "byte offsets must be the file's"


def test_installer_downloads_once_then_never_again(origin: Origin, tmp_path: Path) -> None:
    spec = _spec("tiny", origin.url("/release/tiny-v1.onnx"), md5=True)  # rembg's md5 + ~size
    origin.files["/release/tiny-v1.onnx"] = Served()
    store = ModelStore(tmp_path / "models", {"tiny": spec})
    transfers: list[tuple[str, int, int | None]] = []
    messages: list[str] = []
    installer = ModelInstaller(
        store, progress=messages.append, transfer=lambda *a: transfers.append(a)
    )
    (result,) = installer.install(["tiny"])
    assert (result.name, result.action) == ("tiny", "installed")
    assert store.path(spec).read_bytes() == MODEL
    assert store.status(spec) is ModelStatus.INSTALLED
    assert {name for name, _, _ in transfers} == {"tiny"}
    assert transfers[-1] == ("tiny", len(MODEL), len(MODEL))
    assert any("installed and verified" in m and "md5" in m for m in messages)
    assert _files(store.root) == ["tiny.onnx"]
    assert len(origin.seen) == 1

    (again,) = ModelInstaller(store).install(["tiny"])
    assert again.action == "present"
    assert len(origin.seen) == 1, "an installed, intact model is not fetched again"


def test_the_downloaded_file_is_a_working_onnx_model(origin: Origin, dest: Path) -> None:
    import onnxruntime as ort

    origin.files["/m.onnx"] = Served()
    download(origin.url("/m.onnx"), dest, _wanted())
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the unused initializer is reported at warning level
    session = ort.InferenceSession(str(dest), options, providers=["CPUExecutionProvider"])
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    (y,) = session.run(None, {"x": x})
    assert np.array_equal(y, x)


# 2. A wrong checksum -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_bad_checksum_leaves_nothing(origin: Origin, dest: Path, algorithm: Algorithm) -> None:
    origin.files["/m.onnx"] = Served(body=MODEL[:-1] + b"\0")  # same size, one byte off
    with pytest.raises(ModelInstallError) as caught:
        download(origin.url("/m.onnx"), dest, _wanted(algorithm=algorithm))
    message = caught.value.message
    assert "does not match the catalogue" in message and "deleted" in message
    assert hashlib.new(algorithm, MODEL).hexdigest() in message
    assert _files(dest.parent) == [], "no file under the final name, no partial, no sidecar"


def test_bad_size_with_a_matching_prefix_is_refused(origin: Origin, dest: Path) -> None:
    """The catalogue knows the exact size: a longer answer is refused by its length."""
    origin.files["/m.onnx"] = Served(body=MODEL + b"tail")
    with pytest.raises(ModelInstallError, match="more than this model's"):
        download(origin.url("/m.onnx"), dest, _wanted())
    assert _files(dest.parent) == []


# 3. Cut off, resumed, restarted ------------------------------------------------------


def _cut_once(origin: Origin, dest: Path, served: Served) -> None:
    """Download from an origin that closes the connection half way through the body."""
    served.cut_at.append(HALF)
    origin.files["/m.onnx"] = served
    with pytest.raises(ModelInstallError) as caught:
        download(origin.url("/m.onnx"), dest, _wanted())
    assert not isinstance(caught.value, NoNetworkError)
    assert "cut off" in caught.value.message and "again to resume" in caught.value.message
    assert not dest.exists()
    assert _part(dest).read_bytes() == MODEL[:HALF], "every byte received is kept"
    assert origin.seen[-1].sent == HALF


def test_cut_off_transfer_resumes_where_it_stopped(origin: Origin, dest: Path) -> None:
    _cut_once(origin, dest, Served())
    counts: list[int] = []
    download(origin.url("/m.onnx"), dest, _wanted(), transfer=lambda d, t: counts.append(d))
    _, second = origin.seen
    assert second.headers["range"] == f"bytes={HALF}-"
    assert second.headers["if-range"] == '"v1"'
    assert (second.status, second.sent) == (206, len(MODEL) - HALF), "only the rest was sent"
    assert dest.read_bytes() == MODEL
    assert _files(dest.parent) == ["tiny.onnx"]
    assert counts[0] > HALF and counts[-1] == len(MODEL)


def test_a_server_that_ignores_range_restarts_cleanly(origin: Origin, dest: Path) -> None:
    _cut_once(origin, dest, Served(ignore_range=True))
    download(origin.url("/m.onnx"), dest, _wanted())
    second = origin.seen[1]
    assert second.headers["range"] == f"bytes={HALF}-"
    assert (second.status, second.sent) == (200, len(MODEL))
    assert dest.read_bytes() == MODEL, "the whole answer replaced the partial, not appended"
    assert _files(dest.parent) == ["tiny.onnx"]


def test_a_changed_validator_restarts_cleanly(origin: Origin, dest: Path) -> None:
    served = Served()
    _cut_once(origin, dest, served)
    served.etag = '"v2"'  # re-uploaded: the server must not splice two versions
    download(origin.url("/m.onnx"), dest, _wanted())
    second = origin.seen[1]
    assert second.headers["if-range"] == '"v1"'
    assert (second.status, second.sent) == (200, len(MODEL))
    assert dest.read_bytes() == MODEL
    assert _files(dest.parent) == ["tiny.onnx"]


def test_a_partial_for_another_checksum_is_not_resumed(origin: Origin, dest: Path) -> None:
    _cut_once(origin, dest, Served())
    other = MODEL[:-4] + b"\1\2\3\4"  # the catalogue's entry changed since the first try
    origin.files["/m.onnx"] = Served(body=other)
    download(origin.url("/m.onnx"), dest, _wanted(other))
    assert "range" not in origin.seen[1].headers
    assert dest.read_bytes() == other


def test_a_complete_partial_is_checked_without_fetching_again(origin: Origin, dest: Path) -> None:
    """Cut off after the last byte arrived (before the rename): the server answers 416."""
    _cut_once(origin, dest, Served())
    _part(dest).write_bytes(MODEL)  # as if the rest had arrived before the crash
    download(origin.url("/m.onnx"), dest, _wanted())
    assert (origin.seen[1].status, origin.seen[1].sent) == (416, 0)
    assert dest.read_bytes() == MODEL
    assert _files(dest.parent) == ["tiny.onnx"]


# 4. HTTP errors -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_name_the_status_and_leave_nothing(
    origin: Origin, dest: Path, status: int
) -> None:
    if status != 404:  # a missing path answers 404
        origin.files["/m.onnx"] = Served(status=status)
    url = origin.url("/m.onnx")
    with pytest.raises(ModelInstallError) as caught:
        download(url, dest, _wanted())
    assert f"answered HTTP {status}" in caught.value.message and url in caught.value.message
    assert _files(dest.parent) == []


# 5. No network ------------------------------------------------------------------------


def _assert_no_network(message: str) -> None:
    assert "no internet access" in message
    assert "--from FILE" in message


def test_an_unresolvable_host_is_reported_as_no_network(dest: Path) -> None:
    url = "https://models.invalid/x.onnx"  # .invalid never resolves (RFC 6761)
    with pytest.raises(NoNetworkError) as caught:
        download(url, dest, _wanted())
    _assert_no_network(caught.value.message)
    assert "models.invalid" in caught.value.message and url in caught.value.message
    assert _files(dest.parent) == []


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_refused_connection_is_reported_as_no_network(dest: Path, scheme: str) -> None:
    with pytest.raises(NoNetworkError) as caught:
        download(f"{scheme}://127.0.0.1:{_free_port()}/x.onnx", dest, _wanted())
    _assert_no_network(caught.value.message)
    assert _files(dest.parent) == []


def test_a_failed_tls_handshake_is_not_called_no_network(origin: Origin, dest: Path) -> None:
    """A server that answers, but not with TLS we can trust (here: plain HTTP)."""
    url = origin.url("/m.onnx").replace("http://", "https://")
    with pytest.raises(ModelInstallError) as caught:
        download(url, dest, _wanted())
    assert not isinstance(caught.value, NoNetworkError)
    message = caught.value.message
    assert "secure connection to 127.0.0.1 failed" in message and "SSL" in message
    assert "SSL_CERT_FILE" in message and "--from FILE" in message
    assert _files(dest.parent) == []


def test_the_installer_reports_no_network(tmp_path: Path) -> None:
    spec = _spec("tiny", "https://models.invalid/tiny.onnx")
    store = ModelStore(tmp_path / "models", {"tiny": spec})
    with pytest.raises(NoNetworkError) as caught:
        ModelInstaller(store).install(["tiny"])
    _assert_no_network(caught.value.message)
    assert store.status(spec) is ModelStatus.MISSING
    assert _files(store.root) == []


# 6. Policy: https only, bounded --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x.onnx", "http://10.0.0.1/x.onnx", "http://models.invalid/x.onnx",
        "ftp://example.com/x.onnx", "file:///etc/passwd", "https:///x.onnx", "x.onnx",
    ],
)  # fmt: skip
def test_anything_but_https_is_refused_before_connecting(dest: Path, url: str) -> None:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=MODEL)

    refused = pytest.raises(ModelInstallError, match="only https:// URLs are fetched")
    with httpx.Client(transport=httpx.MockTransport(handle)) as client, refused:
        download(url, dest, _wanted(), client=client)
    assert requests == []
    assert _files(dest.parent) == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://127.8.0.1/x", "http://localhost:8/x", "http://[::1]/x"]
)
def test_plain_http_is_allowed_from_loopback(url: str) -> None:
    check_url(url)  # no error


def test_a_redirect_to_plain_http_is_refused(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served(location="http://models.invalid/x.onnx")
    with pytest.raises(ModelInstallError) as caught:
        download(origin.url("/m.onnx"), dest, _wanted())
    assert not isinstance(caught.value, NoNetworkError), "refused before any connection"
    assert "refusing to download http://models.invalid/x.onnx" in caught.value.message
    assert _files(dest.parent) == []


def test_a_redirect_within_the_policy_is_followed(origin: Origin, dest: Path) -> None:
    origin.files["/latest.onnx"] = Served(location=origin.url("/v1/m.onnx"))
    origin.files["/v1/m.onnx"] = Served()
    download(origin.url("/latest.onnx"), dest, _wanted())
    assert [s.path for s in origin.seen] == ["/latest.onnx", "/v1/m.onnx"]
    assert dest.read_bytes() == MODEL


def test_a_redirect_loop_is_cut_short(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served(location=origin.url("/m.onnx"))
    with pytest.raises(ModelInstallError, match="too many redirects"):
        download(origin.url("/m.onnx"), dest, _wanted())
    assert len(origin.seen) == 11  # the request and 10 redirects
    assert _files(dest.parent) == []


def test_more_bytes_than_the_bound_are_refused_by_length(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served()
    with pytest.raises(ModelInstallError) as caught:
        download(origin.url("/m.onnx"), dest, _wanted(MODEL[:1000]))
    assert f"offers {len(MODEL):,} bytes, more than this model's 1,000" in caught.value.message
    assert _files(dest.parent) == []


def test_more_bytes_than_the_bound_are_refused_while_streaming(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served(length=False)  # no Content-Length: ends at close
    with pytest.raises(ModelInstallError) as caught:
        download(origin.url("/m.onnx"), dest, _wanted(MODEL[:1000]))
    assert "sent more than this model's 1,000 bytes" in caught.value.message
    assert _files(dest.parent) == [], "the refused bytes are not kept for a resume"


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip", "br"])
def test_a_content_encoded_answer_is_refused_not_inflated(dest: Path, encoding: str) -> None:
    """Issue 22, items 1 and 9: a `gzip, gzip` bomb (a few KB that inflate to 1 GiB) cost
    the downloader a MemoryError; now no encoded answer is inflated (pip's rule: identity
    asked for, the checksum is over the bytes served), with the URL fetcher's reader."""
    body = stacked_gzip_zeros(1 << 30) if encoding == "gzip, gzip" else gzip.compress(MODEL)
    asked: list[str] = []
    with bomb_origin({"/m.onnx": (encoding, body)}, asked) as host:
        started = time.monotonic()
        with PeakRss() as rss, pytest.raises(ModelInstallError) as caught:
            download(f"http://{host}/m.onnx", dest, _wanted(exact=False))
    assert "Content-Encoding" in caught.value.message and encoding in caught.value.message
    assert rss.growth_mb < 200, rss.growth_mb
    assert time.monotonic() - started < 10
    assert asked == ["identity"]
    assert _files(dest.parent) == [], "nothing kept: those are not the file's bytes"


def test_an_approximate_size_bounds_at_twice_plus_16_mb() -> None:
    assert _wanted(exact=False).most == 2 * len(MODEL) + (16 << 20)
    assert _wanted(exact=True).most == len(MODEL)


def test_a_body_without_length_is_still_verified(origin: Origin, dest: Path) -> None:
    origin.files["/m.onnx"] = Served(length=False, etag=None)
    download(origin.url("/m.onnx"), dest, _wanted(exact=False))
    assert dest.read_bytes() == MODEL


# 7. --from FILE / --from DIR ------------------------------------------------------------


@pytest.fixture
def url_store(origin: Origin, tmp_path: Path) -> ModelStore:
    """A catalogue of one downloadable model whose upstream (the origin) serves nothing."""
    spec = _spec("tiny", origin.url("/release/Tiny-epoch_9.onnx"))
    return ModelStore(tmp_path / "models", {"tiny": spec})


def test_from_file_installs_a_verified_copy(
    url_store: ModelStore, origin: Origin, tmp_path: Path
) -> None:
    fetched = tmp_path / "Downloads" / "anything.bin"
    fetched.parent.mkdir()
    fetched.write_bytes(MODEL)
    (result,) = ModelInstaller(url_store, from_path=fetched).install(["tiny"])
    assert result.action == "installed"
    assert url_store.path(url_store.spec("tiny")).read_bytes() == MODEL
    assert fetched.read_bytes() == MODEL, "the user's file is copied, not moved"
    assert origin.seen == [], "no network"
    assert _files(url_store.root) == ["tiny.onnx"]


def test_from_a_wrong_file_installs_nothing(
    url_store: ModelStore, origin: Origin, tmp_path: Path
) -> None:
    fetched = tmp_path / "tiny.onnx"
    fetched.write_bytes(MODEL[: len(MODEL) // 3])  # a truncated download
    with pytest.raises(ModelInstallError) as caught:
        ModelInstaller(url_store, from_path=fetched).install(["tiny"])
    assert "expected" in caught.value.message and "sha256" in caught.value.message
    assert url_store.status(url_store.spec("tiny")) is ModelStatus.MISSING
    assert _files(url_store.root) == [] and origin.seen == []


def test_from_file_needs_exactly_one_model(url_store: ModelStore, tmp_path: Path) -> None:
    fetched = tmp_path / "tiny.onnx"
    fetched.write_bytes(MODEL)
    with pytest.raises(ModelInstallError, match="installs one model"):
        ModelInstaller(url_store, from_path=fetched).install([])


@pytest.mark.parametrize("name", ["Tiny-epoch_9.onnx", "tiny.onnx"])
def test_from_dir_finds_the_upstream_or_the_installed_name(
    url_store: ModelStore, origin: Origin, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    (folder / "unrelated.onnx").write_bytes(b"other")
    (folder / name).write_bytes(MODEL)
    ModelInstaller(url_store, from_path=folder).install(["tiny"])
    assert url_store.path(url_store.spec("tiny")).read_bytes() == MODEL
    assert origin.seen == []


def test_from_dir_without_the_file_says_what_it_looked_for(
    url_store: ModelStore, origin: Origin, tmp_path: Path
) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    (folder / "Tiny-epoch_9.onnx").write_bytes(MODEL[:100])  # there, but not the model
    with pytest.raises(ModelInstallError) as caught:
        ModelInstaller(url_store, from_path=folder).install(["tiny"])
    message = caught.value.message
    assert "no file named tiny.onnx or Tiny-epoch_9.onnx with the model's checksum" in message
    assert str(folder) in message
    assert "Tiny-epoch_9.onnx there does not match sha256" in message
    assert _files(url_store.root) == [] and origin.seen == []


# 8. Licence acceptance ----------------------------------------------------------------


def test_a_licence_not_accepted_installs_nothing(origin: Origin, tmp_path: Path) -> None:
    spec = _spec("nc", origin.url("/nc.onnx"), acceptance=True)
    origin.files["/nc.onnx"] = Served()
    store = ModelStore(tmp_path / "models", {"nc": spec})
    asked: list[ModelSpec] = []

    def refuse(spec: ModelSpec) -> bool:
        asked.append(spec)
        return False

    with pytest.raises(ModelInstallError) as caught:
        ModelInstaller(store, accept=refuse).install(["nc"])
    assert asked == [spec]
    assert "--accept-licence" in caught.value.message and "CC BY-NC" in caught.value.message
    assert origin.seen == [] and not store.root.exists()

    with pytest.raises(ModelInstallError, match="--accept-licence"):
        ModelInstaller(store).install(["nc"])  # the default is to refuse


def test_an_accepted_licence_installs(origin: Origin, tmp_path: Path) -> None:
    spec = _spec("nc", origin.url("/nc.onnx"), acceptance=True)
    origin.files["/nc.onnx"] = Served()
    store = ModelStore(tmp_path / "models", {"nc": spec})
    asked: list[ModelSpec] = []

    def accept(spec: ModelSpec) -> bool:
        asked.append(spec)
        return True

    ModelInstaller(store, accept=accept).install(["nc"])
    assert asked == [spec]
    assert store.status(spec) is ModelStatus.INSTALLED

    def fail(spec: ModelSpec) -> bool:
        raise AssertionError("an installed model is not asked about again")

    (result,) = ModelInstaller(store, accept=fail).install(["nc"])
    assert result.action == "present"


def test_a_special_file_as_from_is_refused_not_downloaded_around(
    url_store: ModelStore, origin: Origin, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ModelInstallError, match="neither a regular file nor a folder"):
        ModelInstaller(url_store, from_path=fifo).install(["tiny"])
    assert origin.seen == [], "no download in its place"


def test_a_redirect_never_leads_to_plain_http_from_an_https_url() -> None:
    check_url("http://127.0.0.1:9/m.onnx")  # asked for: a mirror on this machine
    with pytest.raises(ModelInstallError, match="only https"):
        check_url("http://127.0.0.1:9/m.onnx", loopback_http=False)  # an https URL's redirect


def test_an_unusable_model_path_is_corrupt_not_an_error(url_store: ModelStore) -> None:
    spec = url_store.spec("tiny")
    url_store.root.mkdir(parents=True, exist_ok=True)
    url_store.path(spec).mkdir()  # a folder where the file should be
    assert url_store.status(spec) is ModelStatus.CORRUPT
    assert spec not in url_store.installed()
