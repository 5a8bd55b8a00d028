"""The bounded work queues: refused at once when full (503 + Retry-After), a job over its time
limit answered 504 while it keeps its slot until it really ends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from alphacut.errors import ProcessingTimeoutError, ServiceBusyError
from alphacut.service.work import WorkQueue


def test_work_queue_refuses_when_full() -> None:
    queue = WorkQueue("test", workers=1, queue=1, retry_after=7)
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(queue.run, slow)
        started.wait(10)
        second = pool.submit(queue.run, lambda: "queued")  # waits in the one queue slot
        while queue.pending < 2:
            pass
        with pytest.raises(ServiceBusyError) as refused:
            queue.run(lambda: "refused")
        assert refused.value.retry_after == 7
        release.set()
        assert (first.result(), second.result()) == ("done", "queued")
    assert queue.run(lambda: "free again") == "free again"
    queue.shutdown()


def test_work_over_the_time_limit_is_504_and_keeps_its_slot() -> None:
    queue = WorkQueue("test", workers=1, queue=0, retry_after=2, timeout=0.2)
    release = threading.Event()
    with pytest.raises(ProcessingTimeoutError) as late:
        queue.run(lambda: release.wait(10))
    assert late.value.status == 504
    with pytest.raises(ServiceBusyError):
        queue.run(lambda: "the slow job still runs")
    release.set()
    deadline = time.monotonic() + 5
    while queue.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.run(lambda: "free again") == "free again"
    queue.shutdown()
