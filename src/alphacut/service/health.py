"""Whether the service is ready to serve: what ``/readyz`` asks, in one place.

Four checks (the database answers, the store is usable, there is free disk space, the models
are loaded), each on a thread of its own, all at once, each given
``ALPHACUT_READINESS_TIMEOUT_SECONDS`` to answer (then ``error: timeout``): a backend that does
not answer makes the service say "not ready" at once, not when its own timeouts end. A check
still running from an earlier probe is waited for again, never started twice, so that probing
a stalled backend holds one thread per check at most.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

from alphacut.config import Settings
from alphacut.models.store import ModelStatus, ModelStore
from alphacut.service.inference.port import Inference
from alphacut.storage.blobs import BlobStore
from alphacut.storage.database import Database


class Readiness:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        inference: Inference,
        store: ModelStore,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.inference = inference
        self.store = store
        self.checks: dict[str, Callable[[], str]] = {
            "database": self._database,
            "storage": self._storage,
            "disk": self._disk,
            "model": self._model,
        }
        self._running: dict[str, Future[str]] = {}
        self._lock = threading.Lock()

    async def check(self) -> dict[str, str]:
        """Each check's answer (``ok``, or why not), within the readiness timeout."""
        waiting = {name: asyncio.wrap_future(self._start(name)) for name in self.checks}
        await asyncio.wait(waiting.values(), timeout=self.settings.readiness_timeout_seconds)
        return {
            name: future.result() if future.done() else "error: timeout"
            for name, future in waiting.items()
        }

    def _start(self, name: str) -> Future[str]:
        with self._lock:
            future = self._running.get(name)
            if future is None or future.done():
                future = self._running[name] = Future()
                threading.Thread(
                    target=_settle,
                    args=(future, self.checks[name]),
                    name=f"readyz-{name}",
                    daemon=True,
                ).start()
            return future

    def _database(self) -> str:
        self.db.ping()
        return "ok"

    def _storage(self) -> str:
        """The store itself: a writable folder, or a reachable bucket."""
        problem = self.blobs.check()
        return "ok" if problem is None else f"error: {problem}"

    def _model(self) -> str:
        loaded = self.inference.readiness()  # "loading" until the models named to load are
        if loaded != "ok" or self.settings.inference_url is not None:  # the workers answer
            return loaded
        # A stat, once its file is verified (a hash, cached by size, mtime and inode; loading
        # the model did it already when the default model is one of those loaded at start-up).
        status = self.store.status(self.store.spec(self.settings.default_model))
        return "ok" if status is ModelStatus.INSTALLED else f"error: {status.value}"

    def _disk(self) -> str:
        """Free space where images and the database are written, against
        ``ALPHACUT_MIN_FREE_BYTES`` (how much is free is not said to the world)."""
        threshold = self.settings.min_free_bytes
        try:
            free = [self.blobs.free_bytes(), self.db.free_bytes()]
        except OSError as exc:
            return f"error: {type(exc).__name__}"
        if any(space is not None and space < threshold for space in free):
            return "error: low free space (under ALPHACUT_MIN_FREE_BYTES); writes answer 507"
        return "ok"


def _settle(future: Future[str], check: Callable[[], str]) -> None:
    try:
        future.set_result(check())
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        future.set_result(f"error: {type(exc).__name__}")
