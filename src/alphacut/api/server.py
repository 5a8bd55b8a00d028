"""What runs around the app under uvicorn: the listening socket, a deadline for request heads,
access logs that do not print credentials, and the web page's key for one running server.

`alphacut serve` and the test servers (``tests/servers.py``) build their uvicorn
configuration here, so that the tests exercise the same protocol and limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import logging
import os
import resource
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from alphacut.config import Settings
from alphacut.errors import NotFoundError
from alphacut.logs import LogFormat
from alphacut.logs import RedactCredentials as RedactCredentials  # first defined here
from alphacut.logs import redact as redact
from alphacut.service.keys import KeyService

# Logging ---------------------------------------------------------------------------------------


class _WithRequestId:
    """uvicorn's text formats, the request id appended where a line has one, and
    credentials redacted in the message and any traceback (:func:`~alphacut.logs.redact`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text: str = super().formatMessage(record)  # type: ignore[misc]
        request_id = getattr(record, "request_id", None)
        return f"{text} [{request_id}]" if request_id else text

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))  # type: ignore[misc]


class TextFormatter(_WithRequestId, DefaultFormatter):
    """uvicorn's own text format (``INFO:     ...``), with the request id."""


class TextAccessFormatter(_WithRequestId, AccessFormatter):
    """uvicorn's access-log format, with the request id."""


def log_config(log_format: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's logging set-up in ``log_format`` (``ALPHACUT_LOG_FORMAT``): its access and
    error logs and alphacut's own lines through one formatter, each line with its request's
    id (:class:`~alphacut.logs.RequestFields`) and credentials redacted."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact_credentials": {"()": "alphacut.logs.RedactCredentials"},
        "request_fields": {"()": "alphacut.logs.RequestFields"},
    }
    if log_format == "json":
        json_formatter = {"()": "alphacut.logs.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": dict(json_formatter)}
        # Libraries' warnings (kombu, botocore...) as JSON lines too, not bare text.
        config["root"] = {"handlers": ["default"], "level": "WARNING"}
    else:
        config["formatters"]["default"]["()"] = f"{__name__}.TextFormatter"
        config["formatters"]["access"]["()"] = f"{__name__}.TextAccessFormatter"
    for handler in config["handlers"].values():
        handler["filters"] = ["request_fields", "redact_credentials"]
    # alphacut's own lines: start-up (each model's runtime and why, the memory budget) and
    # one line per request (alphacut.request).
    config["loggers"]["alphacut"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


# A deadline for request heads ------------------------------------------------------------------

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 38\r\nconnection: close\r\n\r\nthe request head took too long to send"
)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head.

    uvicorn bounds an idle keep-alive connection but not a request head in progress: a
    client sending one byte every few seconds holds its connection for ever, and enough of
    them exhaust the process's file descriptors. Here a timer starts whenever the
    connection waits for a request head (when it opens and when a response is complete)
    and stops when h11 has the whole head; when it fires, the connection is closed, with a
    408 if part of a head had come. nginx's ``client_header_timeout`` does the same, and
    imgproxy bounds its whole request to the same 10 s default (Go's ``ReadTimeout``; it
    takes no uploads). A body is not bounded in time here: a 20 MB upload on a slow link
    may take minutes (a reverse proxy's ``client_body_timeout`` bounds the pauses).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = (
            config.header_timeout_seconds
            if isinstance(config, ServerConfig)
            else Settings.model_fields["header_timeout_seconds"].default
        )
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting:
            self._stop_head_timer()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial, _closed = self.conn.trailing_data
        if partial:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with alphacut's protocol, logging and shutdown grace.

    A module-level class, so that it travels to worker processes (which are spawned, and so
    receive the configuration pickled)."""

    def __init__(self, app: Any, settings: Settings, **options: Any) -> None:
        self.header_timeout_seconds = settings.header_timeout_seconds
        super().__init__(
            app,
            http=HeaderTimeoutProtocol,
            log_config=log_config(settings.log_format),
            # uvicorn believes X-Forwarded-Proto/-For from loopback by default; alphacut only
            # when told that a proxy sets them (ALPHACUT_TRUST_FORWARDED_HEADERS).
            proxy_headers=settings.trust_forwarded_headers,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
            **options,
        )


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one, as Go's runtime does at start-up
    (so imgproxy's server): every connection holds a descriptor, and 1024, a common soft
    limit, is soon held by slow clients. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A socket bound and listening, before anything else happens at start-up: a second
    server on a port in use fails here, having touched nothing. Connections made while the
    app starts wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_until_stopped(
    config: ServerConfig, sock: socket.socket, on_stop: Callable[[], None]
) -> None:
    """Serve on ``sock`` (with ``config.workers`` processes) until SIGTERM or SIGINT, then call
    ``on_stop``. uvicorn re-raises the signal that stopped it once it has shut down, so that
    the process dies by that signal, past any ``finally``: ``on_stop`` runs first."""

    def stop_then_die(signum: int, _frame: FrameType | None) -> None:
        on_stop()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    previous = signal.signal(signal.SIGTERM, stop_then_die)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # SIGINT (Ctrl+C), re-raised by uvicorn: a normal stop
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        on_stop()


# The web page's key ----------------------------------------------------------------------------

PAGE_KEY_PREFIX = "web page"
_LEGACY_PAGE_KEY = "local web page"  # handed out over HTTP by earlier versions


class PageKey:
    """A key for the web page, for as long as one `alphacut serve` runs.

    Printed as ``http://host:port/#key=...`` on the operator's terminal, as Jupyter prints
    its token: the page reads the fragment, which browsers never send, so no request and no
    reverse proxy can obtain it. Each server has its own key (servers on several ports may
    share a data directory, so a start must not revoke another server's key), revoked when
    the server stops. A server that died without stopping cleanly is recognised by its lock
    file under ``DATA_DIR/run/``, which it held locked while it ran: the next start revokes
    its key. A key whose lock file is absent (another machine's data directory, with a
    shared database) is left alone.
    """

    def __init__(self, keys: KeyService, secret: str, key_id: str, lock: Path, fd: int) -> None:
        self.keys = keys
        self.secret = secret
        self.key_id = key_id
        self._lock = lock
        self._fd: int | None = fd

    @classmethod
    def start(cls, keys: KeyService, data_dir: Path, address: str) -> PageKey:
        run_dir = data_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        revoke_stale_page_keys(keys, run_dir)
        secret, key = keys.create(f"{PAGE_KEY_PREFIX} of alphacut serve on {address}"[:100], "test")
        # Locked under a temporary name, then renamed: another start's sweep never sees
        # this key's lock file unlocked.
        lock = run_dir / f"{key.id}.lock"
        pending = run_dir / f".{key.id}.lock.tmp"
        fd = os.open(pending, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        pending.rename(lock)
        return cls(keys, secret, key.id, lock, fd)

    def close(self) -> None:
        """Revoke the key (the server is stopping) and let go of the lock file."""
        if self._fd is None:
            return
        _revoke(self.keys, self.key_id)
        self._lock.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def revoke_stale_page_keys(keys: KeyService, run_dir: Path) -> None:
    for key in keys.all():
        if key.revoked_at is not None:
            continue
        if key.name == _LEGACY_PAGE_KEY:
            _revoke(keys, key.id)
        elif key.name.startswith(PAGE_KEY_PREFIX):
            lock = run_dir / f"{key.id}.lock"
            if lock.exists() and not _held(lock):
                _revoke(keys, key.id)
                lock.unlink(missing_ok=True)


def _held(lock: Path) -> bool:
    """Whether a running server holds this lock file."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock, if it was just taken
    return False


def _revoke(keys: KeyService, key_id: str) -> None:
    with contextlib.suppress(NotFoundError):  # revoked meanwhile (operator, another sweep)
        keys.revoke(key_id)
