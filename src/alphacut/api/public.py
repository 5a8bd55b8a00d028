"""Unauthenticated routes: published images and health checks."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from alphacut.api.deps import Services, ServicesDep
from alphacut.api.images import image_response
from alphacut.api.openapi import errors
from alphacut.api.schemas import Health
from alphacut.errors import NotFoundError
from alphacut.models.store import ModelStatus, ModelStore

router = APIRouter()


@router.head("/p/{token}", include_in_schema=False)
@router.get(
    "/p/{token}",
    response_class=Response,
    tags=["public"],
    summary="A published image (no key needed; stops working when unpublished or deleted)",
    responses=errors(404),
)
def published(svc: ServicesDep, token: str) -> Response:
    if len(token) > 64:
        raise NotFoundError("no published image at this address")
    record = svc.images.published(token)
    cache = f"public, max-age={svc.settings.public_cache_seconds}"
    return image_response(svc.images.read(record), record.format, record.name, cache)


@router.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    tags=["health"],
    summary="Ready to serve: database, storage, free disk space and the default model",
    responses={503: {"model": Health}},
)
def readyz(request: Request, svc: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        svc.images.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    blobs = request.app.state.blob_root
    checks["storage"] = "ok" if blobs.is_dir() and _writable(blobs) else "error: not writable"
    checks["disk"] = _disk(svc)
    store = ModelStore(svc.settings.model_dir)
    status = store.status(store.spec(svc.settings.default_model))
    checks["model"] = "ok" if status is ModelStatus.INSTALLED else f"error: {status.value}"
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


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
