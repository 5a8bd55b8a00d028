"""Bounded executors: CPU-heavy work runs on a fixed number of threads behind a queue of
fixed length. When both are full the caller is refused at once (503 + Retry-After) rather
than queued without bound; the event loop never runs this work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from alphacut.errors import ServiceBusyError

T = TypeVar("T")


class WorkQueue:
    def __init__(self, name: str, workers: int, queue: int, retry_after: int) -> None:
        self.name = name
        self.capacity = workers + queue
        self.retry_after = retry_after
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"alphacut-{name}")
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker and wait for it; :class:`ServiceBusyError` if full."""
        if not self._slots.acquire(blocking=False):
            raise ServiceBusyError(
                f"the server is busy ({self.name} queue full); retry in {self.retry_after} s",
                self.retry_after,
            )
        with self._lock:
            self._pending += 1
        try:
            return self._pool.submit(fn).result()
        finally:
            with self._lock:
                self._pending -= 1
            self._slots.release()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
