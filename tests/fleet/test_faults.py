"""Faults on the fleet: a worker killed mid-job, a full queue, no worker at all, a job that
outlasts the request limit. Never a hang past the limit, never a stored half-result, no
temporary file left behind."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from inferencefleet import Fleet
from servers import Server, start_server


def _temp_files(fleet: Fleet) -> list[Path]:
    folder = fleet.data_dir / "blobs" / "inference"
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def _no_temp_files_left(fleet: Fleet, within: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + within
    while (left := _temp_files(fleet)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _job_keys(fleet: Fleet) -> set[bytes]:
    return set(redis.Redis.from_url(fleet.url).scan_iter("celery-task-meta-*"))


def _running_job(fleet: Fleet, old: set[bytes], timeout: float = 60.0) -> dict[str, Any]:
    """Where a new job (its state not among ``old``) runs: ``pid``, ``hostname``, ``node``,
    from the STARTED state the worker stores."""
    client = redis.Redis.from_url(fleet.url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key in set(client.scan_iter("celery-task-meta-*")) - old:
            raw = client.get(key)
            meta = json.loads(raw) if raw else {}
            if meta.get("status") == "STARTED":
                return meta["result"]  # type: ignore[no-any-return]
        time.sleep(0.005)
    raise AssertionError("no job started on the fleet")


@pytest.fixture
def replica(fleet: Fleet) -> Iterator[Server]:
    made: list[Server] = []

    def make(**overrides: Any) -> Server:
        server = start_server(fleet.settings(**overrides))
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.stop()


def _images(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/v1/images", params={"take": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_worker_killed_mid_job_loses_nothing(server: Server, fleet: Fleet, portrait: Path) -> None:
    """SIGKILL the pool process running a removal: the job goes back to the queue and the
    other worker runs it (200), or the client is told to retry (503); within the limit,
    and never a half-stored image."""
    secret = server.new_key()
    with server.client(secret) as api:
        uploaded = api.post(
            "/v1/images/upload",
            data={"name": "p"},
            files={"image": ("p.jpg", portrait.read_bytes())},
        )
        assert uploaded.status_code == 201, uploaded.text
        image_id = uploaded.json()["id"]
        answer: dict[str, Any] = {}

        def remove() -> None:
            started = time.monotonic()
            answer["response"] = api.post(
                f"/v1/images/{image_id}/remove-background", json={"model": "precise"}
            )
            answer["seconds"] = time.monotonic() - started

        old = _job_keys(fleet)
        request = threading.Thread(target=remove)
        request.start()
        os.kill(int(_running_job(fleet, old)["pid"]), signal.SIGKILL)
        request.join(timeout=server.settings.request_timeout_seconds + 10)
        assert not request.is_alive(), "the request hung past the limit"
        response: httpx.Response = answer["response"]
        assert answer["seconds"] <= server.settings.request_timeout_seconds + 5
        assert response.status_code in (201, 503), response.text
        images = _images(api)
        if response.status_code == 201:
            result = response.json()
            assert (result["width"], result["height"]) == (739, 1134)
            assert (
                api.get(f"/v1/images/{result['id']}/download").content[:8] == b"\x89PNG\r\n\x1a\n"
            )
            assert len(images) == 2
        else:
            assert response.headers["retry-after"]
            assert len(images) == 1
    assert "WorkerLostError" in fleet.log_text() or response.status_code == 503
    assert not _no_temp_files_left(fleet)


def test_full_queue_is_503_at_once(replica: Any, photo: Path) -> None:
    server: Server = replica(fleet_queue_limit=0)
    with server.client(server.new_key()) as api:
        uploaded = api.post(
            "/v1/images/upload", data={"name": "p"}, files={"image": ("p.jpg", photo.read_bytes())}
        )
        assert uploaded.status_code == 201, uploaded.text
        started = time.monotonic()
        response = api.post(f"/v1/images/{uploaded.json()['id']}/remove-background", json={})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == str(server.settings.retry_after_seconds)
        batch = api.post(
            "/removebg/fast/removebg",
            headers={"authorization": f"Token {api.headers['x-api-key']}"},
            json={"records": [{"_url": "http://127.0.0.1:9/x.jpg"}]},
        )
        assert batch.status_code == 503, batch.text
        assert batch.headers["retry-after"]
        assert time.monotonic() - started < 5
        assert len(_images(api)) == 1


def test_past_the_limit_is_504_and_leaves_nothing(
    replica: Any, fleet: Fleet, portrait: Path
) -> None:
    server: Server = replica(request_timeout_seconds=0.3)
    with server.client(server.new_key()) as api:
        uploaded = api.post(
            "/v1/images/upload",
            data={"name": "p"},
            files={"image": ("p.jpg", portrait.read_bytes())},
        )
        assert uploaded.status_code == 201, uploaded.text
        started = time.monotonic()
        response = api.post(
            f"/v1/images/{uploaded.json()['id']}/remove-background", json={"model": "precise"}
        )
        assert response.status_code == 504, response.text
        assert time.monotonic() - started < 5
        assert len(_images(api)) == 1
    assert not _no_temp_files_left(fleet, within=30)


def test_readiness_asks_the_workers(server: Server, fleet: Fleet, replica: Any) -> None:
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["model"] == "ok"
    # Another Redis database: the same server, but no worker listens there.
    lonely: Server = replica(inference_url=fleet.url + "/7")
    not_ready = httpx.get(lonely.url + "/readyz", timeout=30)
    assert not_ready.status_code == 503, not_ready.text
    assert not_ready.json()["checks"]["model"] == "no inference worker answers"


def test_worker_machine_lost_mid_job_is_503_at_once(
    server: Server, fleet: Fleet, portrait: Path
) -> None:
    """SIGKILL a whole worker node (main process and pool) running a removal, as a machine
    lost: its job would come back only past the deadline, so the replica says 503 as soon
    as the node's liveness key lapses (5 s), not 504 at the end of the request's limit."""
    with server.client(server.new_key()) as api:
        uploaded = api.post(
            "/v1/images/upload",
            data={"name": "p"},
            files={"image": ("p.jpg", portrait.read_bytes())},
        )
        assert uploaded.status_code == 201, uploaded.text
        answer: dict[str, Any] = {}

        def remove() -> None:
            started = time.monotonic()
            answer["response"] = api.post(
                f"/v1/images/{uploaded.json()['id']}/remove-background", json={"model": "precise"}
            )
            answer["seconds"] = time.monotonic() - started

        old = _job_keys(fleet)
        request = threading.Thread(target=remove)
        request.start()
        node = str(_running_job(fleet, old)["hostname"])  # "w<index>@fleet-test"
        fleet.kill_node(int(node.split("@")[0][1:]))
        request.join(timeout=60)
        assert not request.is_alive(), "the request hung"
        response: httpx.Response = answer["response"]
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == str(server.settings.retry_after_seconds)
        assert answer["seconds"] < 20 < server.settings.request_timeout_seconds
        assert len(_images(api)) == 1
    assert not _no_temp_files_left(fleet)
