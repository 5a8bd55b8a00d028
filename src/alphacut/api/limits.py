"""Request-size limits enforced while the body streams in, and per-key rate limits."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api.errors import error_body_for, status_for
from alphacut.errors import RateLimitedError

log = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """413 as soon as a body is known to exceed its route's limit: from Content-Length before
    anything is read, else while it streams in (chunked uploads)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _reject(send, scope["path"], limit)
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
                if received > limit:
                    # Answer now; the app sees a disconnect and whatever it sends is dropped
                    # (frameworks turn errors raised while reading into their own 400).
                    refused = True
                    if not started:
                        await _reject(send, scope["path"], limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _reject(send: Send, path: str, limit: int) -> None:
    message = f"the request body is larger than the limit of {limit:,} bytes"
    body = json.dumps(error_body_for(path, 413, message)).encode()
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

    def check(self, key_id: str) -> None:
        if self.per_minute is None:
            return
        try:
            if self._limiter.hit(self._item, "key", key_id):
                return
            reset = self._limiter.get_window_stats(self._item, "key", key_id).reset_time
        except Exception as exc:  # noqa: BLE001 - any storage failure: let the request in
            log.warning("rate limit storage failed, request let through: %s", exc)
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimitedError(
            f"rate limit of {self.per_minute} requests per minute exceeded; retry in {wait} s",
            wait,
        )
