"""Request-size limits enforced while the body streams in, and per-key rate limits."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api.errors import error_body_for, status_for
from alphacut.errors import ImageTooLargeError, InvalidInputError, RateLimitedError, size_text
from alphacut.service import metrics

log = logging.getLogger(__name__)


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or kind.endswith("+json")


# The JSON scan's lookup tables: what each byte does to the nesting depth (outside strings),
# and whether it starts a value (a comma, or a container's opening).
_DEPTH = np.zeros(256, np.int8)
_DEPTH[list(b"[{")] = 1
_DEPTH[list(b"]}")] = -1
_STRUCTURE = np.zeros(256, bool)
_STRUCTURE[list(b"[]{},")] = True
_STARTS_VALUE = np.zeros(256, bool)
_STARTS_VALUE[list(b"[{,")] = True
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_SCAN_CHUNK = 1 << 20


def json_shape(body: bytes, max_depth: int, max_values: int) -> tuple[int, int]:
    """The nesting depth and the number of values (commas and openings outside strings) of
    ``body``, read as UTF-8 JSON; counting stops once either is over its maximum.

    Exact up to the first point where ``json.loads`` would fail, which is all it builds. It
    runs with numpy over 1 MiB chunks, so it holds the GIL for milliseconds at a time (a
    regex over a 60 MB body of escapes or small strings holds it for seconds, and with it the
    event loop): a quote is a string's end unless an odd run of backslashes precedes it;
    UTF-8 continuation bytes are never ASCII."""
    data = np.frombuffer(body, np.uint8)
    in_string = False
    backslashes = 0  # the run of backslashes that ended the previous chunk
    depth = deepest = values = 0
    for start in range(0, len(data), _SCAN_CHUNK):
        chunk = data[start : start + _SCAN_CHUNK]
        n = len(chunk)
        positions = np.arange(n, dtype=np.int32)
        # The last byte at or before each position that is not a backslash (-1: none).
        last_other = np.maximum.accumulate(np.where(chunk == _BACKSLASH, -1, positions))
        quotes = np.flatnonzero(chunk == _QUOTE)
        before = np.where(quotes > 0, last_other[np.maximum(quotes - 1, 0)], -1)
        run = np.where(before < 0, quotes + backslashes, quotes - 1 - before)
        ends = quotes[run % 2 == 0]  # the quotes that open or close a string
        backslashes = backslashes + n if last_other[-1] < 0 else n - 1 - int(last_other[-1])
        structure = np.flatnonzero(_STRUCTURE[chunk])
        outside = (np.searchsorted(ends, structure) + in_string) % 2 == 0
        kinds = chunk[structure[outside]]
        in_string ^= len(ends) % 2 == 1
        values += int(np.count_nonzero(_STARTS_VALUE[kinds]))
        if len(kinds):
            levels = np.cumsum(_DEPTH[kinds], dtype=np.int64) + depth
            deepest = max(deepest, int(levels.max()))
            depth = int(levels[-1])
        if values > max_values or deepest > max_depth:
            break
    return deepest, values


def check_json_shape(body: bytes, max_depth: int, max_values: int) -> None:
    """400 when ``body`` nests deeper than ``max_depth`` or holds over ``max_values`` values."""
    depth, values = json_shape(body, max_depth, max_values)
    if values > max_values:
        raise InvalidInputError(f"the JSON body holds more than {max_values:,} values")
    if depth > max_depth:
        raise InvalidInputError(f"the JSON body is nested deeper than {max_depth} levels")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _no_constant(text: str) -> None:
    raise ValueError(text)


def parse_json(body: bytes, max_depth: int, max_values: int) -> Any:
    """``body`` parsed, refused (400) before ``json.loads`` sees it when it nests deeper than
    ``max_depth`` or holds more than ``max_values`` values: json.loads builds every value at
    once (21 million empty lists from 63 MB: 1.6 GB, 7 s holding the GIL) and recurses once
    per level. Numbers must be finite: NaN, Infinity and a float too large for a double are
    no JSON (RFC 8259) and no valid parameter."""
    check_json_shape(body, max_depth, max_values)
    try:  # UTF-8 only (RFC 8259), which the byte scan relies on
        return json.loads(body.decode(), parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidInputError(
            "the request body is not valid UTF-8 JSON (or holds a non-finite number)"
        ) from None


@dataclass(frozen=True)
class BodyLimit:
    """A route's body limit, and the photo limit it is made from: what a refusal says is the
    photo's size against the photo's limit (``photo too large: 27.1 MB, the limit is 20 MB``),
    not the body's bytes against a limit padded for the request's framing."""

    max_bytes: int
    photo_bytes: int | None = None  # None: a body that is no photo (the images API's JSON)
    base64: bool = False  # the photo comes as base64 text, 4/3 of its bytes
    photos: int = 1  # photos the body may hold (remove.bg: a background too; Ximilar: a batch)

    def refusal(self, received: int | None) -> ImageTooLargeError:
        """The error for a body of ``received`` bytes (None: cut off while it streamed in,
        its size unknown)."""
        if self.photo_bytes is None:
            return ImageTooLargeError.over_bytes(received, self.max_bytes, "request body")
        if self.photos > 1:
            refused = ImageTooLargeError.over_bytes(received, self.max_bytes, "request")
            each = size_text(self.photo_bytes)
            return ImageTooLargeError(f"{refused.message}; each photo may be up to {each}")
        if not self.base64:  # the body's size: the framing around a file is a few hundred bytes
            return ImageTooLargeError.over_bytes(received, self.photo_bytes)
        if received is None:
            return ImageTooLargeError.over_bytes(None, self.photo_bytes)
        note = f" ({size_text(received)} as base64)"
        return ImageTooLargeError.over_bytes(received * 3 // 4, self.photo_bytes, note=note)


class BodyLimitMiddleware:
    """413 as soon as a body is known to exceed its route's limit: from Content-Length before
    anything is read, else while it streams in (chunked uploads). ``limit_for(path,
    content_type)`` is the limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], BodyLimit]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"content-type"
            ),
            "",
        )
        limit = self.limit_for(scope["path"], content_type)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit.max_bytes):
                size = int(value) if value.isdigit() else None
                await _reject(send, scope["path"], limit.refusal(size))
                return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    # Answer now; the app sees a disconnect and whatever it sends is dropped
                    # (frameworks turn errors raised while reading into their own 400).
                    refused = True
                    if not started:
                        await _reject(send, scope["path"], limit.refusal(None))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _reject(send: Send, path: str, error: ImageTooLargeError) -> None:
    body = json.dumps(error_body_for(path, 413, error.message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_for(path, 413),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class RateLimitState:
    """Where a key stands against its limit once a request has been counted: what remove.bg's
    ``X-RateLimit-*`` headers say (its documented meaning: the limit per minute, what is left
    of it, and the Unix time at which it resets). alphacut counts requests, not remove.bg's
    megapixel credits, so ``limit`` is requests per minute; in a moving window the limit
    "resets" by one request when the oldest request of the last minute leaves it."""

    limit: int
    remaining: int
    reset: float  # Unix time

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
        }


class KeyRateLimitedError(RateLimitedError):
    """429 for a key past its requests per minute, with where it stands (for the headers)."""

    def __init__(self, message: str, retry_after: int, state: RateLimitState) -> None:
        super().__init__(message, retry_after)
        self.state = state


class RateLimiter:
    """``per_minute`` requests per API key in any 60 seconds (a moving window, as the
    `limits` library keeps it), counted in ``storage``: ``memory://`` for one process,
    ``redis://host:port`` for every replica of a fleet at once.

    When the shared storage cannot be reached the request is let through (and logged): a rate
    limit protects the service, it must not become the reason it is down."""

    def __init__(self, per_minute: int | None, storage: str = "memory://") -> None:
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute or 1)
        # Connecting is lazy (first hit), so a start-up does not wait on Redis; a Redis that
        # stops answering costs a request at most a second, never a hang.
        options: dict[str, float] = {}
        if storage.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage, **options))

    def check(self, key_id: str) -> RateLimitState | None:
        """Count a request of ``key_id``: where the key now stands (None without a limit, or
        when the storage failed), or :class:`KeyRateLimitedError` past the limit (that
        request is not counted). The state is read from the same storage right after the
        hit, so it is what the limiter enforces (another replica's request in between can
        make it one request stale)."""
        if self.per_minute is None:
            return None
        try:
            allowed = self._limiter.hit(self._item, "key", key_id)
            reset, remaining = self._limiter.get_window_stats(self._item, "key", key_id)
        except Exception as exc:  # noqa: BLE001 - any storage failure: let the request in
            log.warning("rate limit storage failed, request let through: %s", exc)
            return None
        state = RateLimitState(self.per_minute, remaining, reset)
        if allowed:
            return state
        wait = max(1, math.ceil(reset - time.time()))
        metrics.refused("rate_limit")
        raise KeyRateLimitedError(
            f"rate limit of {self.per_minute} requests per minute exceeded; retry in {wait} s",
            wait,
            replace(state, remaining=0),
        )
