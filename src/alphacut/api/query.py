"""What real clients of the APIs alphacut replaces send, made to mean what they mean.

The IMG Processing API's own Node client builds its query strings from an object whose
omitted fields are ``undefined``, and sends them as the literal text:
``listImages()`` asks for ``/v1/images?take=undefined&from=undefined``. The hosted API
answers it, so alphacut must: on the images API an optional query parameter whose value is
empty, ``undefined`` or ``null`` is treated as absent. Anything else is still validated
(``take=abc`` stays a 400).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

OMITTED = {"", "undefined", "null"}
_PREFIXES = ("/v1/",)


def drop_omitted(query: bytes) -> bytes:
    """The query string without parameters whose value says "not given"."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if value.strip().lower() not in OMITTED]
    if len(kept) == len(pairs):
        return query
    return urlencode(kept).encode("latin-1")


class OmittedQueryValues:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PREFIXES):
            query = scope.get("query_string", b"")
            if query:
                scope = {**scope, "query_string": drop_omitted(query)}
        await self.app(scope, receive, send)
