"""Logs that one id ties together: the request id, the context every log line of a request
carries, and the two formats (``ALPHACUT_LOG_FORMAT``: ``text`` or ``json``).

A request's id comes from its ``X-Request-ID`` header where that is well formed
(:func:`request_id_from`), else it is made here; the HTTP service binds it, with the caller's
key id once authenticated, in a :class:`RequestContext` held by a context variable, so that
every line logged while the request runs (on the event loop, in the threads FastAPI and the
work queues run it on) carries it without being handed it. A fleet's worker binds the id the
job carries (:mod:`alphacut.service.inference.wire`) for the time it runs the job: one id
finds a request's lines in the replica's log and in the worker's.

Nothing secret reaches a line: a key's id, never the key; published and result tokens
shortened and passwords in URLs hidden (:func:`redact`), in the message and in any traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

LogFormat = Literal["text", "json"]

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller may name its request with: letters, digits, dot, underscore and hyphen, 1 to
# 128 of them (a UUID, a ULID, a trace id, nginx's $request_id all fit). Anything else (spaces,
# quotes, newlines, JSON or ANSI escapes, a long value) is replaced with an id made here, never
# repeated, so that no caller can forge or break a log line through it.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_STAGES = 32  # distinct stage names summed per request: a bound on what one line carries


def valid_request_id(value: object) -> bool:
    """Whether ``value`` is a request id alphacut accepts from outside (a header, a job)."""
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh request id: a UUID, the form Ximilar's ``request_id`` takes."""
    return str(uuid.uuid4())


def request_id_from(header: str | None) -> str:
    """The caller's id where it is well formed, else a new one."""
    return header if header is not None and valid_request_id(header) else new_request_id()


# The request's context ---------------------------------------------------------------------


@dataclass
class RequestContext:
    """What every log line of one request says about it. Mutable, and shared (not copied)
    with the threads the request's work runs on: a key admitted in a dependency's thread or
    stage times measured in a work queue's are seen by the line that ends the request."""

    request_id: str
    key_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Where the key's id is found once the request has been authenticated (the HTTP
    # service: the request's state), for lines logged before :func:`bind_key` or without it.
    key_from: Callable[[], str | None] | None = field(default=None, repr=False)
    # A batch's records add their stages from several threads at once.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def key(self) -> str | None:
        if self.key_id is None and self.key_from is not None:
            self.key_id = self.key_from()
        return self.key_id

    def add_timings(self, timings: Mapping[str, float]) -> None:
        """Add each stage's seconds to the request's (a batch sums its records')."""
        with self._lock:
            for stage, seconds in timings.items():
                if stage in self.timings or len(self.timings) < MAX_STAGES:
                    self.timings[stage] = self.timings.get(stage, 0.0) + float(seconds)


_current: ContextVar[RequestContext | None] = ContextVar("alphacut_request", default=None)


def current() -> RequestContext | None:
    """The context of the request (or fleet job) this code runs for, if any."""
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


@contextlib.contextmanager
def bound(
    request_id: str,
    key_id: str | None = None,
    key_from: Callable[[], str | None] | None = None,
) -> Iterator[RequestContext]:
    """Log lines made within carry ``request_id`` and the key's id: ``key_id``, or what
    ``key_from`` finds once there is one."""
    context = RequestContext(request_id, key_id, key_from=key_from)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind_key(key_id: str) -> None:
    """The request's caller is the key ``key_id`` (its id, never its secret)."""
    context = _current.get()
    if context is not None:
        context.key_id = key_id


def add_timings(timings: Mapping[str, float]) -> None:
    """Count a piece of work's stage times (decode, model, encode...) to the request."""
    context = _current.get()
    if context is not None:
        context.add_timings(timings)


# Redaction ---------------------------------------------------------------------------------

_CREDENTIAL_PATH = re.compile(r"(/(?:p|results)/)([^/?#\s\"]{4})[^/?#\s\"]*")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s\"']*@", re.IGNORECASE)


def redact(text: str) -> str:
    """``/p/<token>`` and ``/results/<token>`` shortened to their first four characters
    (those tokens are the only credential a published image or an output file needs), and
    the user and password of a URL (a broker's, a database's) hidden."""
    return _URL_PASSWORD.sub("\\1***@", _CREDENTIAL_PATH.sub("\\1\\2…", text))


class RedactCredentials(logging.Filter):
    """Shortens tokens in the arguments of access-log records (the request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


# Formats -----------------------------------------------------------------------------------


class RequestFields(logging.Filter):
    """Puts the request's id and key id on each record as it is emitted (in the thread and
    context that logged it); a record made with its own (``extra=``) keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id if context is not None else None
        if not hasattr(record, "key_id"):
            record.key_id = context.key() if context is not None else None
        return True


# Fields a record may carry (``extra=``) that a JSON line shows, in this order.
EXTRA_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "stages_ms",
    "client",
    "path",
    "job_id",
    "model",
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id`` and ``key_id`` (null outside a request), then the fields of
    :data:`EXTRA_FIELDS` a record has, and ``exception`` with its traceback. uvicorn's access
    lines become fields (``client``, ``method``, ``path``, ``status``) as well."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "key_id": getattr(record, "key_id", None),
        }
        access = record.name == "uvicorn.access" and isinstance(record.args, tuple)
        if access and len(record.args) == 5:  # type: ignore[arg-type]
            # uvicorn's: client, method, path, HTTP version, status
            client, method, path, _version, status = record.args  # type: ignore[misc]
            line |= {"client": client, "method": method, "path": redact(str(path))}
            line["status"] = status
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The plain format: time, level, logger, the request id in brackets where there is
    one, and the message (credentials redacted)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request = f" [{request_id}]" if request_id else ""
        return redact(super().format(record))


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: LogFormat, level: int = logging.INFO) -> None:
    """The root logger of a process that is not uvicorn's (``alphacut worker``): one stderr
    handler in ``log_format``, with the request's fields and redaction."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestFields())
    handler.addFilter(RedactCredentials())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
