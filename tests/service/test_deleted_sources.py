"""An image deleted while work on it waits in a queue: the waiting request answers 404.

Deterministic: the queue's only worker is held by a blocker until the request is queued
behind it and its source deleted; then the blocker is released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from alphacut.api.deps import Services
from alphacut.service.work import WorkQueue
from servers import Server


@pytest.fixture(scope="module")
def one_worker(make_server: Callable[..., Server]) -> Server:
    return make_server(image_workers=1, inference_workers=1)


def _services(server: Server) -> Services:
    app = cast(FastAPI, server._server.config.app)
    return cast(Services, app.state.services)


def _upload(client: httpx.Client, photo: Path) -> str:
    response = client.post(
        "/v1/images/upload", data={"name": "src"}, files={"image": ("x", photo.read_bytes())}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _held(queue: WorkQueue) -> tuple[threading.Event, threading.Thread]:
    """Occupies the queue's only worker until the returned event is set."""
    release, running = threading.Event(), threading.Event()

    def block() -> None:
        running.set()
        release.wait(60)

    thread = threading.Thread(target=lambda: queue.run(block), daemon=True)
    thread.start()
    assert running.wait(30)
    return release, thread


def _wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.01)


@pytest.fixture
def client(one_worker: Server) -> Iterator[httpx.Client]:
    with one_worker.client(one_worker.new_key()) as api:
        yield api


# (queue, the request, given the source's and another image's ids, which image to delete)
CASES: list[tuple[str, str, Callable[[str, str], Any], str]] = [
    # A removal reads its source when it reaches the image queue (to decode it), so that is
    # where it waits with a source that can still be deleted.
    ("image", "remove-background", lambda src, _other: {"model": "fast"}, "source"),
    ("image", "convert", lambda src, _other: {"format": "png"}, "source"),
    ("image", "blur", lambda src, _other: {"sigma": 2}, "source"),
    (
        "image",
        "watermark",
        lambda src, other: {"watermarks": [{"id": other, "width": 20, "height": 20}]},
        "watermark",
    ),
]


@pytest.mark.parametrize(("queue_name", "operation", "body", "victim"), CASES)
def test_deleting_the_source_while_queued_is_404_not_500(
    one_worker: Server,
    client: httpx.Client,
    photo: Path,
    queue_name: str,
    operation: str,
    body: Callable[[str, str], Any],
    victim: str,
) -> None:
    services = _services(one_worker)
    assert queue_name == "image"
    queue = services.images.image_queue
    source, other = _upload(client, photo), _upload(client, photo)
    release, blocker = _held(queue)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = queue.pending
            answer = pool.submit(
                client.post, f"/v1/images/{source}/{operation}", json=body(source, other)
            )
            _wait_for(lambda: queue.pending > pending)
            deleted = source if victim == "source" else other
            assert client.delete(f"/v1/images/{deleted}").status_code == 204
            release.set()
            response = answer.result(timeout=60)
    finally:
        release.set()
        blocker.join(30)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert "deleted" in response.json()["message"]
    listed = {image["id"] for image in client.get("/v1/images").json()["data"]}
    assert listed == ({other} if victim == "source" else {source}), "nothing new was stored"
