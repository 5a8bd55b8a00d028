"""Bounded executors: CPU-heavy work runs on a fixed number of threads behind a queue of
fixed length. When both are full the caller is refused at once (503 + Retry-After) rather
than queued without bound; the event loop never runs this work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from alphacut.errors import ProcessingTimeoutError, ServiceBusyError

T = TypeVar("T")


class WorkQueue:
    def __init__(
        self, name: str, workers: int, queue: int, retry_after: int, timeout: float | None = None
    ) -> None:
        self.name = name
        self.timeout = timeout
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
            future = self._pool.submit(fn)
        except BaseException:
            self._release()
            raise
        # The slot is freed when the work ends, not when a caller stops waiting: a thread
        # cannot be interrupted, and a timed-out job still occupies its worker.
        future.add_done_callback(lambda _future: self._release())
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise ProcessingTimeoutError(
                f"processing took longer than the limit of {self.timeout:g} s"
            ) from None

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
        self._slots.release()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
