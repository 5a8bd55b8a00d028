"""Bounded executors: CPU-heavy work runs on a fixed number of threads behind a queue of
fixed length. When both are full the caller is refused at once (503 + Retry-After) rather
than queued without bound; the event loop never runs this work.

Each job may carry its :class:`~alphacut.service.memory.Cost`: a job that could never fit
the memory budget, or that would outlast the request time limit, is refused before it is
queued (a running thread cannot be interrupted); one that does not fit beside the running
jobs waits for memory in its worker. While a job runs, :func:`checkpoint` lets long work stop
between steps once its caller has been answered with a timeout.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from alphacut.errors import ImageTooLargeError, ProcessingTimeoutError, ServiceBusyError
from alphacut.service import metrics
from alphacut.service.memory import Cost, MemoryBudget

T = TypeVar("T")
_job = threading.local()


class OutOfMemoryError(ServiceBusyError):
    """An allocation failed although the job's estimate fitted the budget (other processes,
    a tighter limit than measured): the job is dropped, the process lives on."""

    code = "out_of_memory"


def checkpoint() -> None:
    """Raise :class:`ProcessingTimeoutError` in a job whose time limit has passed (its
    caller has already been answered), so that long work stops at its next step."""
    deadline: float | None = getattr(_job, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise ProcessingTimeoutError("processing took longer than the limit; stopped")


class WorkQueue:
    def __init__(
        self,
        name: str,
        workers: int,
        queue: int,
        retry_after: int,
        timeout: float | None = None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.name = name
        self.budget = budget
        self.timeout = timeout
        self.capacity = workers + queue
        self.retry_after = retry_after
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"alphacut-{name}")
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self._pending = 0
        metrics.queue_size(name, 0, self.capacity)

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    @property
    def timeout_or_forever(self) -> float:
        """The time limit of a job, in seconds (a very long one when there is none)."""
        return self.timeout if self.timeout is not None else 365 * 24 * 3600.0

    def run(
        self,
        fn: Callable[[], T],
        *,
        wait: float | None = None,
        cost: Cost | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn`` on a worker and return its result. When every slot is taken, refuse at
        once with :class:`ServiceBusyError`, or with ``wait`` wait up to that many seconds
        for a slot first (for work already admitted, such as a batch's later records).
        ``cost``: the job's expected peak memory and time (see the module docstring).
        ``deadline`` (``time.monotonic()``): when a job that is one step of a longer one
        must end; default: this queue's time limit from now."""
        if cost is not None:
            self.admit(cost)
        acquired = (
            self._slots.acquire(blocking=False)
            if wait is None
            else self._slots.acquire(timeout=wait)
        )
        if not acquired:
            metrics.refused(f"{self.name}_queue")
            raise ServiceBusyError(
                f"the server is busy ({self.name} queue full); retry in {self.retry_after} s",
                self.retry_after,
            )
        with self._lock:
            self._pending += 1
            metrics.queue_size(self.name, self._pending, self.capacity)
        if deadline is None and self.timeout is not None:
            deadline = time.monotonic() + self.timeout
        try:
            # In a copy of the caller's context: its log lines carry the caller's request id.
            context = contextvars.copy_context()
            queued = time.perf_counter()
            future = self._pool.submit(context.run, self._job, fn, cost, deadline, queued)
        except BaseException:
            self._release()
            raise
        # The slot is freed when the work ends, not when a caller stops waiting: a thread
        # cannot be interrupted, and a timed-out job still occupies its worker.
        future.add_done_callback(lambda _future: self._release())
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return future.result(timeout=left)
        except FutureTimeout:
            raise ProcessingTimeoutError(
                f"processing took longer than the limit of {self.timeout_or_forever:g} s"
            ) from None

    def admit(self, cost: Cost) -> None:
        """Refuse (413), before it is queued, a job that could never fit the memory budget
        or that would outlast the time limit."""
        if self.budget is not None:
            self.budget.check(cost.bytes)
        if self.timeout is not None and cost.seconds > self.timeout:
            raise ImageTooLargeError(
                f"this image would take about {cost.seconds:.0f} s to process, longer than "
                f"the limit of {self.timeout:g} s: send a smaller image"
            )

    def _job(
        self, fn: Callable[[], T], cost: Cost | None, deadline: float | None, queued: float
    ) -> T:
        metrics.queue_waited(self.name, time.perf_counter() - queued)
        budget = self.budget if cost is not None and cost.bytes > 0 else None
        if budget is not None and cost is not None:
            budget.reserve(cost.bytes)
        _job.deadline = deadline
        try:
            return fn()
        except MemoryError:
            metrics.refused("out_of_memory")
            raise OutOfMemoryError(
                "the server ran out of memory for this image; retry later or send a smaller one",
                self.retry_after,
            ) from None
        finally:
            _job.deadline = None
            if budget is not None and cost is not None:
                budget.release(cost.bytes)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
            metrics.queue_size(self.name, self._pending, self.capacity)
        self._slots.release()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
