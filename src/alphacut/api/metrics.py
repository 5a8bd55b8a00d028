"""``/metrics`` and the HTTP side of the metrics: each answer counted by its API dialect,
route template, method and status, and timed (see :mod:`alphacut.service.metrics`).

Two middlewares, because the route is known only inside: :class:`RequestMetrics`, outside the
others (the request log aside), sees every answer (a 413 from the body limit too) and its
time; :class:`RouteName`, innermost, notes the template of the route that answered, which the
router sets on a scope that the middlewares between may have copied (so it is passed up in
an object they share).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api.deps import services
from alphacut.api.errors import error_response
from alphacut.service import metrics

_KEY = "alphacut.route"  # the scope entry both middlewares share
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Route templates by prefix: which API each belongs to (a fixed set of label values).
_DIALECTS = (
    ("/v1.0/", "removebg"),
    ("/v1/", "images"),
    ("/removebg/", "ximilar"),
    ("/results/", "ximilar"),
    ("/authorization/", "ximilar"),
    ("/api/", "rembg"),
)
UNMATCHED = "unmatched"  # no route answered (404 for any path: not a label per path)


def dialect_of(route: str) -> str:
    return next((name for prefix, name in _DIALECTS if route.startswith(prefix)), "other")


class RequestMetrics:
    """Counts and times every HTTP answer (``alphacut_http_requests_total``,
    ``alphacut_http_request_duration_seconds``); add it after the middlewares whose answers
    it should count (the body limit's 413), to be outside them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route: dict[str, str] = {}
        scope[_KEY] = route
        status = 499  # none sent: the client went away first (nginx's code for it)

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting)
        except asyncio.CancelledError:  # the server gave up on a client that went away
            raise
        except BaseException:
            if status == 499:  # nothing sent: the server's last resort answers 500
                status = 500
            raise
        finally:
            template = route.get("template") or _static(scope["path"]) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            # A request answered before routing (a 413 of the body limit) still has its
            # dialect, from its path's prefix: one of a fixed set.
            dialect = dialect_of(scope["path"] if template == UNMATCHED else template)
            metrics.request_done(
                dialect,
                template,
                method,
                status,
                time.perf_counter() - started,
            )


class RouteName:
    """Notes the template of the route that answers (``/v1/images/{image_id}``, never the
    path) for :class:`RequestMetrics`; add it first, to be innermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shared = scope.get(_KEY)
        if scope["type"] != "http" or shared is None:
            await self.app(scope, receive, send)
            return

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                if isinstance(route, BaseRoute) and hasattr(route, "path"):
                    shared["template"] = route.path
            await send(message)

        await self.app(scope, receive, noting)


def _static(path: str) -> str | None:
    """The web page's static files (a mount, which has no route template)."""
    for mount in ("/static/", "/static-offline-docs/"):
        if path.startswith(mount):
            return mount + "{path}"
    return None


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def read_metrics(request: Request) -> Response:
    """Prometheus metrics, to whom ``ALPHACUT_METRICS`` allows (404 when off). A plain
    ``def``: collecting reads files in multiprocess mode, on a worker thread."""
    svc = services(request)
    settings = svc.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    peer = request.client.host if request.client else None
    headers = {name.lower(): value for name, value in request.headers.items()}
    refused = metrics.refusal(settings.metrics, token, peer, headers)
    if refused is not None:
        return error_response(
            request.url.path, refused.status, refused.message, headers=dict(refused.headers)
        )
    fleet = svc.inference.fleet
    accept = headers.get("accept", "")
    body, content_type = metrics.exposition(accept, [metrics.FleetCollector(fleet)])
    return Response(body, media_type=None, headers={"Content-Type": content_type})
