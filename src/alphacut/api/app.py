"""The FastAPI application: wiring of settings, storage, services, limits and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphacut.api import (
    errors,
    images,
    metrics,
    models,
    openapi,
    public,
    rembg,
    removebg,
    web,
    ximilar,
)
from alphacut.api.deps import Services
from alphacut.api.limits import BodyLimit, BodyLimitMiddleware, RateLimiter, is_json
from alphacut.api.query import OmittedQueryValues
from alphacut.api.requestlog import RequestLog
from alphacut.config import Settings, get_settings
from alphacut.service.cutout import CutoutService
from alphacut.service.fetcher import UrlFetcher
from alphacut.service.health import Readiness
from alphacut.service.images import ImageService
from alphacut.service.inference.factory import open_inference
from alphacut.service.keys import KeyService
from alphacut.service.memory import (
    MB,
    MemoryBudget,
    default_budget_bytes,
    session_bytes,
    tune_malloc,
)
from alphacut.service.metrics import process_exit
from alphacut.service.results import ResultStore, Sweeper
from alphacut.service.startup import check_startup
from alphacut.service.work import WorkQueue
from alphacut.storage.database import Database
from alphacut.storage.factory import open_blob_store, open_database
from alphacut.version import __version__

log = logging.getLogger("alphacut")

_MULTIPART_OVERHEAD = 64 * 1024

DESCRIPTION = """\
Self-hosted background removal. Four APIs, each compatible with one that clients already
call, so that existing clients work by changing only the base URL (and sending a key):

- `/v1/images`: the IMG Processing API (authenticate with the `x-api-key` header);
- `/removebg/{fast|precise}/removebg`: Ximilar Remove Background (`Authorization: Token <key>`);
- `/v1.0/removebg` and `/v1.0/account`: remove.bg (`X-Api-Key` header);
- `/api/remove`: rembg's own server (`x-api-key` or `Authorization: Bearer <key>`).

Create keys with `alphacut keys create`.
"""


class SecurityHeaders:
    """Headers every response carries: no MIME sniffing, no framing, no referrer leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers if scope["type"] == "http" else send)


@dataclass
class Runtime:
    """What the app owns while it runs, to be stopped in order at shutdown."""

    services: Services
    db: Database
    queues: tuple[WorkQueue, ...]
    sweeper: Sweeper

    def stop(self) -> None:
        self.sweeper.stop()
        self.services.inference.shutdown()
        for queue in self.queues:
            queue.shutdown()
        self.db.close()
        process_exit()  # several processes: this one's queues and memory leave the sums


def build_runtime(settings: Settings) -> Runtime:
    store = settings.model_store()  # the one store of this process, handed to what needs it
    check_startup(settings, store, runs_models=not settings.inference_url)
    db = open_database(settings)  # every wait for it bounded: 503, never a hang
    db.prepare()  # SQLite: migrated; PostgreSQL: must be at head (`alphacut db upgrade`)
    blobs = open_blob_store(settings)
    results = ResultStore(db, blobs, settings.result_ttl_seconds)
    tune_malloc()
    # The models loaded at start-up take their share of the room before any job does (on a
    # fleet's replica, none: the workers load them).
    loaded = set() if settings.inference_url else set(settings.load_models)
    specs = {store.spec(model).name: store.spec(model) for model in loaded}  # aliases once
    specs |= {
        spec.checker: store.spec(spec.checker) for spec in list(specs.values()) if spec.checker
    }
    sessions = sum(session_bytes(spec) for spec in specs.values())
    budget = MemoryBudget(
        settings.memory_budget_bytes or default_budget_bytes(reserved=sessions),
        settings.memory_wait_seconds,
        settings.retry_after_seconds,
    )
    log.info("memory budget for image work: %d MB", budget.total // MB)
    image_queue = WorkQueue(
        "image",
        settings.image_workers,
        settings.image_queue,
        settings.retry_after_seconds,
        settings.request_timeout_seconds,
        budget,
    )
    inference_queue = WorkQueue(
        "inference",
        settings.inference_slots,
        settings.inference_queue,
        settings.retry_after_seconds,
        settings.request_timeout_seconds,
        budget,
    )
    fetcher = UrlFetcher(settings)
    inference = open_inference(settings, blobs, image_queue, inference_queue, budget, store)
    keys = KeyService(db)
    images = ImageService(settings, db, blobs, image_queue, fetcher)
    services = Services(
        settings=settings,
        keys=keys,
        images=images,
        cutouts=CutoutService(settings, inference, fetcher, image_queue, images, results, keys),
        inference=inference,
        readiness=Readiness(settings, db, blobs, inference, store),
        store=store,
        results=results,
        rate_limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_storage),
    )
    sweeper = Sweeper(results, settings.sweep_interval_seconds)
    return Runtime(services, db, (inference_queue, image_queue, fetcher.queue), sweeper)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        runtime.sweeper.start()
        runtime.services.inference.start()
        app.state.services = runtime.services
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPIOffline(
        title="alphacut",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No validator badge: Swagger UI would load it from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    errors.install(app)
    openapi.install(app)
    app.include_router(images.router)
    app.include_router(models.router)
    app.include_router(public.router)
    app.include_router(ximilar.router)
    app.include_router(removebg.router)
    app.include_router(rembg.router)
    app.include_router(web.router)
    app.include_router(metrics.router)
    app.mount("/static", web.static_files, name="static")

    # What a valid request can need, no more (413 before it is read): a base64 image is 4/3
    # of the image's bytes, and the rest of a request (options, ids) fits in the overhead.
    base64_image = settings.max_input_bytes * 4 // 3 + _MULTIPART_OVERHEAD

    def limit_for(path: str, content_type: str) -> BodyLimit:
        upload, photo = settings.max_upload_bytes, settings.max_input_bytes
        if path.rstrip("/") == "/v1/images/upload":
            return BodyLimit(upload + _MULTIPART_OVERHEAD, upload)
        if path.startswith("/removebg/"):
            batch = min(settings.max_batch_bytes, settings.removebg_max_records * base64_image)
            return BodyLimit(batch, photo, base64=True, photos=settings.removebg_max_records)
        if path.rstrip("/") == "/v1.0/removebg":
            if is_json(content_type):  # one photo as base64 (a background comes as a file)
                return BodyLimit(base64_image, photo, base64=True)
            # A form: a photo and a background, the photo maybe as base64.
            return BodyLimit(3 * upload + _MULTIPART_OVERHEAD, upload, photos=2)
        if path.rstrip("/") == "/api/remove":  # rembg: one photo, as a multipart file
            return BodyLimit(upload + _MULTIPART_OVERHEAD, upload)
        return BodyLimit(settings.max_json_bytes)

    app.add_middleware(metrics.RouteName)  # innermost: the route is known there
    app.add_middleware(OmittedQueryValues)
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(openapi.DocsPolicy)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(metrics.RequestMetrics)  # every answer counted, a 413 too
    app.add_middleware(RequestLog)  # outermost: every answer has its X-Request-ID, errors too
    return app


def app_from_environment() -> FastAPI:
    """The factory `alphacut serve` hands uvicorn, so that every worker process builds its
    own app (and model sessions) from the same settings."""
    return create_app(get_settings())
