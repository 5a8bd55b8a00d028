"""The cut-out use case: one admission policy, waits that end at the request's deadline, a
bad background refused before any removal (issue 22, "also noticed": the remove.bg finishing
step waited up to 300 s for an image worker, past ALPHACUT_REQUEST_TIMEOUT_SECONDS, and a
Ximilar record up to 300 s for a model slot), outputs kept where the API wants them, billing
once answered."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from alphacut.config import Settings
from alphacut.engine.outputs import Encoded
from alphacut.errors import AlphacutError, ServiceBusyError, UnsupportedImageError
from alphacut.service.cutout import CutoutRequest, CutoutResult, CutoutService, Source
from alphacut.service.inference.port import InferenceJob, InferenceResult
from alphacut.service.work import WorkQueue


def _png(mode: str = "RGBA", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (0, 200, 0, 255) if mode == "RGBA" else (0, 200, 0)).save(buffer, "PNG")
    return buffer.getvalue()


class FakeInference:
    """Answers every job with a small cut-out, and keeps the jobs it was given."""

    def __init__(self, error: AlphacutError | None = None) -> None:
        self.jobs: list[InferenceJob] = []
        self.error = error

    def submit(self, job: InferenceJob) -> InferenceResult:
        self.jobs.append(job)
        if self.error is not None:
            raise self.error
        return InferenceResult((Encoded(_png(), "png"),), 32, 24, job.model, "none")

    def busy(self) -> bool:
        return False


class Bills:
    """A KeyService that only counts what it is asked to bill."""

    def __init__(self) -> None:
        self.billed: list[tuple[str, int]] = []

    def bill(self, key_id: str, images: int, answered: Any) -> None:
        if images and answered():
            self.billed.append((key_id, images))


def _service(
    settings: Settings, inference: Any, queue: WorkQueue | None = None, keys: Any = None
) -> CutoutService:
    return CutoutService(
        settings,
        inference,
        None,  # type: ignore[arg-type]  # no URL is fetched here
        queue or WorkQueue("image", 1, 1, 1),
        None,  # type: ignore[arg-type]  # nothing is kept as an image here
        None,  # type: ignore[arg-type]  # nor as result files
        keys or Bills(),  # type: ignore[arg-type]
    )


@pytest.fixture
def full_queue() -> Iterator[WorkQueue]:
    """An image queue whose one slot is taken until the test ends."""
    queue = WorkQueue("image", 1, 0, 1)
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(60)

    holder = threading.Thread(target=lambda: queue.run(hold))
    holder.start()
    assert started.wait(10)
    yield queue
    release.set()
    holder.join()
    queue.shutdown()


def _in_thread(fn: Any) -> tuple[bool, BaseException | None, float]:
    """Run ``fn``; (finished within 30 s, what it raised, seconds taken)."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(30)
    return bool(outcome), outcome[0] if outcome else None, time.monotonic() - started


def test_a_background_check_never_waits_past_the_deadline(full_queue: WorkQueue) -> None:
    """The image queue is full: a request's first step is refused at once (503), an admitted
    batch's waits until its deadline (504), neither a moment past it."""
    service = _service(Settings(request_timeout_seconds=1.0), FakeInference(), full_queue)
    wanted = CutoutRequest("key", Source(data=_png("RGB")), background=Source(data=_png("RGB")))
    done, error, took = _in_thread(lambda: service.run(wanted))
    assert done and isinstance(error, AlphacutError) and error.status == 503, error
    items: list[Any] = []
    done, error, took = _in_thread(lambda: items.extend(service.run_batch([wanted])))
    assert done and error is None, "the background check waited past the request's time limit"
    assert isinstance(items[0], AlphacutError) and items[0].status == 504, items
    assert took < 10


def test_a_bad_background_is_refused_before_the_removal() -> None:
    inference = FakeInference()
    queue = WorkQueue("image", 1, 1, 1)
    service = _service(Settings(), inference, queue)
    photo = Source(data=_png("RGB"))
    try:
        with pytest.raises(UnsupportedImageError):
            service.run(CutoutRequest("key", photo, background=Source(data=b"not an image")))
        assert inference.jobs == [], "the removal ran before the background was checked"
        result = service.run(CutoutRequest("key", photo, background=Source(data=_png("RGB"))))
        assert (result.width, result.height) == (32, 24)
        assert inference.jobs[0].effects.background_image == _png("RGB")
    finally:
        queue.shutdown()


def test_a_batch_item_waits_for_a_slot_only_until_the_deadline() -> None:
    inference = FakeInference(ServiceBusyError("busy", 1))
    service = _service(Settings(request_timeout_seconds=2.0), inference)
    wanted = CutoutRequest("key", Source(data=b"hello"))
    (result,) = service.run_batch([wanted])
    (job,) = inference.jobs
    assert job.queue_wait is not None and 0 < job.queue_wait <= 2.0
    assert job.timeout is not None and job.timeout <= 2.0
    assert isinstance(result, AlphacutError) and result.status == 503  # busy before the deadline

    (late,) = service.run_batch([wanted], deadline=time.monotonic())
    assert isinstance(late, AlphacutError) and late.status == 504


def test_a_single_cut_out_is_refused_at_once_when_full_a_batch_when_busy() -> None:
    """One admission policy: a request's first step does not wait for capacity."""
    inference = FakeInference()
    service = _service(Settings(), inference)
    service.run(CutoutRequest("key", Source(data=_png("RGB"))))
    assert inference.jobs[-1].queue_wait is None
    inference.busy = lambda: True  # type: ignore[method-assign]
    with pytest.raises(ServiceBusyError):
        service.run_batch([CutoutRequest("key", Source(data=_png("RGB")))])


def test_successes_are_billed_once_answered_and_errors_never() -> None:
    keys = Bills()
    service = _service(Settings(), FakeInference(), keys=keys)
    good = CutoutRequest("key", Source(data=_png("RGB")), billed=2)
    done = service.run_batch([good, AlphacutError("a bad record"), good])
    assert [type(item) for item in done] == [CutoutResult, AlphacutError, CutoutResult]
    assert keys.billed == [("key", 4)]
    service.run(good, answered=lambda: False)  # the client has gone
    assert keys.billed == [("key", 4)]
    service.run(good)
    assert keys.billed == [("key", 4), ("key", 2)]


class LateInference(FakeInference):
    """A job whose wait for capacity inside the engine ends at its deadline (the finishing
    step behind a full image queue), as LocalInference then answers."""

    def submit(self, job: InferenceJob) -> InferenceResult:
        self.jobs.append(job)
        time.sleep(job.timeout or 0)
        raise ServiceBusyError("the server is busy (image queue full); retry in 1 s", 1)


def test_a_single_cut_out_whose_wait_ends_at_the_deadline_is_a_504() -> None:
    """The remove.bg finishing step that waits for an image worker until the deadline: 504,
    not 503 (the assertion of the test this file replaced, review of issue 23)."""
    service = _service(Settings(request_timeout_seconds=1.0), LateInference())
    done, error, took = _in_thread(
        lambda: service.run(CutoutRequest("key", Source(data=_png("RGB"))))
    )
    assert done and isinstance(error, AlphacutError) and error.status == 504, error
    assert took < 10


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[tuple[float | None, float | None]] = []

    def fetch(self, url: str, max_bytes: int, *, wait: Any = None, within: Any = None) -> bytes:
        self.calls.append((wait, within))
        return _png("RGB")


def test_fetches_never_wait_for_a_slot_nor_run_past_the_deadline() -> None:
    """A fetch slot is a guard against slow origins: never waited for (503 at once, see
    tests/test_fetch.py); and no fetch may take longer than the request has left."""
    fetcher = Fetcher()
    service = _service(Settings(request_timeout_seconds=5.0), FakeInference())
    service.fetcher = fetcher  # type: ignore[assignment]
    service.run(CutoutRequest("key", Source(url="http://example.com/a.png")))
    service.run_batch([CutoutRequest("key", Source(url="http://example.com/a.png"))])
    (single_wait, single_within), (batch_wait, batch_within) = fetcher.calls
    assert single_wait is None and batch_wait is None
    assert single_within is not None and single_within <= 5.0
    assert batch_within is not None and batch_within <= 5.0
