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

    def run(self, fn: Callable[[], T], *, wait: float | None = None) -> T:
        """Run ``fn`` on a worker and return its result. When every slot is taken, refuse at
        once with :class:`ServiceBusyError`, or with ``wait`` wait up to that many seconds
        for a slot first (for work already admitted, such as a batch's later records)."""
        acquired = (
            self._slots.acquire(blocking=False)
            if wait is None
            else self._slots.acquire(timeout=wait)
        )
        if not acquired:
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
