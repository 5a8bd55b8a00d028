"""Unauthenticated routes: published images and health checks."""

from __future__ import annotations

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
        "of the S3 store (`Location`), valid for `ALPHACUT_BLOB_PRESIGNED_SECONDS`."
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
    responses={**errors(404), **PRESIGNED_REDIRECT},
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
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    tags=["health"],
    summary="Ready to serve: database, storage, free disk space and the models loaded",
    responses={503: {"model": Health}},
)
def readyz(request: Request, svc: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        svc.images.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:  # the store itself: a writable folder, or a reachable bucket
        problem = svc.images.blobs.check()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        problem = type(exc).__name__
    checks["storage"] = "ok" if problem is None else f"error: {problem}"
    checks["disk"] = _disk(svc)
    store = ModelStore.for_settings(svc.settings)
    status = store.status(store.spec(svc.settings.default_model))
    loaded = svc.inference.readiness()  # "loading" until the models named to load are
    fleet = svc.settings.inference_url is not None  # the workers hold the models: they answer
    installed = fleet or status is ModelStatus.INSTALLED
    checks["model"] = loaded if installed else f"error: {status.value}"
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


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
