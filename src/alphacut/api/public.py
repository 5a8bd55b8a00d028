"""Unauthenticated routes: published images and health checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from alphacut.api.deps import Services, ServicesDep
from alphacut.api.images import content_disposition, image_response
from alphacut.api.openapi import errors
from alphacut.api.schemas import Health
from alphacut.engine.formats import MEDIA_TYPES, parse_format
from alphacut.errors import NotFoundError

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
    checks = await svc.readiness.check()
    ready = all(value == "ok" for value in checks.values())
    body = Health(
        status="ready" if ready else "not ready",
        checks=checks,
        models=svc.readiness.inference.runtimes(),
    )
    if ready:
        return JSONResponse(body.model_dump())
    # As every 503: when to ask again (ALPHACUT_RETRY_AFTER_SECONDS).
    retry = str(svc.settings.retry_after_seconds)
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": retry})
