"""The remove.bg and Ximilar services wait for workers only until the request's deadline,
and a bad background image is refused before any removal (issue 22, "also noticed"): the
remove.bg finishing step waited up to 300 s for an image worker, past
ALPHACUT_REQUEST_TIMEOUT_SECONDS, and a Ximilar record up to 300 s for a model slot."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from alphacut.config import Settings
from alphacut.errors import AlphacutError, ServiceBusyError, UnsupportedImageError
from alphacut.service.inference import InferenceJob, InferenceResult
from alphacut.service.removebg import RemoveBgService
from alphacut.service.removebg_compat import Inputs, RemoveBgCompat, parse_options
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
        return InferenceResult((_png(),), 32, 24, job.model, "none")

    def busy(self) -> bool:
        return False


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


def test_the_removebg_finishing_step_waits_only_until_the_deadline(
    full_queue: WorkQueue,
) -> None:
    settings = Settings(request_timeout_seconds=1.0)
    compat = RemoveBgCompat(settings, FakeInference(), full_queue, None)  # type: ignore[arg-type]
    options = parse_options({}, json_body=True)
    done, error, took = _in_thread(lambda: compat.run(options, Inputs(image_file=_png("RGB"))))
    assert done, "the finishing step waited past the request's time limit"
    assert isinstance(error, AlphacutError) and error.status == 504, error
    assert took < 10


def test_a_bad_background_is_refused_before_the_removal(tmp_path: Any) -> None:
    inference = FakeInference()
    queue = WorkQueue("image", 1, 1, 1)
    compat = RemoveBgCompat(Settings(), inference, queue, None)  # type: ignore[arg-type]
    options = parse_options({}, json_body=True)
    try:
        with pytest.raises(UnsupportedImageError):
            compat.run(options, Inputs(image_file=_png("RGB"), bg_image_file=b"not an image"))
        assert inference.jobs == [], "the removal ran before the background was checked"
        result = compat.run(options, Inputs(image_file=_png("RGB"), bg_image_file=_png("RGB")))
        assert (result.width, result.height) == (32, 24)
    finally:
        queue.shutdown()


def test_a_ximilar_record_waits_for_a_slot_only_until_the_deadline() -> None:
    inference = FakeInference(ServiceBusyError("busy", 1))
    service = RemoveBgService(Settings(request_timeout_seconds=2.0), None, inference, None)  # type: ignore[arg-type]
    body = {"records": [{"_base64": "aGVsbG8="}]}
    result = service.run("key", "fast", body, lambda token, ext: "")
    (job,) = inference.jobs
    assert job.queue_wait is not None and 0 < job.queue_wait <= 2.0
    assert job.timeout is not None and job.timeout <= 2.0
    assert result.body["records"][0]["_status"]["code"] == 503  # busy before the deadline

    late = service.run("key", "fast", body, lambda token, ext: "", deadline=time.monotonic())
    assert late.body["records"][0]["_status"]["code"] == 504
