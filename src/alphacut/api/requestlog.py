"""Each HTTP request's id and its one summary line.

:class:`RequestLog` runs outside every other middleware, so that every answer carries the
request's ``X-Request-ID``, errors (a 413 of the body limit, a 500) included. The id is the
caller's where it is well formed (:func:`alphacut.logs.request_id_from`: a proxy's, a
client's), else a new UUID; it is bound for the request's whole run (see
:mod:`alphacut.logs`), handed to a fleet's worker with the job and used as Ximilar's
``request_id``. When the answer is sent, one ``alphacut.request`` line says what happened:
method, route template (``/v1/images/{image_id}``, never the path with its ids and tokens),
status, total time in milliseconds and the stages the removal timed, with the key's id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.logs import REQUEST_ID_HEADER, bound, request_id_from

log = logging.getLogger("alphacut.request")

_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")


def route_of(scope: Scope) -> str:
    """The template of the route that answered (``unmatched`` where none did)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _key_id(state: Any) -> str | None:
    """The admitted key's id, as the dependencies left it on the request's state."""
    key = state.get("key") if isinstance(state, dict) else None
    key_id = getattr(key, "id", None)
    return key_id if isinstance(key_id, str) else None


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [value for name, value in scope.get("headers", ()) if name == _HEADER]
        request_id = request_id_from(sent[0].decode("latin-1") if len(sent) == 1 else None)
        state = scope.setdefault("state", {})
        status = 500  # what the client gets if the app raises before it answers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != _HEADER
                ]
                headers.append((_HEADER, request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with bound(request_id, key_from=lambda: _key_id(state)) as context:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = route_of(scope)
                elapsed = round((time.perf_counter() - started) * 1000, 1)
                stages = {name: round(s * 1000, 1) for name, s in context.timings.items()}
                log.info(
                    "%s %s %d in %.0f ms",
                    scope.get("method"),
                    route,
                    status,
                    elapsed,
                    extra={
                        "method": scope.get("method"),
                        "route": route,
                        "status": status,
                        "duration_ms": elapsed,
                        "stages_ms": stages or None,
                    },
                )
