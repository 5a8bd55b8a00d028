"""Unauthenticated routes: published images and health checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from alphacut.api.deps import Services, ServicesDep
from alphacut.api.images import content_disposition, image_response
from alphacut.api.openapi import errors
from alphacut.api.schemas import Health
from alphacut.engine.encode import MEDIA_TYPES, parse_format
from alphacut.errors import NotFoundError
from alphacut.models.store import ModelStatus, ModelStore

router = APIRouter()

PRESIGNED_REDIRECT: dict[int | str, dict[str, Any]] = {
    307: {
        "description": "With `ALPHACUT_BLOB_PRESIGNED_URLS`: the file, at a presigned URL "
        "of the S3 store (`Location`), valid for `ALPHACUT_BLOB_PRESIGNED_SECONDS` (60 s by "
        "default) even if the file is unpublished or deleted meanwhile."
    }
}


def presigned_redirect(
    svc: Services, blob_key: str, fmt: str, disposition: str, seconds: int | None = None
) -> Response:
    """307 to a presigned GET of the file (the store serves it, with the same Content-Type
    and Content-Disposition alphacut would send). Not cached by anyone: the URL expires."""
    longest = svc.settings.blob_presigned_seconds
    seconds = longest if seconds is None else min(seconds, longest)
    url = svc.images.blobs.presigned_url(
        blob_key, max(1, seconds), MEDIA_TYPES[parse_format(fmt)], disposition
    )
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


@router.head("/p/{token}", include_in_schema=False)
@router.get(
    "/p/{token}",
    response_class=Response,
    tags=["public"],
    summary="A published image (no key needed; stops working when unpublished or deleted)",
    responses={**errors(404, 503), **PRESIGNED_REDIRECT},
)
def published(svc: ServicesDep, token: str) -> Response:
    if len(token) > 64:
        raise NotFoundError("no published image at this address")
    record = svc.images.published(token)
    if svc.settings.blob_presigned_urls:
        disposition = content_disposition(record.name, record.format)
        return presigned_redirect(svc, record.blob_key, record.format, disposition)
    cache = f"public, max-age={svc.settings.public_cache_seconds}"
    return image_response(svc.images.read(record), record.format, record.name, cache)


@router.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
async def healthz() -> Health:
    # On the event loop, touching nothing: it answers while every worker thread waits on a
    # stalled database or store (a sync route would queue behind them for a thread).
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    tags=["health"],
    summary="Ready to serve: database, storage, free disk space and the models loaded",
    responses={503: {"model": Health}},
)
async def readyz(request: Request) -> JSONResponse:
    # The services from the app itself: a sync dependency would wait for a worker thread.
    svc: Services = request.app.state.services
    checks = await _checks_of(request, svc).run()
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


class ReadinessChecks:
    """/readyz's checks, each on a thread of its own, all at once, each given
    ``ALPHACUT_READINESS_TIMEOUT_SECONDS`` to answer (then ``error: timeout``): a backend that
    does not answer makes /readyz say "not ready" at once, not when its own timeouts end. A
    check still running from an earlier probe is waited for again, never started twice, so
    that probing a stalled backend holds one thread per check at most."""

    def __init__(self, checks: dict[str, Callable[[], str]], timeout: float) -> None:
        self.checks = checks
        self.timeout = timeout
        self._running: dict[str, Future[str]] = {}
        self._lock = threading.Lock()

    def _start(self, name: str) -> Future[str]:
        with self._lock:
            future = self._running.get(name)
            if future is None or future.done():
                future = self._running[name] = Future()
                check = self.checks[name]
                threading.Thread(
                    target=_settle, args=(future, check), name=f"readyz-{name}", daemon=True
                ).start()
            return future

    async def run(self) -> dict[str, str]:
        waiting = {name: asyncio.wrap_future(self._start(name)) for name in self.checks}
        await asyncio.wait(waiting.values(), timeout=self.timeout)
        return {
            name: future.result() if future.done() else "error: timeout"
            for name, future in waiting.items()
        }


def _settle(future: Future[str], check: Callable[[], str]) -> None:
    try:
        future.set_result(check())
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        future.set_result(f"error: {type(exc).__name__}")


def _checks_of(request: Request, svc: Services) -> ReadinessChecks:
    checks: ReadinessChecks | None = getattr(request.app.state, "readiness_checks", None)
    if checks is None:
        checks = ReadinessChecks(
            {
                "database": lambda: _database(svc),
                "storage": lambda: _storage(svc),
                "disk": lambda: _disk(svc),
                "model": lambda: _model(svc),
            },
            svc.settings.readiness_timeout_seconds,
        )
        request.app.state.readiness_checks = checks
    return checks


def _database(svc: Services) -> str:
    svc.images.db.ping()
    return "ok"


def _storage(svc: Services) -> str:
    """The store itself: a writable folder, or a reachable bucket."""
    problem = svc.images.blobs.check()
    return "ok" if problem is None else f"error: {problem}"


def _model(svc: Services) -> str:
    loaded = svc.inference.readiness()  # "loading" until the models named to load are
    if loaded != "ok" or svc.settings.inference_url is not None:  # a fleet's workers answer
        return loaded
    # A stat, once its file is verified (a hash, cached by size, mtime and inode; loading the
    # model did it already when the default model is one of those loaded at start-up).
    store = ModelStore.for_settings(svc.settings)
    status = store.status(store.spec(svc.settings.default_model))
    return "ok" if status is ModelStatus.INSTALLED else f"error: {status.value}"


def _disk(svc: Services) -> str:
    """Free space where images and the database are written, against
    ``ALPHACUT_MIN_FREE_BYTES`` (how much is free is not said to the world)."""
    threshold = svc.settings.min_free_bytes
    try:
        free = [svc.images.blobs.free_bytes(), svc.images.db.free_bytes()]
    except OSError as exc:
        return f"error: {type(exc).__name__}"
    if any(space is not None and space < threshold for space in free):
        return "error: low free space (under ALPHACUT_MIN_FREE_BYTES); writes answer 507"
    return "ok"
